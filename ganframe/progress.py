"""Progress output and the wall-time budget, as Keras callbacks the engine always adds.

On a terminal: a live progress bar. Otherwise (CI, logs, nohup): one plain
line every ``interval`` seconds, so long runs show they are alive.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

import keras

from ganframe.intervals import IntervalMeans


def duration(seconds: float) -> str:
    """``4500`` -> ``1h15m``, ``90`` -> ``1m30s``, ``45`` -> ``45s``: short enough for a progress line."""
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    if hours:
        return f"{hours}h{rest // 60:02d}m"
    return f"{rest // 60}m{rest % 60:02d}s" if rest >= 60 else f"{rest}s"


class Progress(keras.callbacks.Callback):
    """Reports step, speed, losses and time left, as a bar on a TTY and as lines elsewhere.

    The losses shown are means over the steps since the previous report (:mod:`ganframe.intervals`),
    the same numbers ``metrics.csv`` and TensorBoard hold, not Keras's running means since step 1.
    """

    def __init__(self, total_steps: int | None, *, interval: float = 15.0, stream: TextIO | None = None,
                 bar: bool | None = None) -> None:
        super().__init__()
        self.total_steps = total_steps
        self.interval = interval
        self.stream = stream or sys.stdout
        self.bar = self.stream.isatty() if bar is None else bar

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.start_step = self.model.global_step
        self.start_time = self.last_print = time.perf_counter()
        self.timed = False
        self.means = IntervalMeans(self.model)
        self.values: dict[str, float] = {}  # the latest interval's means, for the final report
        self.progbar = None
        if self.bar and self.total_steps:
            self.progbar = keras.utils.Progbar(self.total_steps, stateful_metrics=["d_loss", "g_loss", "d_real", "d_fake"])
            self.progbar.update(self.start_step)

    def _take(self) -> dict[str, float]:
        self.values = self.means.take() or self.values
        return self.values

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        now = time.perf_counter()
        if not self.timed:  # the first call compiled the step: speed and time left count from here
            self.timed = True
            self.start_step, self.start_time = self.model.global_step, now
            self.last_print = now
        if self.progbar is not None:
            if now - self.last_print >= self.progbar.interval:
                self.progbar.update(self.model.global_step, list(self._take().items()))
                self.last_print = now
        elif now - self.last_print >= self.interval:
            self.print_line(now, self._take())

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.progbar is not None:
            self.progbar.update(self.model.global_step, list(self._take().items()), finalize=True)
        else:
            self.print_line(time.perf_counter(), self._take(), final=True)

    def print_line(self, now: float, values: dict[str, float], final: bool = False) -> None:
        """One progress line; the final one has no time left, which a stop before the end would belie."""
        step = self.model.global_step
        rate = (step - self.start_step) / max(now - self.start_time, 1e-9)
        where = f"step {step}"
        if self.total_steps:
            where += f"/{self.total_steps} ({100 * step / self.total_steps:.0f}%)"
            if rate > 0 and not final:
                where += f", {duration((self.total_steps - step) / rate)} left"
        speed = f"  {rate:.1f} steps/s" if rate > 0 else ""
        shown = "  ".join(f"{k} {v:.4f}" for k, v in values.items())
        print(f"{where}{speed}  {shown}", file=self.stream, flush=True)
        self.last_print = now


class TimeBudget(keras.callbacks.Callback):
    """Stops training cleanly once ``seconds`` of wall time have passed (``--max-time``)."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.ran_out = False  # whether it, rather than the run's length, ended training

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.deadline = time.perf_counter() + self.seconds

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if time.perf_counter() >= self.deadline:
            self.model.stop_training = self.ran_out = True
