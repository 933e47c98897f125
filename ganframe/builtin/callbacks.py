"""Built-in callbacks: sample grids, checkpoints, the metrics log and TensorBoard, registered like any plugin's.

This module stays TensorFlow-free (listing plugins must be fast); the Keras
callback classes live in :mod:`ganframe.builtin.callback_impl`, imported by the
factories when a run starts.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ganframe import CallbackContext, Options, hookimpl


class SamplesOptions(Options):
    every: int = Field(500, ge=0, description="steps between sample grids; 0 switches them off")
    n: int = Field(64, ge=1, le=1024, description="images per grid (a generator that takes conditions: rows of "
                                                   "condition | output | real image)")
    seed: int | None = Field(None, ge=0, description="noise seed of the fixed grid; default: the run's seed")


class CheckpointOptions(Options):
    every: int = Field(1000, ge=0, description="steps between checkpoints; 0 keeps only the final one")
    keep: int = Field(3, ge=1, description="how many of the newest checkpoints to keep")


class MetricsOptions(Options):
    every: int = Field(50, ge=0, description="steps between rows of metrics.csv; 0 switches it off")


class TensorBoardOptions(Options):
    every: int = Field(50, ge=0, description="steps between scalars (losses, learning rates, new health and score rows); "
                       "0 switches them off")
    images_every: int = Field(500, ge=0, description="steps between sample grids (and one at the end); 0 switches them off")
    n: int = Field(16, ge=1, le=1024, description="images per grid")


def samples(context: CallbackContext, options: SamplesOptions) -> Any:
    from ganframe.builtin.callback_impl import SampleGrid

    return SampleGrid(context, options)


def checkpoint(context: CallbackContext, options: CheckpointOptions) -> Any:
    from ganframe.builtin.callback_impl import Checkpoint

    return Checkpoint(context, options)


def metrics(context: CallbackContext, options: MetricsOptions) -> Any:
    from ganframe.builtin.callback_impl import MetricsLog

    return MetricsLog(context, options)


def tensorboard(context: CallbackContext, options: TensorBoardOptions) -> Any:
    from ganframe.builtin.callback_impl import TensorBoardLog

    return TensorBoardLog(context, options)


@hookimpl
def ganframe_register_callbacks(register):
    register("samples", samples, "A PNG grid of samples from fixed noise every N steps (samples/).", SamplesOptions)
    register("checkpoint", checkpoint, "Resumable checkpoints every N steps and at the end (checkpoints/).", CheckpointOptions)
    register("metrics", metrics, "Losses and D outputs averaged over every N steps (metrics.csv).", MetricsOptions)
    register("tensorboard", tensorboard, "Losses, learning rates, health, scores and sample grids as TensorBoard "
             "event files (tensorboard/); view with `tensorboard --logdir runs/`.", TensorBoardOptions)
