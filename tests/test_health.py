"""Training-health alarms: the rules on made-up probes, and real runs that collapse or stay healthy.

The runs are small dense GANs on scikit-learn's 8x8 digits, big enough to learn: a healthy run's
samples spread almost as widely as the real digits within a few hundred steps, while a run whose
discriminator cannot move (SGD at a learning rate of 1e-12: the config refuses 0, and in float32
such an update leaves every weight as it was, which is the seed's ``trainable = False`` trap)
lets G collapse onto what the fixed D scores highest.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

import ganframe
from ganframe.health import (COLUMNS, check, default_every, diversity, effective_classes, mean_pairwise_distance,
                             relative_change, warmup_steps)
from datafiles import REAL_MNIST, needs_mnist
from tinyrun import tiny_config


#: A dense GAN on digits that learns in a few hundred steps.
LEARNS = {"g_widths": [64, 128], "d_widths": [128, 64], "latent_dim": 16, "dropout": 0.0}
QUIET = {"samples": {"every": 0}, "checkpoint": {"every": 0}, "metrics": {"every": 0}}


def learning_run(tmp_path: Path, seed: int, steps: int, **changes) -> dict:
    settings = {"arch_options": LEARNS, "batch_size": 64, "steps": steps, "seed": seed, "callbacks": QUIET,
                "health": {"every": 50}, "g_optimizer": {"learning_rate": 1e-3}, "d_optimizer": {"learning_rate": 1e-3}}
    return tiny_config(tmp_path, **{**settings, **changes})


def health_of(run_dir: Path) -> tuple[list[dict[str, str]], dict]:
    with open(run_dir / "health.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == COLUMNS
        rows = list(reader)
    return rows, json.loads((run_dir / "health.json").read_text())


def pixel_spread(images: np.ndarray) -> float:
    """Mean over pixels of the standard deviation across images: near 0 when every image is the same."""
    return float(images.reshape(len(images), -1).std(axis=0).mean())


def spread_against_the_data(run: ganframe.Run) -> float:
    """The pixel spread of 256 of the run's samples over that of 256 real digits: an independent look at diversity."""
    digits = ganframe.get_registry().build("dataset", "digits", {}, ganframe.DataContext(None)).images
    return pixel_spread(run.generate(256, seed=7)) / pixel_spread(digits[:256])


# -- the rules, on made-up probes ---------------------------------------------------------------------------

HEALTHY = {"d_acc_real": 0.7, "d_acc_fake": 0.7, "d_margin": 0.5, "d_grad_norm": 1.0, "g_grad_norm": 1.0,
           "diversity": 0.9, "coverage": None, "d_change": 0.1, "g_change": 0.1}


def probes(every: int = 500, **series: list[float | None]) -> list[dict]:
    """Rows, one per probe, healthy except for the given columns' values in turn."""
    count = max(len(values) for values in series.values())
    return [{"step": every * (i + 1), **HEALTHY, **{column: values[i] for column, values in series.items()}}
            for i in range(count)]


def alarms_over(rows: list[dict], real_coverage: float | None = None) -> list[set[str]]:
    """The kinds firing after each probe, as the monitor sees them one by one."""
    return [set(check(rows[:i + 1], real_coverage)) for i in range(len(rows))]


def test_a_healthy_run_raises_nothing():
    rows = probes(diversity=[0.5, 0.6, 0.8, 0.9, 0.95], g_grad_norm=[3.0, 2.0, 1.0, 0.8, 0.7],
                  d_acc_real=[1.0, 1.0, 0.8, 0.7, 0.6], coverage=[3.0, 6.0, 9.0, 9.5, 9.4])
    assert alarms_over(rows, real_coverage=9.8) == [set()] * 5


def test_early_training_raises_nothing():
    """An untrained G makes one image and D wins: the first probes, and all before step 500, set the baseline."""
    early = {"diversity": [0.1] * 9, "d_acc_real": [1.0] * 9, "d_acc_fake": [1.0] * 9,
             "g_grad_norm": [5.0] + [0.01] * 8}
    assert alarms_over(probes(every=500, **{key: values[:2] for key, values in early.items()})) == [set()] * 2
    assert alarms_over(probes(every=50, **early)) == [set()] * 9


def test_mode_collapse_is_a_sharp_drop_or_a_level_far_below_the_data_for_two_probes():
    dropped = alarms_over(probes(diversity=[0.5, 0.7, 0.9, 0.9, 0.4, 0.3]))
    assert dropped[-2:] == [set(), {"mode_collapse"}]
    assert alarms_over(probes(diversity=[0.5, 0.7, 0.9, 0.9, 0.4, 0.9]))[-1] == set()  # one dip is no collapse
    assert alarms_over(probes(diversity=[0.5, 0.7, 0.6, 0.5, 0.45, 0.4]))[-1] == set()  # drifting, not dropping
    never = alarms_over(probes(diversity=[0.3, 0.4, 0.2, 0.2]))  # G never spread out
    assert never == [set(), set(), set(), {"mode_collapse"}]
    fewer_classes = probes(coverage=[9.0, 9.0, 9.0, 9.0, 4.0, 3.0])
    assert "coverage 3" in check(fewer_classes, real_coverage=9.8)["mode_collapse"]
    assert check(fewer_classes, real_coverage=None) == {}  # no classifier, no coverage rule


