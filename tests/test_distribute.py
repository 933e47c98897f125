"""Distribution (``strategy``): a mirrored run over two devices equals one device; CLI, resume, guard.

Two logical CPU devices must be configured before TensorFlow initialises, and this test
session has initialised it, so the equivalence runs in subprocesses. Everything random is
the same on both sides: the noise comes from the seeded input pipeline, BatchNorm is
synchronized, there is no dropout, and SGD keeps the update a plain multiple of the gradient.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from typer.testing import CliRunner

import ganframe
from ganframe import DataSpec, RunConfig, get_registry
from ganframe.cli import app
from ganframe.run import build_gan
from tinyrun import TINY, assert_same_state, training_state

XLA_OFF = "XLA (jit_compile) is off"

#: argv: logical CPU devices, output directory, seed, strategies to train under one after another.
SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import tensorflow as tf
    devices, out, seed, strategies = int(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
    import numpy as np
    import ganframe
    sys.path.insert(0, %(tests)r)
    from tinyrun import MIRRORED_RUN, training_state
    # two replicas also take the guard's cross-replica path; it skips nothing here, so changes no number
    config = {**MIRRORED_RUN, "seed": seed, "divergence": {"enabled": devices > 1}}
    for strategy in strategies:
        run = ganframe.train({**config, "strategy": strategy, "out": str(out / strategy)}, progress=False)
        np.savez(out / strategy / "state.npz", **training_state(run.gan))
        (out / strategy / "result.json").write_text(json.dumps({
            "replicas": run.gan.distribute_strategy.num_replicas_in_sync,
            "history": run.history.history,
            "samples": run.generate(4, seed=1).tolist(),
            "skipped": run.gan.skipped,
        }))
    if devices > 1:
        try:
            ganframe.train({**config, "strategy": "mirrored", "batch_size": 15, "out": str(out / "odd")})
        except ganframe.ConfigError as error:
            (out / "odd-batch.txt").write_text(str(error))
""") % {"tests": str(Path(__file__).parent)}


def _env() -> dict[str, str]:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


#: Two replicas sum their halves' gradients where one sums the whole batch's, and synchronized BatchNorm
#: reduces its statistics likewise: the same numbers added in another order. Measured: at most 1.2e-7
#: after 5 SGD steps (seeds 11 and 12); without the per-replica loss scaling they end 0.16 apart
#: (docs/performance.md).
ATOL = 1e-5


