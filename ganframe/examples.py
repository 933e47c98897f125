"""The examples of a data set, without an input pipeline: its size, and some of them in memory.

A run asks what a data set holds (how many examples, whether a step fits in it), and evaluation, the
health probe and the grids of conditions read a seeded sample of it into memory. For a set held in memory
(:class:`~ganframe.ImageData`) that is numpy alone, so a run on a backend other than TensorFlow needs no
TensorFlow for it; a :class:`~ganframe.DataSource` or :class:`~ganframe.DataStream` is read with TensorFlow
ops, by :mod:`ganframe.pipeline`, imported only then.
"""

from __future__ import annotations

import numpy as np

from ganframe.contract import DataSource, DataStream, ImageData, in_range
from ganframe.order import check_step

#: A data set: whole in memory, from storage by index, or as a stream.
Data = ImageData | DataSource | DataStream


def size_of(data: Data, counted: bool = False) -> int | None:
    """The number of examples: a set's or a source's length, a stream's size (what its :meth:`~DataStream.count`
    finds, reading it if need be, when ``counted``), or None when unknown."""
    if not isinstance(data, DataStream):
        return len(data)
    return data.count() if counted else data.size


def check_batch(data: Data, batch_size: int, n_critic: int = 1) -> None:
    """Refuse a step that needs more images than the data set holds (each step takes ``n_critic`` batches);
    a stream of unknown size passes."""
    check_step(size_of(data), batch_size, n_critic)


def take(data: ImageData | DataSource, indices: np.ndarray) -> ImageData:
    """The examples at ``indices`` in memory, as float32 in the data's range (an unreadable example of a
    skipping source is left out)."""
    indices = np.asarray(indices, np.int64)
    if not isinstance(data, ImageData):
        from ganframe import pipeline  # a source's examples are read with TensorFlow ops

        return pipeline.read_examples(data, indices)
    return ImageData(in_range(data.images[indices], data.spec.value_range),
                     None if data.labels is None else data.labels[indices], data.spec, data.name,
                     None if data.conditions is None else data.conditions[indices])


def sample(data: Data, count: int, seed: int) -> ImageData:
    """Up to ``count`` examples in memory, as float32 in the data's range, drawn with ``seed``: of a set or a
    source a seeded choice without repeats (:func:`take`), of a stream the first of a pass through its seeded
    shuffle buffer. What evaluation, the health probe and the grids of conditions read."""
    if not isinstance(data, DataStream):
        return take(data, np.random.default_rng(seed).choice(len(data), min(count, len(data)), replace=False))
    from ganframe import pipeline  # a stream hands over its passes as tf.data data sets

    return pipeline.first_of_pass(data, count, seed)
