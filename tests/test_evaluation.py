"""Evaluation during training, the best checkpoint, callback state across resume, and resume's limits.

The metric here is ``mean_gap``: |mean(real) - mean(fake)|, lower is better, registered by an
in-process plugin exactly as a third-party metric would be.
"""

from __future__ import annotations

import csv

import keras
import numpy as np
import pytest

import ganframe
from ganframe.checkpoints import list_checkpoints, read_checkpoint
from tinyrun import tiny_config



class MeanGap(ganframe.Metric):
    higher_is_better = False

    def compute(self, real: np.ndarray, fake: np.ndarray) -> dict[str, float]:
        return {"mean_gap": abs(float(real.mean()) - float(fake.mean()))}


class Counter(keras.callbacks.Callback):
    """Counts the batches it has seen over the whole run: state that only survives resume if saved."""

    def __init__(self) -> None:
        super().__init__()
        self.batches = 0
        self.restored: tuple[dict, int] | None = None

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1

    def get_state(self) -> dict:
        return {"batches": self.batches}

    def set_state(self, state: dict, step: int) -> None:
        self.batches = state.get("batches", 0)
        self.restored = (state, step)


class Scripted(ganframe.Metric):
    """Scores the evaluations in turn from a fixed list, so a test decides which one is best."""

    higher_is_better = False

    def __init__(self, scores: list[float]) -> None:
        self.scores = iter(scores)

    def compute(self, real: np.ndarray, fake: np.ndarray) -> dict[str, float]:
        return {"scripted": next(self.scores)}


COUNTERS: list[Counter] = []


def _counter(context, options):
    COUNTERS.append(Counter())
    return COUNTERS[-1]


class EvaluationPlugin:
    @staticmethod
    @ganframe.hookimpl
    def ganframe_register_metrics(register):
        register("mean_gap", lambda spec, options: MeanGap(), "|mean(real) - mean(fake)|.")
        # evaluations at steps 0, 4, 8: the middle one is best (lower is better), not the last
        register("scripted", lambda spec, options: Scripted([3.0, 1.0, 2.0]), "3, then 1, then 2.")

    @staticmethod
    @ganframe.hookimpl
    def ganframe_register_callbacks(register):
        register("counter", _counter, "Counts batches; its count survives resume.")


@pytest.fixture(scope="module")
def registry():
    return ganframe.load_plugins(extra=[("evaluation-test", EvaluationPlugin)])


def config(tmp_path, **changes) -> dict:
    """The tiny run for 8 steps, scored every 4 by ``mean_gap``, with the ``counter`` callback."""
    return tiny_config(tmp_path, **{
        "steps": 8,
        "seed": 5,
        "callbacks": {"samples": {"every": 0}, "checkpoint": {"every": 4}, "metrics": {"every": 2}, "counter": {}},
        "metrics": {"mean_gap": {}},
        "evaluation": {"every": 4, "samples": 200, "best": "mean_gap"},
        **changes,
    })


def _steps(path) -> list[int]:
    with open(path, newline="") as handle:
        return [int(row["step"]) for row in csv.DictReader(handle)]


def test_scores_are_logged_and_the_best_checkpoint_kept(registry, tmp_path, capsys):
    run = ganframe.train(config(tmp_path), registry=registry, progress=False)

    with open(run.path / "evaluations.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["step"]) for row in rows] == [0, 4, 8]  # step 0 is the untrained baseline
    gaps = {int(row["step"]): float(row["mean_gap"]) for row in rows}
    assert all(np.isfinite(list(gaps.values())))
    assert "evaluation at step 4: mean_gap" in capsys.readouterr().out

    best_step = min((step for step in gaps if step > 0), key=gaps.get)
    manifest, _ = read_checkpoint(run.path / "checkpoints" / "best.npz")
    assert manifest["step"] == best_step
    assert manifest["score"]["mean_gap"] == pytest.approx(gaps[best_step], rel=1e-5)
    assert [step for step, _ in list_checkpoints(run.path / "checkpoints")] == [4, 8]  # best is not rotated

    best = ganframe.load_run(run.path, checkpoint="best", registry=registry)
    assert best.step == best_step
    latest = ganframe.load_run(run.path, registry=registry)
    assert latest.step == 8


def test_the_best_checkpoint_is_the_best_evaluation_not_the_last(registry, tmp_path):
    run = ganframe.train(config(tmp_path, metrics={"scripted": {}}, evaluation={"every": 4, "samples": 200,
                                                                               "best": "scripted"}),
                         registry=registry, progress=False)
    manifest, _ = read_checkpoint(run.path / "checkpoints" / "best.npz")
    assert (manifest["step"], manifest["score"]["scripted"]) == (4, 1.0)  # not step 8's 2.0

    best = ganframe.load_run(run.path, checkpoint="best", registry=registry)
    at_4 = ganframe.load_run(run.path, checkpoint=run.path / "checkpoints" / "ckpt-000000004.npz", registry=registry)
    latest = ganframe.load_run(run.path, registry=registry)
    assert (best.step, at_4.step, latest.step) == (4, 4, 8)
    np.testing.assert_array_equal(best.generate(8, seed=3), at_4.generate(8, seed=3))
    assert not np.array_equal(best.generate(8, seed=3), latest.generate(8, seed=3))


def test_a_best_score_no_metric_reports_fails_before_training(registry, tmp_path):
    with pytest.raises(ganframe.ConfigError, match="'fid' is not among the scores .*mean_gap"):
        ganframe.train(config(tmp_path, evaluation={"best": "fid"}), registry=registry, progress=False)
    assert list_checkpoints(tmp_path / "run" / "checkpoints") == []


def test_resume_after_a_lost_checkpoint_continues_logs_and_callback_state(registry, tmp_path):
    """A crash after step 8 that lost ckpt-8: resume starts at 4, and the logs drop what came after it."""
    COUNTERS.clear()
    first = ganframe.train(config(tmp_path), registry=registry, progress=False)
    assert COUNTERS[-1].batches == 8
    (first.path / "checkpoints" / "ckpt-000000008.npz").unlink()

    resumed = ganframe.train({"steps": 12}, resume=first.path, registry=registry, progress=False)

    assert resumed.step == 12
    assert COUNTERS[-1].restored == ({"batches": 4}, 4)
    assert COUNTERS[-1].batches == 4 + 8
    assert _steps(resumed.path / "metrics.csv") == [2, 4, 6, 8, 10, 12]
    assert _steps(resumed.path / "evaluations.csv") == [0, 4, 8, 12]


def test_resume_refuses_changes_the_checkpoints_cannot_honour(registry, tmp_path):
    run = ganframe.train(config(tmp_path, metrics={}, evaluation={}), registry=registry, progress=False)
    before = {path: path.read_bytes() for path in run.path.rglob("*") if path.is_file()}

    with pytest.raises(ganframe.ConfigError) as caught:
        ganframe.train({"arch_options.latent_dim": 4, "steps": 12}, resume=run.path, registry=registry, progress=False)
    message = str(caught.value)
    assert caught.value.exit_code == 2
    assert "incompatible" in message and "arch_options.latent_dim (8 -> 4)" in message and "--out" in message
    assert {path: path.read_bytes() for path in run.path.rglob("*") if path.is_file()} == before
