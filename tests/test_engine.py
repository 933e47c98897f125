"""Runs end to end: reproducibility, resume, checkpoints, n_critic, plugins' components, the time budget.

The step itself is compared with a hand-written one in test_step.py.
"""

from __future__ import annotations

import csv
import time
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf

import ganframe
from ganframe import get_registry
from tinyrun import SPEC, TINY, assert_same_state, tiny_config, training_state


@pytest.mark.backends
def test_seeded_runs_are_reproducible(tmp_path):
    first = ganframe.train(tiny_config(tmp_path / "a"), progress=False)
    second = ganframe.train(tiny_config(tmp_path / "b"), progress=False)
    assert_same_state(training_state(first.gan), training_state(second.gan))  # bit for bit
    np.testing.assert_array_equal(first.generate(8, seed=1), second.generate(8, seed=1))
    assert not np.array_equal(first.generate(8, seed=1), first.generate(8, seed=2))


#: Learning-rate schedules on both optimizers and a penalty: what the XLA run resumes with besides the weights.
SCHEDULED = {"d_optimizer": {"learning_rate": 1e-3, "schedule": "cosine", "warmup_steps": 2, "decay_steps": 8},
             "g_optimizer": {"learning_rate": 1e-3, "schedule": "linear", "warmup_steps": 2, "decay_steps": 8},
             "penalties": {"r1": {}}}


#: Two seeds, each on one path (XLA, the path production uses, compiles for a minute on 2 busy cores; with
#: schedules and a penalty on); with dropout, so that the dropout layers' seed states must travel in the checkpoint too.
@pytest.mark.backends
@pytest.mark.parametrize(("seed", "jit", "extra"), [(3, True, SCHEDULED), (4, False, {})], ids=["xla-scheduled", "graph"])
def test_resume_continues_exactly_where_it_stopped(tmp_path, seed, jit, extra):
    config = {"steps": 8, "seed": seed, "jit_compile": jit, "arch_options": {**TINY, "dropout": 0.3}, **extra}
    whole = ganframe.train(tiny_config(tmp_path / "whole", **config), progress=False)
    ganframe.train(tiny_config(tmp_path / "split", **{**config, "steps": 4}), progress=False)
    resumed = ganframe.train({"steps": 8}, resume=tmp_path / "split" / "run", progress=False)

    assert resumed.step == whole.step == 8
    assert sorted(resumed.gan.schedules) == (["d", "g"] if extra else [])
    # weights, BatchNorm statistics, dropout and noise seed states, optimizer slots and iterations, guard counters,
    # learning-rate scales: the same computation from the same state, so bit for bit
    assert_same_state(training_state(resumed.gan), training_state(whole.gan))
    with open(tmp_path / "split" / "run" / "metrics.csv") as handle:
        steps = [int(row["step"]) for row in csv.DictReader(handle)]
    assert steps == [2, 4, 6, 8]


@pytest.mark.backends
def test_load_run_generate_and_export(tmp_path):
    run = ganframe.train(tiny_config(tmp_path), progress=False)
    loaded = ganframe.load_run(run.path)
    assert loaded.step == 6
    np.testing.assert_allclose(loaded.generate(5, seed=7), run.generate(5, seed=7), atol=1e-6)
    images = loaded.generate(5, seed=7)
    assert images.shape == (5, 8, 8, 1) and images.min() >= 0 and images.max() <= 1

    path = loaded.export(tmp_path / "g.keras")
    generator = keras.saving.load_model(path)
    noise = np.random.default_rng(7).standard_normal((5, TINY["latent_dim"])).astype("float32")
    np.testing.assert_allclose(generator(noise, training=False), images, atol=1e-6)


def test_a_corrupted_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, capsys):
    run = ganframe.train(tiny_config(tmp_path), progress=False)
    checkpoints = sorted((run.path / "checkpoints").glob("ckpt-*.npz"))
    assert [p.name for p in checkpoints] == ["ckpt-000000003.npz", "ckpt-000000006.npz"]
    checkpoints[-1].write_bytes(checkpoints[-1].read_bytes()[:1000])  # truncated
    loaded = ganframe.load_run(run.path)
    assert loaded.step == 3
    assert "ckpt-000000006.npz" in capsys.readouterr().err


def test_architecture_and_data_ranges_must_match(tmp_path):
    config = tiny_config(tmp_path, arch_options={**TINY, "output_activation": "tanh"})
    with pytest.raises(ganframe.ConfigError, match=r"'dense' generates values in \[-1, 1\].*'digits' lies in \[0, 1\]"):
        ganframe.train(config, progress=False)
    assert not (tmp_path / "run").exists(), "a refused run must leave nothing behind"


@pytest.mark.backends
def test_n_critic_counts_its_d_updates_in_d_optimizer_and_steps_in_g_updates(tmp_path):
    """Which real slice each update sees is test_step.py's (the equality with n_critic = 2, and its mutant)."""
    run = ganframe.train(tiny_config(tmp_path, n_critic=3, steps=4), progress=False)
    assert run.step == 4
    assert int(run.gan.d_optimizer.iterations.numpy()) == 12


def test_existing_output_directory_is_refused_without_overwrite(tmp_path):
    ganframe.train(tiny_config(tmp_path, steps=2), progress=False)
    (tmp_path / "run" / "notes.txt").write_text("mine")
    with pytest.raises(ganframe.ConfigError, match="not empty.*--resume.*--overwrite"):
        ganframe.train(tiny_config(tmp_path, steps=2), progress=False)
    ganframe.train(tiny_config(tmp_path, steps=2), overwrite=True, progress=False)
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"


