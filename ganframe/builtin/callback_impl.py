"""Keras callback classes behind the built-in callback components."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np

from ganframe import CallbackContext, CsvLog, IntervalMeans, save_checkpoint, save_image_grid
from ganframe.images import image_grid, png


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


class _Events:
    """What the callback asks of an event file writer besides writing, the same whoever writes."""

    writer: Any

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class _TensorFlowEvents(_Events):
    """Event files through TensorFlow's own writer (``tf.summary.write``, which needs no ``tensorboard`` package)."""

    def __init__(self, directory: Path) -> None:
        import tensorflow as tf

        self.writer = tf.summary.create_file_writer(str(directory))

    def write(self, step: int, tag: str, value: np.ndarray, plugin: str) -> None:
        """``value`` as summary ``tag`` at ``step``, claimed by TensorBoard's ``plugin`` dashboard (format version 0)."""
        import tensorflow as tf

        metadata = tf.compat.v1.SummaryMetadata(plugin_data=tf.compat.v1.SummaryMetadata.PluginData(plugin_name=plugin))
        with self.writer.as_default(step=step):
            tf.summary.write(tag, tf.constant(value), metadata=metadata)


class _TensorBoardEvents(_Events):
    """The same event files without TensorFlow: the ``tensorboard`` package's writer and protos."""

    def __init__(self, directory: Path) -> None:
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self.writer = EventFileWriter(str(directory), filename_suffix=".v2")  # named as TensorFlow names its files

    def write(self, step: int, tag: str, value: np.ndarray, plugin: str) -> None:
        """As :meth:`_TensorFlowEvents.write`: one event holding one summary value."""
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.util import tensor_util

        metadata = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name=plugin))
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(
            tag=tag, tensor=tensor_util.make_tensor_proto(value), metadata=metadata)])
        self.writer.add_event(event_pb2.Event(wall_time=time.time(), step=step, summary=summary))


def _event_writer(directory: Path) -> _TensorFlowEvents | _TensorBoardEvents | None:
    """TensorFlow's writer where TensorFlow is installed, else the ``tensorboard`` package's; with neither, None,
    said in one line on stderr."""
    for writer in (_TensorFlowEvents, _TensorBoardEvents):
        try:
            return writer(directory)
        except ImportError:
            continue
    print("warning: tensorboard: neither tensorflow nor tensorboard is installed, so no event files are written; "
          "pip install tensorboard to have them", file=sys.stderr, flush=True)
    return None


class TensorBoardLog(_Periodic):
    """TensorBoard event files in ``tensorboard/``: every ``every`` steps the interval means (the numbers of
    ``metrics.csv``), both learning rates and the rows new in ``health.csv`` and ``evaluations.csv``; every
    ``images_every`` steps and at the end, the fixed-noise sample grid.

    Summaries are written in TensorBoard's own formats, by ``tf.summary.write`` where TensorFlow is installed
    (its ``tf.summary.scalar`` and ``image`` would import the ``tensorboard`` package, which a run must not
    need), else by the ``tensorboard`` package's own writer; with neither, by nobody (a warning says so).
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
            self.writer = _event_writer(self.directory)
            if self.writer is None:  # nothing to write with: nothing to compute either
                self.every = self.images_every = 0
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
        for name, value in self.means.take().items():
            self.scalar(step, f"{_SECTIONS.get(name, 'metrics')}/{name}", value)
        for net in ("d", "g"):
            self.scalar(step, f"learning_rate/{net}", getattr(self.model, f"{net}_optimizer").learning_rate)
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

    def scalar(self, step: int, tag: str, value: Any) -> None:
        """One point of TensorBoard's scalar format: a float32 scalar."""
        self.writer.write(step, tag, np.float32(keras.ops.convert_to_numpy(value)), "scalars")

    def write_rows(self) -> None:
        """Each health figure and score of the rows logged since the previous call, at its own step."""
        for section, log in self.logs.items():
            for row in log.rows():
                if row["step"] <= self.logged[section]:
                    continue
                for column, value in row.items():
                    if column not in ("step", "seconds") and value is not None:  # seconds: an evaluation's cost
                        self.scalar(row["step"], f"{section}/{column}", value)
                self.logged[section] = row["step"]

    def write_grid(self, step: int) -> None:
        """The fixed-noise grid as TensorBoard's image format: width, height and the PNG, as strings."""
        images, columns = self.model.sample_grid(self.n, seed=self.seed)
        grid = image_grid(images, self.model.output_range, columns)
        data = np.array([str(grid.shape[1]).encode(), str(grid.shape[0]).encode(), png(grid)], dtype=object)
        self.writer.write(step, "samples", data, "images")
        self.writer.flush()
        self.image_step = step
