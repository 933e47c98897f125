"""Learning-rate schedules: their curves against closed forms and as a run logs them (resume with schedules:
tests/test_engine.py, on the XLA path)."""

from __future__ import annotations


import numpy as np
import pytest

import ganframe
from ganframe.config import OptimizerConfig, RunConfig
from ganframe.schedules import learning_rate
from tinyrun import curve, read_events, tiny_config

RATE = 1e-3


def rates(config: dict, updates_per_step: int, steps: int) -> np.ndarray:
    """The rate an optimizer whose ``iterations`` count ``updates_per_step`` per train step uses in each train step."""
    schedule = learning_rate(OptimizerConfig(learning_rate=RATE, **config), updates_per_step)
    return np.array([float(schedule(step * updates_per_step + update))
                     for step in range(steps) for update in range(updates_per_step)]).reshape(steps, -1)


@pytest.mark.parametrize("updates_per_step", [1, 5], ids=["G", "D-n_critic5"])
def test_each_schedule_follows_its_formula_in_train_steps(updates_per_step):
    steps = np.arange(14)
    after = np.maximum(steps - 4, 0)  # 4 warm-up steps, then 8 of decay, then the end value
    warm = np.minimum(1.0, (steps + 1) / 4)
    expected = {
        "cosine": warm * (1e-4 + (RATE - 1e-4) * 0.5 * (1 + np.cos(np.pi * np.minimum(after, 8) / 8))),
        "linear": warm * (RATE + (1e-4 - RATE) * np.minimum(after, 8) / 8),
        "exponential": warm * RATE * 0.5 ** (after / 8),
    }
    for name, values in expected.items():
        config = {"schedule": name, "warmup_steps": 4, "decay_steps": 8, "final_learning_rate": 1e-4}
        got = rates(config, updates_per_step, len(steps))
        # every update of one train step uses the same rate: D's n_critic updates follow G's step
        np.testing.assert_allclose(got, np.repeat(values[:, None], updates_per_step, axis=1), rtol=1e-6, err_msg=name)
    assert learning_rate(OptimizerConfig(learning_rate=RATE), updates_per_step) == RATE  # constant: a plain number


def test_the_decay_spans_the_run_unless_told_and_is_stored():
    assert RunConfig(steps=300, g_optimizer={"schedule": "cosine"}).g_optimizer.decay_steps == 300
    assert RunConfig(steps=300, g_optimizer={"schedule": "linear", "decay_steps": 50}).g_optimizer.decay_steps == 50
    assert RunConfig(steps=300).g_optimizer.decay_steps is None  # constant: nothing to span
    with pytest.raises(ganframe.ConfigError, match=r"d_optimizer.*schedule 'cosine' needs decay_steps when the run's "
                                                    r"length is given by epochs"):
        ganframe.resolve_config(None, {"epochs": 2, "d_optimizer.schedule": "cosine"})
    with pytest.raises(ganframe.ConfigError, match=r"g_optimizer.final_learning_rate.*must not exceed learning_rate"):
        ganframe.resolve_config(None, {"g_optimizer.final_learning_rate": 1.0})


def test_a_run_logs_the_scheduled_rates(tmp_path):
    schedule = {"learning_rate": RATE, "schedule": "cosine", "warmup_steps": 2, "final_learning_rate": 0.0}
    config = tiny_config(tmp_path, steps=8, n_critic=2, d_optimizer=schedule, g_optimizer=schedule,
                         callbacks={"samples": {"every": 0}, "checkpoint": {"every": 0},
                                    "tensorboard": {"every": 1, "images_every": 0}})
    run = ganframe.train(config, progress=False)
    assert run.gan.g_optimizer.iterations.numpy() == 8 and run.gan.d_optimizer.iterations.numpy() == 16
    events = read_events(run.path)
    # logged after step s: the rate of the next update, at step s (decay over the run's 8 steps after 2 of warm-up)
    steps = np.arange(1, 9)
    expected = RATE * np.minimum(1.0, (steps + 1) / 2) * 0.5 * (1 + np.cos(np.pi * np.minimum(np.maximum(steps - 2, 0), 8) / 8))
    for net in ("d", "g"):
        logged_steps, logged = curve(events, f"learning_rate/{net}")
        assert logged_steps == list(steps)
        np.testing.assert_allclose(logged, expected, rtol=1e-6, err_msg=net)
