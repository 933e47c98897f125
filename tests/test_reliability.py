"""Reliability: the divergence guard (skip, roll back, give up) and kill-safe checkpoints.

NaN is injected by an in-process plugin: ``poison_d`` / ``poison_g`` are penalties that
add ``scale * mean(...)`` where ``scale`` is a variable the test sets to 0 (harmless:
adds exactly 0) or NaN (loss and gradients NaN), from outside the compiled step.
"""

from __future__ import annotations

import csv
import errno
import json
import math
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import ganframe
from ganframe import RunConfig
from ganframe.checkpoints import list_checkpoints, load_checkpoint, save_checkpoint
from ganframe.run import build_gan
from tinyrun import SPEC, TINY, tiny_config

NAN = float("nan")


def guarded_config(tmp_path, **changes) -> dict:
    """The tiny run for 16 steps, checkpoints every 4, with a guard that trips after 2 skips."""
    return tiny_config(tmp_path, **{
        "steps": 16,
        "callbacks": {"samples": {"every": 0}, "checkpoint": {"every": 4}, "metrics": {"every": 2}},
        "divergence": {"enabled": True, "max_skips": 2, "max_rollbacks": 1},
        **changes,
    })


# -- NaN injection -----------------------------------------------------------------------

#: The poison built last, by name: the tests steer its ``scale``.
POISONS: dict[str, "Poison"] = {}


class Poison(ganframe.Penalty):
    """``scale * mean(D(real))`` for D, ``scale * mean(G(z))`` for G: 0 or NaN, gradients included."""

    def __init__(self, applies_to: str) -> None:
        self.applies_to = applies_to
        self.scale = keras.Variable(0.0, trainable=False, name=f"poison_{applies_to}")

    def __call__(self, critic, real, fake):
        return self.scale * keras.ops.mean(critic(real) if self.applies_to == "discriminator" else fake)


def _poison_factory(name: str, applies_to: str):
    def factory(spec, options):
        POISONS[name] = Poison(applies_to)
        return POISONS[name]

    return factory


class PoisonPlugin:
    @staticmethod
    @ganframe.hookimpl
    def ganframe_register_losses(register):
        register("poison_d", _poison_factory("poison_d", "discriminator"), "NaN into D's loss on demand.")
        register("poison_g", _poison_factory("poison_g", "generator"), "NaN into G's loss on demand.")


@pytest.fixture(scope="module")
def registry():
    return ganframe.load_plugins(extra=[("poison", PoisonPlugin)])


class Burst(keras.callbacks.Callback):
    """Poisons ``count`` compiled calls (of ``steps_per_execution`` steps), the first once the step is ``start``."""

    def __init__(self, poison: str, start: int, count: int) -> None:
        super().__init__()
        self.poison, self.start, self.count, self.fired = poison, start, count, 0

    def on_train_batch_begin(self, batch, logs=None):
        on = self.model.global_step >= self.start and self.fired < self.count
        self.fired += on
        POISONS[self.poison].scale.assign(NAN if on else 0.0)


def _state(gan) -> list[np.ndarray]:
    variables = [*gan.generator.variables, *gan.discriminator.variables]
    variables += [v for v in (*gan.d_optimizer.variables, *gan.g_optimizer.variables) if "iteration" not in v.path]
    return [np.array(v.numpy()) for v in variables]


def _all_finite(gan) -> bool:
    return all(np.isfinite(w).all() for w in gan.generator.get_weights() + gan.discriminator.get_weights())


# -- the guard inside the step -----------------------------------------------------------

@pytest.mark.backends
def test_a_non_finite_step_changes_no_weight_under_xla_and_is_counted(registry, tmp_path):
    config = RunConfig(arch="dense", arch_options=TINY, data="digits", seed=5, jit_compile=True,
                       penalties={"poison_d": {}, "poison_g": {}}, divergence={"enabled": True})
    gan = build_gan(config, SPEC, registry)
    real = tf.data.Dataset.from_tensors(np.random.default_rng(0).uniform(size=(16, 8, 8, 1)).astype("float32")).repeat()
    before = _state(gan)

    for name in ("poison_d", "poison_g"):
        POISONS[name].scale.assign(NAN)
    gan.fit(real, epochs=1, steps_per_epoch=1, verbose=0)
    for a, b in zip(_state(gan), before):
        np.testing.assert_array_equal(a, b)  # weights and optimizer slots untouched
    assert gan.skipped == {"discriminator": 1, "generator": 1}
    assert gan.global_step == 1 and int(gan.d_optimizer.iterations.numpy()) == 1  # the step still counts
    assert int(gan.skip_state["g_bad_step"].numpy()) == 1 and np.isnan(gan.skip_state["d_bad_loss"].numpy())
    assert all(np.isfinite(float(m.result())) for m in gan.metrics)  # NaN kept out of the running means

    for name in ("poison_d", "poison_g"):
        POISONS[name].scale.assign(0.0)
    gan.fit(real, epochs=1, steps_per_epoch=1, verbose=0)
    assert gan.skipped == {"discriminator": 1, "generator": 1}
    changed = [not np.array_equal(a, b) for a, b in zip(_state(gan), before)]
    assert sum(changed) > len(changed) // 2 and _all_finite(gan)

    # the counters travel in checkpoints
    path = save_checkpoint(gan, tmp_path)
    gan.skip_state["d_skipped"].assign(7)
    load_checkpoint(gan, path)
    assert gan.skipped == {"discriminator": 1, "generator": 1} and gan.checkpointed_skips == 2


