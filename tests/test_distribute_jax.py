"""Data parallel on JAX (``strategy = "mirrored"``: ``keras.distribution.DataParallel``): a run over two
devices equals one device, resumes exactly, and refuses what it cannot do.

Two CPU devices need ``XLA_FLAGS=--xla_force_host_platform_device_count=2`` before JAX starts, so the
runs take place in a subprocess; one process trains both ways (``default`` uses the first device only).
Under ``DataParallel`` every variable is replicated and each batch split over the devices, and the step
is compiled for the global batch, noise and BatchNorm statistics included: the same maths as one device,
its sums reduced across devices in another order.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import ganframe
from tinyrun import assert_same_state, tiny_config

pytestmark = pytest.mark.backends("jax")

#: argv: output directory, seed. Prints nothing; writes state.npz and result.json per run.
SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import jax
    import numpy as np
    import ganframe
    sys.path.insert(0, %(tests)r)
    from tinyrun import MIRRORED_RUN, training_state, training_variables
    out, seed = Path(sys.argv[1]), int(sys.argv[2])
    # a checkpoint at step 2, where the resumed run stops and goes on from
    config = {**MIRRORED_RUN, "seed": seed,
              "callbacks": {**MIRRORED_RUN["callbacks"], "checkpoint": {"every": 2}}}

    def record(run, name):
        np.savez(out / name / "state.npz", **training_state(run.gan))
        (out / name / "result.json").write_text(json.dumps({
            "devices": sorted({len(v.value.sharding.device_set) for v in training_variables(run.gan).values()}),
            "history": run.history.history if run.history else None,
            "samples": run.generate(4, seed=1).tolist(),
            "skipped": run.gan.skipped,
        }))

    assert len(jax.devices()) == 2, jax.devices()
    for strategy in ("mirrored", "default"):
        record(ganframe.train({**config, "strategy": strategy, "out": str(out / strategy)}, progress=False), strategy)
    # resume: 2 steps, then on to 5 from the checkpoint at step 2
    ganframe.train({**config, "strategy": "mirrored", "steps": 2, "out": str(out / "resumed")}, progress=False)
    record(ganframe.train({"steps": 5}, resume=out / "resumed", progress=False), "resumed")
    try:
        ganframe.train({**config, "strategy": "mirrored", "batch_size": 15, "out": str(out / "odd")}, progress=False)
    except ganframe.ConfigError as error:
        (out / "odd-batch.txt").write_text(str(error))
""") % {"tests": str(Path(__file__).parent)}

#: One device sums a batch's gradients where two sum halves and add them: the same numbers in another
#: order. Measured: at most 6e-8 after 5 SGD steps (seed 11). The TensorFlow test's bound (test_distribute.py).
ATOL = 1e-5


@pytest.mark.parametrize("seed", [11, 12])
def test_a_mirrored_run_over_two_devices_matches_one_device_and_resumes(tmp_path, seed):
    script = tmp_path / "runs.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    done = subprocess.run([sys.executable, str(script), str(tmp_path), str(seed)], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]

    results = {name: json.loads((tmp_path / name / "result.json").read_text())
               for name in ("mirrored", "default", "resumed")}
    states = {name: dict(np.load(tmp_path / name / "state.npz")) for name in results}
    assert results["mirrored"]["devices"] == [2], "every variable is replicated over both devices"
    assert results["default"]["devices"] == [1]
    assert results["mirrored"]["skipped"] == {"discriminator": 0, "generator": 0}
    assert int(states["mirrored"]["d_optimizer/000 sgd/iteration"]) == 10  # 5 steps x n_critic 2
    # weights, BatchNorm statistics, seed states, optimizer slots and iterations, guard counters
    assert_same_state(states["default"], states["mirrored"], atol=ATOL)
    history, expected = results["default"]["history"], results["mirrored"]["history"]
    assert history.keys() == expected.keys()
    for name, values in expected.items():  # the metrics are the global batch's
        np.testing.assert_allclose(history[name], values, rtol=ATOL, err_msg=name)
    np.testing.assert_allclose(results["default"]["samples"], results["mirrored"]["samples"], atol=ATOL)
    # the same computation from the same state: to the last bit
    assert_same_state(states["resumed"], states["mirrored"])
    assert "does not split evenly over the 2 replicas" in (tmp_path / "odd-batch.txt").read_text()


def test_multiworker_is_refused_on_jax_before_anything_is_written(tmp_path):
    with pytest.raises(ganframe.ConfigError, match="got 'multiworker'; on the jax backend .* \"mirrored\""):
        ganframe.train(tiny_config(tmp_path, strategy="multiworker"), progress=False)
    assert not (tmp_path / "run").exists()
