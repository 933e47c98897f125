"""Keras callback classes behind the built-in callback components."""

from __future__ import annotations

import time
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ganframe import CallbackContext, CsvLog, IntervalMeans, save_checkpoint, save_image_grid
from ganframe.images import image_grid


def _crossed(last_step: int, step: int, every: int) -> bool:
    """Whether going from ``last_step`` to ``step`` passed a multiple of ``every`` (0: never)."""
    return bool(every) and step // every > last_step // every


class _Periodic(keras.callbacks.Callback):
    """Acts when the global step crosses a multiple of ``every`` (robust to steps_per_execution)."""

    def __init__(self, every: int) -> None:
        super().__init__()
        self.every = every
        self.last_step = 0

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.last_step = self.model.global_step

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        step = self.model.global_step
        if _crossed(self.last_step, step, self.every):
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
        # conditional: one class per row; a G that takes conditions: condition | output | image rows
        images, columns = self.model.sample_grid(self.n, seed=self.seed)
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
    """Appends one row per interval to ``metrics.csv``: each metric's mean over that interval
    (:class:`ganframe.IntervalMeans`). When the run resumes or rolls back, the rows after the
    restored step go (``set_state``).
    """

    def __init__(self, context: CallbackContext, options: Any) -> None:
        super().__init__(options.every)
        self.log = CsvLog(context.run_dir / "metrics.csv")

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        super().on_train_begin(logs)
        self.clock, self.clock_step, self.means = time.perf_counter(), self.last_step, IntervalMeans(self.model)

    def act(self, step: int, logs: dict[str, Any]) -> None:
        now = time.perf_counter()
        row = {"step": step, "steps_per_s": (step - self.clock_step) / max(now - self.clock, 1e-9),
               **dict.fromkeys((m.name for m in self.model.metrics), None),  # empty: no finite value in the interval
               **self.means.take()}
        self.log.append(row)
        self.clock, self.clock_step = now, step

    def get_state(self) -> dict[str, Any]:
        return {}

    def set_state(self, state: dict[str, Any], step: int) -> None:
        self.log.truncate_after(step)


#: TensorBoard's section of each engine metric; a metric not named here goes under ``metrics/``.
_SECTIONS = {"d_loss": "loss", "g_loss": "loss", "d_real": "d_output", "d_fake": "d_output"}


def _metadata(plugin: str) -> tf.compat.v1.SummaryMetadata:
    """The metadata by which TensorBoard's ``scalars`` and ``images`` dashboards claim a summary (format version 0)."""
    return tf.compat.v1.SummaryMetadata(plugin_data=tf.compat.v1.SummaryMetadata.PluginData(plugin_name=plugin))


class TensorBoardLog(_Periodic):
    """TensorBoard event files in ``tensorboard/``: every ``every`` steps the interval means (the numbers of
    ``metrics.csv``), both learning rates and the rows new in ``health.csv`` and ``evaluations.csv``; every
    ``images_every`` steps and at the end, the fixed-noise sample grid.

    Summaries are written in TensorBoard's own formats with ``tf.summary.write``: TensorFlow's
    ``tf.summary.scalar`` and ``image`` would import the ``tensorboard`` package, which a run must not need.
    Steps are the global step, so a resumed run's new event file continues the same curves.
    """

    def __init__(self, context: CallbackContext, options: Any) -> None:
        super().__init__(options.every)
        self.images_every = options.images_every if context.spec.channels in (1, 3) else 0
        if options.images_every and not self.images_every:
            print(f"tensorboard: data of shape {context.spec.shape} are not images (1 or 3 channels); no sample grids")
        self.directory = context.run_dir / "tensorboard"
        self.n = options.n
        self.seed = context.seed
        # the CSVs the health probe and the evaluator write are the source: this callback knows neither
        self.logs = {"health": CsvLog(context.run_dir / "health.csv"), "scores": CsvLog(context.run_dir / "evaluations.csv")}
        self.writer: Any = None
        self.image_step = -1

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        super().on_train_begin(logs)
        if self.writer is None and (self.every or self.images_every):
            self.writer = tf.summary.create_file_writer(str(self.directory))
        self.means = IntervalMeans(self.model)
        self.image_last = self.last_step
        # rows up to a resumed step went into the event files before; a new run logs its step-0 evaluation
        self.logged = dict.fromkeys(self.logs, self.last_step if self.last_step else -1)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        step = self.model.global_step
        if _crossed(self.image_last, step, self.images_every):
            self.write_grid(step)
        self.image_last = step
        super().on_train_batch_end(batch, logs)

    def act(self, step: int, logs: dict[str, Any]) -> None:
        with self.writer.as_default(step=step):
            for name, value in self.means.take().items():
                self.scalar(f"{_SECTIONS.get(name, 'metrics')}/{name}", value)
            for net in ("d", "g"):
                self.scalar(f"learning_rate/{net}", getattr(self.model, f"{net}_optimizer").learning_rate)
        self.write_rows()
        self.writer.flush()  # the curves are live, and a crash loses nothing already logged

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.writer is None:
            return
        step = self.model.global_step
        if self.images_every and step != self.image_step and step > 0:
            self.write_grid(step)
        if self.every:
            self.write_rows()  # the evaluator scores the final step just before
        self.writer.close()
        self.writer = None

    @staticmethod
    def scalar(tag: str, value: Any) -> None:
        """One point of TensorBoard's scalar format (a float32 tensor), at the writer's current step."""
        tf.summary.write(tag, tf.cast(value, tf.float32), metadata=_metadata("scalars"))

    def write_rows(self) -> None:
        """Each health figure and score of the rows logged since the previous call, at its own step."""
        for section, log in self.logs.items():
            for row in log.rows():
                if row["step"] <= self.logged[section]:
                    continue
                with self.writer.as_default(step=row["step"]):
                    for column, value in row.items():
                        if column not in ("step", "seconds") and value is not None:  # seconds: an evaluation's cost
                            self.scalar(f"{section}/{column}", value)
                self.logged[section] = row["step"]

    def write_grid(self, step: int) -> None:
        """The fixed-noise grid as TensorBoard's image format: width, height and the PNG, as strings."""
        images, columns = self.model.sample_grid(self.n, seed=self.seed)
        grid = image_grid(images, self.model.output_range, columns)
        png = tf.io.encode_png(grid).numpy()
        data = np.array([str(grid.shape[1]).encode(), str(grid.shape[0]).encode(), png], dtype=object)
        with self.writer.as_default(step=step):
            tf.summary.write("samples", tf.constant(data, tf.string), metadata=_metadata("images"))
        self.writer.flush()
        self.image_step = step
