"""Scoring a run while it trains: the metrics under ``[metrics]``, and the best checkpoint.

Every ``evaluation.every`` steps (and when training ends, and at step 0 of a new run, as
a baseline that also checks the configuration early) the :class:`Evaluator` draws
``evaluation.samples`` images from fixed noise, scores them against as many real images
with every configured metric, appends a row to ``evaluations.csv`` and prints it. When
``evaluation.best`` names one of the scores, each improvement is saved to
``checkpoints/best.npz`` (a named slot that rotation never removes).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import keras
import numpy as np

from ganframe.checkpoints import BEST, save_checkpoint
from ganframe.config import EvaluationConfig
from ganframe.contract import Metric
from ganframe.errors import ConfigError
from ganframe.files import CsvLog


class Evaluator(keras.callbacks.Callback):
    """Scores samples with ``metrics`` every N steps; keeps the best checkpoint by one score."""

    def __init__(self, metrics: dict[str, Metric], real: np.ndarray, run_dir: Path, config: EvaluationConfig,
                 seed: int) -> None:
        super().__init__()
        self.metrics = metrics
        self.config = config
        self.seed = seed
        count = min(config.samples, len(real))
        self.real = real[np.random.default_rng(seed).choice(len(real), count, replace=False)]
        self.log = CsvLog(run_dir / "evaluations.csv")
        self.checkpoints = run_dir / "checkpoints"
        self.best: float | None = None
        self.best_step: int | None = None
        self.last_step = 0
        self.evaluated_step = -1

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.last_step = self.model.global_step
        if self.last_step == 0 and self.evaluated_step != 0:  # a new run (not a rollback to its start)
            self.evaluate(0)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        step, every = self.model.global_step, self.config.every
        if every and step // every > self.last_step // every:
            self.evaluate(step)
        self.last_step = step

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.model.global_step != self.evaluated_step:
            self.evaluate(self.model.global_step)

    def score(self) -> tuple[dict[str, float], dict[str, bool]]:
        """Every metric's values on fresh samples from fixed noise, and whether higher is better for each."""
        fake = self.model.generate(len(self.real), seed=self.seed + 1)
        scores: dict[str, float] = {}
        higher: dict[str, bool] = {}
        for name, metric in self.metrics.items():
            for key, value in metric.compute(self.real, fake).items():
                if key in scores:
                    raise ConfigError(f"metrics: {name!r} reports {key!r}, which another metric reports too")
                scores[key], higher[key] = float(value), metric.higher_is_better
        return scores, higher

    def evaluate(self, step: int) -> None:
        started = time.perf_counter()
        scores, higher = self.score()
        best = self.config.best
        if best is not None and best not in scores:
            raise ConfigError(f"evaluation.best: {best!r} is not among the scores of the configured metrics "
                              f"({', '.join(sorted(scores)) or 'none'})")
        note = ""
        if best is not None and step > 0:
            value = scores[best]
            if self.best is None or (value > self.best if higher[best] else value < self.best):
                self.best, self.best_step = value, step
                save_checkpoint(self.model, self.checkpoints, name=BEST, extra={"score": {best: value}})
                note = f"  (best {best}: saved {self.checkpoints / BEST})"
        self.log.append({"step": step, **scores, "seconds": time.perf_counter() - started})
        values = "  ".join(f"{key} {value:.4g}" for key, value in scores.items())
        print(f"evaluation at step {step}: {values}{note}", flush=True)
        self.evaluated_step = step

    def get_state(self) -> dict[str, Any]:
        return {"best": self.best, "best_step": self.best_step}

    def set_state(self, state: dict[str, Any], step: int) -> None:
        self.best, self.best_step = state.get("best"), state.get("best_step")
        self.log.truncate_after(step)