@pytest.mark.parametrize("seed", [11, 12])
def test_a_mirrored_run_over_two_devices_matches_one_device(tmp_path, seed):
    script = tmp_path / "runs.py"
    script.write_text(SCRIPT)
    jobs = {  # concurrently: each is mostly TensorFlow's import and one trace
        "two": subprocess.Popen([sys.executable, str(script), "2", str(tmp_path / "two"), str(seed), "mirrored"],
                                env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
        "one": subprocess.Popen([sys.executable, str(script), "1", str(tmp_path / "one"), str(seed), "mirrored",
                                 "multiworker"], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
    }
    errors = {name: job.communicate(timeout=240)[1] for name, job in jobs.items()}
    for name, job in jobs.items():
        assert job.returncode == 0, errors[name]
        assert XLA_OFF in errors[name]

    reference = tmp_path / "two" / "mirrored"
    expected = dict(np.load(reference / "state.npz"))
    expected_result = json.loads((reference / "result.json").read_text())
    assert expected_result["replicas"] == 2 and expected_result["skipped"] == {"discriminator": 0, "generator": 0}
    assert int(expected["d_optimizer/000 sgd/iteration"]) == 10  # 5 steps x n_critic 2 (the split was not per replica)
    for other in (tmp_path / "one" / "mirrored", tmp_path / "one" / "multiworker"):
        result = json.loads((other / "result.json").read_text())
        assert result["replicas"] == 1
        # weights, BatchNorm statistics, seed states, optimizer slots and iterations, guard counters
        assert_same_state(dict(np.load(other / "state.npz")), expected, atol=ATOL)
        assert result["history"].keys() == expected_result["history"].keys()
        for name, values in expected_result["history"].items():  # the metrics are the global batch's
            np.testing.assert_allclose(result["history"][name], values, rtol=ATOL, err_msg=name)
        np.testing.assert_allclose(result["samples"], expected_result["samples"], atol=ATOL)
    assert "does not split evenly over the 2 replicas" in (tmp_path / "two" / "odd-batch.txt").read_text()


@pytest.mark.parametrize("seed", [0, 1])
def test_a_mirrored_cli_run_writes_checkpoints_that_resume_exactly(tmp_path, seed):
    runner = CliRunner()
    common = ["train", "--arch", "dense", *(f"--arch-option={k}={json.dumps(v)}" for k, v in TINY.items()),
              "--data", "digits", "--batch-size", "16", "--seed", str(seed), "--strategy", "mirrored",
              "--sample-every", "0", "--checkpoint-every", "2", "--log-every", "2"]
    split, whole = tmp_path / "split", tmp_path / "whole"
    result = runner.invoke(app, [*common, "--steps", "2", "--out", str(split)])
    assert result.exit_code == 0, result.output
    assert XLA_OFF in result.stderr
    assert (split / "checkpoints" / "ckpt-000000002.npz").is_file()
    result = runner.invoke(app, ["train", "--resume", str(split), "--steps", "4"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, [*common, "--steps", "4", "--out", str(whole)])
    assert result.exit_code == 0, result.output

    resumed, uninterrupted = ganframe.load_run(split), ganframe.load_run(whole)
    assert resumed.config.strategy == "mirrored" and resumed.step == 4
    # the same computation from the same state: bit for bit
    assert_same_state(training_state(resumed.gan), training_state(uninterrupted.gan))
    np.testing.assert_allclose(resumed.generate(3, seed=2), uninterrupted.generate(3, seed=2), atol=1e-6)


def test_the_divergence_guard_skips_a_non_finite_update_under_a_strategy():
    config = RunConfig(arch="dense", arch_options=TINY, data="digits", strategy="mirrored", jit_compile=False,
                       divergence={"enabled": True})
    keras.utils.set_random_seed(0)
    gan = build_gan(config, DataSpec((8, 8, 1)), get_registry())
    assert gan.noise_spec is not None and gan.distribute_strategy.num_replicas_in_sync == 1
    assert all(layer.synchronized for layer in gan.generator.layers if isinstance(layer, keras.layers.BatchNormalization))
    before_d = [w.copy() for w in gan.discriminator.get_weights()]
    before_g = [w.copy() for w in gan.generator.get_weights()]

    poisoned = np.full((16, 8, 8, 1), np.nan, "float32")  # D's loss is NaN; G's does not see real images
    gan.fit(tf.data.Dataset.from_tensors(poisoned).repeat(), epochs=1, steps_per_epoch=2, verbose=0, shuffle=False)

    assert gan.skipped == {"discriminator": 2, "generator": 0}
    assert gan.global_step == 2 and int(gan.d_optimizer.iterations.numpy()) == 2
    for after, before in zip(gan.discriminator.get_weights(), before_d):
        np.testing.assert_array_equal(after, before)
    assert any(not np.array_equal(after, before) for after, before in zip(gan.generator.get_weights(), before_g))


@pytest.mark.parametrize("strategy", ["default", "mirrored"])
def test_only_a_strategy_changes_how_networks_are_built(strategy):
    """The default path keeps XLA, its own noise and plain BatchNorm."""
    config = RunConfig(arch="dense", arch_options=TINY, data="digits", strategy=strategy)
    gan = build_gan(config, DataSpec((8, 8, 1)), get_registry())
    distributed = strategy != "default"
    assert (gan.noise_spec is not None) == distributed
    assert gan.jit_compile == (not distributed)
    assert {layer.synchronized for layer in gan.generator.layers
            if isinstance(layer, keras.layers.BatchNormalization)} == {distributed}