class ConstantPenalty(ganframe.Penalty):
    """Adds a known constant, so its presence in d_loss is visible."""

    def __call__(self, critic, real, fake):
        return keras.ops.convert_to_tensor(100.0)


class Blank(ganframe.Augmentation):
    """Replaces every image by zeros: D then cannot tell real from fake."""

    def __call__(self, images, seed):
        return images * 0.0  # (zero gradients for G, but gradients)


class ExtraComponents:
    @staticmethod
    @ganframe.hookimpl
    def ganframe_register_losses(register):
        register("constant", lambda spec, options: ConstantPenalty(), "Adds 100 to D's loss.")

    @staticmethod
    @ganframe.hookimpl
    def ganframe_register_augmentations(register):
        register("blank", lambda spec, options: Blank(), "Zeroes images before D.")


def test_input_gradients_of_a_linear_critic_is_its_weight_vector():
    w = np.arange(1.0, 65.0, dtype="float32").reshape(8, 8, 1) / 64.0
    critic = lambda x: keras.ops.sum(x * w, axis=(1, 2, 3))  # noqa: E731
    x = tf.constant(np.random.default_rng(0).normal(size=(4, 8, 8, 1)).astype("float32"))
    grads = ganframe.input_gradients(critic, x)
    np.testing.assert_allclose(grads, np.broadcast_to(w, (4, 8, 8, 1)), rtol=1e-6)
    r1 = keras.ops.mean(keras.ops.sum(grads**2, axis=(1, 2, 3)))  # R1 of a linear critic is ||w||^2
    np.testing.assert_allclose(r1, np.sum(w**2), rtol=1e-5)


def test_penalties_and_augmentations_from_a_plugin_reach_the_step(tmp_path):
    registry = ganframe.load_plugins(extra=[("extras", ExtraComponents)])
    config = tiny_config(tmp_path, steps=2, penalties={"constant": {}}, augmentations={"blank": {}})
    run = ganframe.train(config, registry=registry, progress=False)
    history = run.history.history
    assert history["d_loss"][0] > 100.0
    assert history["d_real"][0] == pytest.approx(history["d_fake"][0])

    misplaced = tiny_config(tmp_path / "b", steps=2, loss="constant")
    with pytest.raises(ganframe.ConfigError, match="'constant' is not an adversarial loss"):
        ganframe.train(misplaced, registry=registry, progress=False)


def test_a_frozen_network_is_refused_with_a_clear_message():
    registry = get_registry()
    networks = registry.build("architecture", "dense", TINY, SPEC)
    networks.discriminator.trainable = False  # the seed's habit; the engine owns variables itself
    gan = ganframe.GAN(networks, registry.build("loss", "nonsaturating", {}, SPEC))
    with pytest.raises(ganframe.ConfigError, match="discriminator has no trainable variables"):
        gan.compile(keras.optimizers.Adam(), keras.optimizers.Adam())


def test_steps_per_execution_runs_the_callbacks_once_per_execution(tmp_path):
    run = ganframe.train(tiny_config(tmp_path, steps=6, steps_per_execution=3), progress=False)
    assert run.step == 6
    with open(run.path / "metrics.csv") as handle:
        assert [int(row["step"]) for row in csv.DictReader(handle)] == [3, 6]  # callbacks see every 3rd step


class Watchdog(keras.callbacks.Callback):
    """Records when each step of ``fit`` ended, and stops it after ``seconds``: a run its budget failed to stop
    then ends, and is told apart.
    """

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.fired = False

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.began = time.perf_counter()
        self.step_ends: list[float] = []  # seconds since fit began

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.step_ends.append(time.perf_counter() - self.began)
        if self.step_ends[-1] >= self.seconds:
            self.fired = self.model.stop_training = True


#: The budget, and how long ganframe.train may take beyond it: loading digits, building the GAN, the
#: step that ends past the deadline and the final checkpoint. The budget holds the step's trace (5 s
#: on 2 cores at load 7) and then some steps. Measured at load 6.5: fit stopped 6.00 s in, after 28 to
#: 40 steps, and ganframe.train took 1.0 to 1.4 s beyond the budget. A run that ignores its budget is
#: stopped by the watchdog 60 s past it, 40 times that overshoot.
BUDGET, SLACK = 6.0, 60.0
#: The watchdog's clock starts, and reads each step's end, just after the budget's (the next callback):
#: microseconds apart; half a second allows for the process being descheduled in between.
CALLBACK_GAP = 0.5


def test_a_time_budget_stops_an_unbounded_run_as_it_runs_out(tmp_path):
    watchdog = Watchdog(BUDGET + SLACK)
    began = time.perf_counter()
    run = ganframe.train(tiny_config(tmp_path, steps=None, max_time=BUDGET), callbacks=[watchdog], progress=False)
    took = time.perf_counter() - began

    assert not watchdog.fired, f"the {BUDGET} s budget did not stop the run in {BUDGET + SLACK} s"
    assert BUDGET <= took < BUDGET + SLACK
    *before, last = watchdog.step_ends
    assert last >= BUDGET - CALLBACK_GAP, "the run stopped before its budget ran out"
    assert all(end < BUDGET + CALLBACK_GAP for end in before), "the run went on over half a second past its budget"
    assert run.step == len(watchdog.step_ends)
    assert sorted(p.name for p in (run.path / "checkpoints").iterdir())[-1] == f"ckpt-{run.step:09d}.npz"