def test_low_coverage_is_a_partial_collapse_that_lasts():
    """The README's dense MNIST run: 5.5-6.6 effective classes against the data's 9.9, never a collapse."""
    dense = probes(every=300, coverage=[1.0, 1.9, 5.5, 6.6, 5.8, 6.1, 5.6])
    assert alarms_over(dense, real_coverage=9.86) == [set()] * 3 + [{"low_coverage"}] * 4
    assert "5.6 effective classes, the real data 9.9" in check(dense, real_coverage=9.86)["low_coverage"]
    one_dip = probes(coverage=[6.0, 9.0, 9.5, 6.0, 9.4])  # below 0.7 x 9.86 once: not yet
    assert alarms_over(one_dip, real_coverage=9.86) == [set()] * 5
    assert check(dense, real_coverage=None) == {}  # no classifier, no coverage rule
    collapsed = probes(coverage=[9.0, 9.0, 9.0, 9.0, 4.0, 3.0])  # a collapse is one, not also low coverage
    assert set(check(collapsed, real_coverage=9.8)) == {"mode_collapse"}


def test_short_runs_are_probed_and_judged_in_proportion():
    assert [default_every(steps) for steps in (None, 50, 200, 3000, 100_000)] == [500, 10, 20, 300, 500]
    assert [warmup_steps(steps) for steps in (None, 200, 3000)] == [500, 100, 500]
    # A 200-step run whose G never spread out: judged from step 100 on, when the default run had no probe yet.
    never = probes(every=20, diversity=[0.1] * 10)
    assert alarms_over(never)[-1] == set()  # judged as a long run would be: all still warm-up
    assert [set(check(never[:i + 1], warmup=100)) for i in range(10)] == [set()] * 5 + [{"mode_collapse"}] * 5


def test_a_run_without_health_every_probes_a_tenth_of_its_length(tmp_path):
    run = ganframe.train(tiny_config(tmp_path, steps=60), progress=False)
    rows, health = health_of(run.path)
    assert [int(row["step"]) for row in rows] == list(range(10, 61, 10))  # at least 10 steps apart
    assert health["summary"]["every"] == 10


def test_divergence_fires_at_once_on_non_finite_values_and_on_exploding_norms():
    assert alarms_over(probes(g_grad_norm=[math.nan]))[0] == {"divergence"}
    assert alarms_over(probes(d_margin=[1.0, math.inf]))[-1] == {"divergence"}
    assert alarms_over(probes(d_grad_norm=[1.0, 2.0, 1.5, 5e3]))[-1] == {"divergence"}
    assert alarms_over(probes(d_grad_norm=[1.0, 2.0, 1.5, 50.0]))[-1] == set()


def test_a_frozen_discriminator_is_one_that_stays_still_while_g_moves():
    assert alarms_over(probes(d_change=[0.0, 0.0], g_change=[0.05, 0.05])) == [set(), {"frozen_discriminator"}]
    assert alarms_over(probes(d_change=[0.0, 0.0], g_change=[0.0, 0.0]))[-1] == set()  # nothing trains: another problem
    assert alarms_over(probes(d_change=[0.0, 1e-3, 0.0], g_change=[0.05] * 3))[-1] == set()


def test_the_discriminator_wins_when_it_is_always_right_and_g_has_no_gradient_left():
    won = {"d_acc_real": [0.8, 0.8, 1.0, 1.0, 1.0], "d_acc_fake": [0.8, 0.8, 1.0, 1.0, 1.0]}
    assert alarms_over(probes(**won, g_grad_norm=[2.0, 0.1, 0.05, 0.04, 0.03]))[-2:] == [set(), {"discriminator_wins"}]
    assert alarms_over(probes(**won, g_grad_norm=[2.0, 1.5, 1.8, 2.0, 2.2]))[-1] == set()  # G still learns


def test_the_measures():
    same = np.ones((5, 8, 8, 1), np.float32)
    assert mean_pairwise_distance(same) == 0.0
    assert mean_pairwise_distance(np.array([[0.0, 0.0], [3.0, 4.0]])) == pytest.approx(5.0)
    assert effective_classes(np.eye(4)[[0, 1, 2, 3]]) == (pytest.approx(4.0), 4)
    assert effective_classes(np.eye(4)[[2] * 100]) == (pytest.approx(1.0), 1)
    assert relative_change([np.full(4, 2.0)], [np.full(4, 2.0)]) == 0.0
    assert relative_change([np.array([3.0, 4.0])], [np.array([3.0, 4.5])]) == pytest.approx(0.1)


