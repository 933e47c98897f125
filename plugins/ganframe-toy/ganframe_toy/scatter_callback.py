"""The Keras callback behind ``scatter`` (imports Keras; loaded by the factory when a run starts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np

from ganframe import atomic_write

from ganframe_toy.scatter import draw_scatter


class ScatterPlot(keras.callbacks.Callback):
    """Writes ``step_<N>.png`` when the global step crosses a multiple of ``every``, and when training ends.

    The generated points come from the same noise each time, so plots compare over training.
    Steps are the engine's ``global_step``, so plots land on the same steps with
    ``steps_per_execution`` > 1 and after a resume.
    """

    def __init__(self, directory: Path, every: int, n: int, seed: int, real: np.ndarray | None,
                 value_range: tuple[float, float], size: int) -> None:
        super().__init__()
        self.directory = directory
        self.every = every
        self.n = n
        self.seed = seed
        self.real = real
        self.value_range = value_range
        self.size = size
        self.last_step = 0
        self.saved_step = -1

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.last_step = self.model.global_step

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        step = self.model.global_step
        if self.every and step // self.every > self.last_step // self.every:
            self.plot(step)
        self.last_step = step

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        step = self.model.global_step
        if self.every and step > 0 and step != self.saved_step:
            self.plot(step)

    def plot(self, step: int) -> Path:
        fake = self.model.generate(self.n, seed=self.seed)
        picture = draw_scatter(fake, self.real, self.value_range, self.size, title=f"step {step}")
        path = self.directory / f"step_{step:07d}.png"
        with atomic_write(path) as handle:
            picture.save(handle, format="PNG")
        self.saved_step = step
        return path