def test_with_the_guard_switched_off_nan_reaches_the_weights(registry):
    config = RunConfig(arch="dense", arch_options=TINY, data="digits", seed=5, jit_compile=False,
                       penalties={"poison_d": {}}, divergence={"enabled": False})
    gan = build_gan(config, SPEC, registry)
    POISONS["poison_d"].scale.assign(NAN)
    real = tf.data.Dataset.from_tensors(np.ones((16, 8, 8, 1), "float32")).repeat()
    gan.fit(real, epochs=1, steps_per_epoch=1, verbose=0)
    assert not np.isfinite(gan.discriminator.get_weights()[0]).all()
    assert gan.skipped == {"discriminator": 0, "generator": 0}


# -- rollback and giving up --------------------------------------------------------------

@pytest.mark.parametrize(
    "per_execution, count, tripped_at, skips",
    # NaN in D from step 5: more than max_skips (2) skips trip the guard; after the rollback, 2 more (tolerated)
    [(1, 5, 7, 3), (2, 3, 8, 4)],
    ids=["steps_per_execution=1", "steps_per_execution=2"],
)
def test_a_nan_burst_rolls_back_to_the_last_checkpoint_and_recovers(registry, tmp_path, capsys, per_execution, count,
                                                                     tripped_at, skips):
    config = guarded_config(tmp_path, penalties={"poison_d": {}}, steps_per_execution=per_execution)
    run = ganframe.train(config, registry=registry, progress=False, callbacks=[Burst("poison_d", 4, count)])

    assert run.step == 16 and _all_finite(run.gan)
    assert run.rollbacks == [{"step": tripped_at, "network": "discriminator", "value": pytest.approx(NAN, nan_ok=True),
                              "skips": skips, "restored_step": 4}]
    assert "rolled back to step 4, learning rates x0.5" in capsys.readouterr().err
    assert float(run.gan.d_optimizer.learning_rate.numpy()) == pytest.approx(1e-4)
    assert float(run.gan.g_optimizer.learning_rate.numpy()) == pytest.approx(1e-4)
    assert run.gan.skipped["discriminator"] == 2  # the burst's tail, after the rollback (restored counters were 0)
    assert [step for step, _ in list_checkpoints(run.path / "checkpoints")] == [8, 12, 16]

    with open(run.path / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    # the rows after the restored step went with the rollback: increasing steps, no duplicates
    assert [int(row["step"]) for row in rows] == [2, 4, 6, 8, 10, 12, 14, 16]
    recorded = json.loads((run.path / "run.json").read_text())["rollbacks"]
    assert [(r["step"], r["network"], r["restored_step"]) for r in recorded] == [(tripped_at, "discriminator", 4)]
    # Skipped steps count in no mean: the interval of the burst's tail (steps 5 and 6, both D updates
    # skipped) has no D loss, an empty cell rather than a made-up number; every other mean is finite.
    empty = [(int(row["step"]), name) for row in rows for name in ("d_loss", "g_loss") if row[name] == ""]
    assert empty == [(6, "d_loss")], empty
    assert all(np.isfinite(float(row[name])) for row in rows for name in ("d_loss", "g_loss") if row[name] != "")

    loaded = ganframe.load_run(run.path, registry=registry)  # the lowered learning rates are part of the checkpoint
    assert loaded.step == 16 and float(loaded.gan.g_optimizer.learning_rate.numpy()) == pytest.approx(1e-4)


def test_a_rollback_lowers_scheduled_learning_rates_and_the_checkpoint_keeps_them(registry, tmp_path):
    """With a schedule the rate is no variable to lower: the rollback scales the whole curve, and checkpoints keep the scale."""
    schedule = {"learning_rate": 2e-4, "schedule": "cosine", "decay_steps": 1000}
    config = guarded_config(tmp_path, penalties={"poison_d": {}}, d_optimizer=schedule, g_optimizer=schedule)
    run = ganframe.train(config, registry=registry, progress=False, callbacks=[Burst("poison_d", 4, 5)])

    assert run.step == 16 and [r["restored_step"] for r in run.rollbacks] == [4]
    expected = 0.5 * 2e-4 * 0.5 * (1 + math.cos(math.pi * 16 / 1000))  # x0.5 on the cosine at step 16
    for net in ("d", "g"):
        assert float(run.gan.schedules[net].scale.numpy()) == 0.5
        assert float(getattr(run.gan, f"{net}_optimizer").learning_rate) == pytest.approx(expected, rel=1e-6)
    loaded = ganframe.load_run(run.path, registry=registry)
    assert float(loaded.gan.schedules["g"].scale.numpy()) == 0.5


def test_persistent_nan_gives_up_after_max_rollbacks_naming_step_network_and_value(registry, tmp_path, capsys):
    config = guarded_config(tmp_path, penalties={"poison_g": {}})
    with pytest.raises(ganframe.RunError) as caught:
        ganframe.train(config, registry=registry, progress=False, callbacks=[Burst("poison_g", 0, 10**9)])
    message = str(caught.value)
    assert caught.value.exit_code == 1
    assert "the generator's update at step 3 was non-finite (loss nan)" in message
    assert "gave up after 1 rollback(s)" in message and "max_rollbacks" in message
    # no checkpoint existed yet: it rolled back to the state training started from
    assert "rolled back to step 0" in capsys.readouterr().err
    assert list_checkpoints(tmp_path / "run" / "checkpoints") == []


# -- kill-safe checkpoints ---------------------------------------------------------------

_KILLED_WRITER = """
import os, sys, time
import ganframe

real_fsync = os.fsync
def slow_fsync(fd):  # the write of ckpt-4 stalls after its bytes went out, before the rename
    if "ckpt-000000004" in os.readlink(f"/proc/self/fd/{fd}"):
        print("SLOW-WRITE", flush=True)
        time.sleep(120)
    real_fsync(fd)
os.fsync = slow_fsync
ganframe.train(CONFIG, progress=False)
print("FINISHED", flush=True)
"""


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to find the file being synced")
def test_sigkill_during_a_checkpoint_write_leaves_the_previous_checkpoint_usable(tmp_path):
    config = guarded_config(tmp_path, steps=6, callbacks={"samples": {"every": 0}, "checkpoint": {"every": 2},
                                                       "metrics": {"every": 0}})
    script = tmp_path / "writer.py"
    script.write_text(_KILLED_WRITER.replace("CONFIG", repr(config)))
    child = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        selector = selectors.DefaultSelector()
        selector.register(child.stdout, selectors.EVENT_READ)
        deadline, line = time.monotonic() + 300, ""  # TF import and a first step; slow on a busy machine
        while "SLOW-WRITE" not in line and time.monotonic() < deadline and child.poll() is None:
            if selector.select(timeout=1):
                line = child.stdout.readline()
        assert "SLOW-WRITE" in line, "the child never reached the checkpoint write"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()

    directory = tmp_path / "run" / "checkpoints"
    leftovers = [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]
    assert len(leftovers) == 1 and leftovers[0].startswith(".ckpt-000000004.npz.")  # half a write, not a checkpoint
    assert [step for step, _ in list_checkpoints(directory)] == [2]
    loaded = ganframe.load_run(tmp_path / "run")
    assert loaded.step == 2 and _all_finite(loaded.gan)

    save_checkpoint(loaded.gan, directory)  # the next write clears what the killed writer left
    assert sorted(p.name for p in directory.iterdir()) == ["ckpt-000000002.npz"]


def test_a_full_disk_stops_training_with_a_clear_error_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    real_fsync = os.fsync

    def full_disk(fd):
        if "ckpt-000000004" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full_disk)
    config = guarded_config(tmp_path, steps=6, callbacks={"samples": {"every": 0}, "checkpoint": {"every": 2},
                                                       "metrics": {"every": 0}})
    with pytest.raises(ganframe.RunError, match=r"could not write checkpoint .*ckpt-000000004\.npz: "
                                                r"No space left on device") as caught:
        ganframe.train(config, progress=False)
    assert caught.value.exit_code == 1
    monkeypatch.undo()

    directory = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in directory.iterdir()) == ["ckpt-000000002.npz"]  # no temporary left either
    assert ganframe.load_run(tmp_path / "run").step == 2