def test_a_conditional_g_that_ignores_its_noise_has_no_diversity():
    """One image per class spans the classes, so only the within-class ratio sees the collapse."""
    rng = np.random.default_rng(0)
    real, labels = rng.random((200, 8, 8, 1)), np.repeat(np.arange(10), 20)
    one_per_class = real[::20][labels]  # each image of class k is the first real image of class k
    assert diversity(real, real) == pytest.approx(1.0)
    assert diversity(one_per_class, real) > 0.9  # across classes it looks varied ...
    assert diversity(one_per_class, real, labels, labels) == pytest.approx(0.0, abs=1e-6)  # ... within a class, copies
    assert diversity(real[::-1], real, labels[::-1], labels) == pytest.approx(1.0)
    assert diversity(real, np.zeros_like(real)) is None


def test_each_loss_says_where_d_decides():
    registry, spec = ganframe.get_registry(), ganframe.DataSpec((8, 8, 1))
    boundaries = {name: registry.build("loss", name, {}, spec).decision_boundary
                  for name in ("nonsaturating", "minimax", "lsgan", "hinge", "wasserstein")}
    assert boundaries == {"nonsaturating": 0.0, "minimax": 0.0, "lsgan": 0.5, "hinge": 0.0, "wasserstein": 0.0}


# -- the probe in real runs ---------------------------------------------------------------------------------


def test_the_probe_changes_no_training_and_its_log_follows_resume(tmp_path):
    """Weights with and without probes are equal bit for bit; after a crash that lost ckpt-8 the log restarts at 4."""
    probed = ganframe.train(tiny_config(tmp_path, steps=8, health={"every": 2}, out=str(tmp_path / "a"),
                                        callbacks={"checkpoint": {"every": 4}}), progress=False)
    plain = ganframe.train(tiny_config(tmp_path, steps=8, health={"every": 0}, out=str(tmp_path / "b"),
                                       callbacks={"checkpoint": {"every": 4}}), progress=False)
    for mine, theirs in zip(probed.gan.weights, plain.gan.weights):
        np.testing.assert_array_equal(np.asarray(mine), np.asarray(theirs))
    assert not (plain.path / "health.csv").exists()
    rows, health = health_of(probed.path)
    assert [int(row["step"]) for row in rows] == [2, 4, 6, 8] and health["summary"]["probes"] == 4

    (probed.path / "checkpoints" / "ckpt-000000008.npz").unlink()
    resumed = ganframe.train({"steps": 12}, resume=probed.path, progress=False)
    rows, health = health_of(resumed.path)
    assert [int(row["step"]) for row in rows] == [2, 4, 6, 8, 10, 12] and health["summary"]["probes"] == 6
    assert all(row["coverage"] == "" for row in rows)  # 8x8 digits: no classifier


def test_a_conditional_gan_is_probed_with_its_labels(tmp_path):
    run = ganframe.train(tiny_config(tmp_path, steps=4, health={"every": 2},
                                     arch_options={**tiny_config(tmp_path)["arch_options"], "conditional": True}),
                         progress=False)
    rows, _ = health_of(run.path)
    assert len(rows) == 2 and all(math.isfinite(float(row["g_grad_norm"])) for row in rows)


@needs_mnist
def test_mnist_runs_get_class_coverage(tmp_path):
    config = tiny_config(tmp_path, data="mnist", data_dir=str(REAL_MNIST), data_options={"limit": 512}, steps=4,
                         health={"every": 2, "samples": 128})
    rows, health = health_of(ganframe.train(config, progress=False).path)
    assert all(1.0 <= float(row["coverage"]) <= 10.0 for row in rows)
    assert health["summary"]["real"]["coverage"] > 8.0  # real digits: nearly all ten classes, evenly


@pytest.mark.slow
def test_a_run_with_a_frozen_discriminator_collapses_and_says_so(tmp_path, capsys):
    run = ganframe.train(learning_run(tmp_path, seed=0, steps=600, d_optimizer={"name": "sgd", "learning_rate": 1e-12}),
                         progress=False)

    assert spread_against_the_data(run) < 0.3  # truly collapsed
    rows, health = health_of(run.path)
    assert float(rows[-1]["diversity"]) < 0.3 and float(rows[-1]["d_change"]) < 1e-6
    assert [warning["kind"] for warning in health["warnings"]] == ["frozen_discriminator", "mode_collapse"]
    assert all(warning["advice"] and warning["message"] for warning in health["warnings"])
    assert health["summary"]["active"] == ["frozen_discriminator", "mode_collapse"]
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("health warning")]
    assert len(printed) == 2 and "frozen discriminator" in printed[0] and "Advice:" in printed[0]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_healthy_runs_raise_no_alarm(tmp_path, capsys, seed):
    run = ganframe.train(learning_run(tmp_path, seed=seed, steps=800), progress=False)
    rows, health = health_of(run.path)
    assert len(rows) == 16 and health["warnings"] == []
    assert float(rows[-1]["diversity"]) > 0.8  # healthy indeed: its samples spread nearly as the real ones
    assert spread_against_the_data(run) > 0.8
    assert "health warning" not in capsys.readouterr().out
