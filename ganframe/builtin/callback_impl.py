"""Keras callback classes behind the built-in callback components."""

from __future__ import annotations

import time
from typing import Any

import keras

from ganframe import CallbackContext, CsvLog, save_checkpoint, save_image_grid


class _Periodic(keras.callbacks.Callback):
    """Acts when the global step crosses a multiple of ``every`` (robust to steps_per_execution)."""

    def __init__(self, every: int) -> None:
        super().__init__()
        self.every = every
        self.last_step = 0

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.last_step = self.model.global_step

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if not self.every:
            return
        step = self.model.global_step
        if step // self.every > self.last_step // self.every:
            self.act(step, logs or {})
        self.last_step = step

    def act(self, step: int, logs: dict[str, Any]) -> None:
        raise NotImplementedError


class SampleGrid(_Periodic):
    """Saves ``samples/step_<N>.png`` from the same noise each time, so grids compare over training."""

    def __init__(self, context: CallbackContext, options: Any) -> None:
        super().__init__(options.every if context.spec.channels in (1, 3) else 0)
        if options.every and not self.every:
            print(f"samples: data of shape {context.spec.shape} are not images (1 or 3 channels); no sample grids")
        self.directory = context.run_dir / "samples"
        self.n = options.n
        self.seed = context.seed if options.seed is None else options.seed
        self.saved_step = -1

    def act(self, step: int, logs: dict[str, Any]) -> None:
        images, columns = self.model.sample_grid(self.n, seed=self.seed)  # conditional: one class per row
        save_image_grid(images, self.directory / f"step_{step:07d}.png", self.model.output_range, columns=columns)
        self.saved_step = step

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        step = self.model.global_step
        if self.every and step != self.saved_step and step > 0:
            self.act(step, logs or {})


class Checkpoint(_Periodic):
    """Writes ``checkpoints/ckpt-<step>.npz`` every N steps and when training ends, keeping the newest K."""

    def __init__(self, context: CallbackContext, options: Any) -> None:
        super().__init__(options.every)
        self.directory = context.run_dir / "checkpoints"
        self.keep = options.keep
        self.saved_step = -1

    def act(self, step: int, logs: dict[str, Any]) -> None:
        save_checkpoint(self.model, self.directory, keep=self.keep)
        self.saved_step = step

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        step = self.model.global_step
        if step != self.saved_step:
            self.act(step, logs or {})


class MetricsLog(_Periodic):
    """Appends one row per interval to ``metrics.csv``: each metric's mean over that interval.

    The engine's metrics are Keras ``Mean`` trackers (running since training began, as the
    progress bar and ``History`` expect); an interval's mean is the difference of their
    totals and counts, so nothing is reset behind other callbacks' backs. When the run
    resumes or rolls back, the rows after the restored step go (``set_state``).
    """

    def __init__(self, context: CallbackContext, options: Any) -> None:
        super().__init__(options.every)
        self.log = CsvLog(context.run_dir / "metrics.csv")

    def _sums(self) -> dict[str, tuple[float, float]]:
        return {m.name: (float(m.total.numpy()), float(m.count.numpy())) for m in self.model.metrics}

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        super().on_train_begin(logs)
        self.clock, self.clock_step, self.sums = time.perf_counter(), self.last_step, self._sums()

    def act(self, step: int, logs: dict[str, Any]) -> None:
        now, sums = time.perf_counter(), self._sums()
        row: dict[str, float] = {"step": step, "steps_per_s": (step - self.clock_step) / max(now - self.clock, 1e-9)}
        for name, (total, count) in sums.items():
            old_total, old_count = self.sums.get(name, (0.0, 0.0))
            row[name] = (total - old_total) / max(count - old_count, 1.0)
        self.log.append(row)
        self.clock, self.clock_step, self.sums = now, step, sums

    def get_state(self) -> dict[str, Any]:
        return {}

    def set_state(self, state: dict[str, Any], step: int) -> None:
        self.log.truncate_after(step)
