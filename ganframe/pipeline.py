"""The input pipeline: an in-memory data set as a seeded, repeating ``tf.data`` stream.

Each element is one train step's worth of real images (``n_critic`` slices of
``batch_size``), plus labels when the data has them. The stream is a pure
function of (data, seed, batch shape), so a resumed run skips to the step it
reached and sees exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import tensorflow as tf

from ganframe.contract import ImageData
from ganframe.errors import ConfigError


def make_dataset(data: ImageData, batch_size: int, *, n_critic: int = 1, seed: int = 0,
                 start_step: int = 0, with_labels: bool | None = None) -> tf.data.Dataset:
    """Shuffled (reshuffled every epoch), batched, repeating, prefetched; starts at ``start_step``."""
    per_step = batch_size * n_critic
    if len(data) < per_step:
        raise ConfigError(
            f"batch_size × n_critic = {per_step} is larger than the data set ({len(data)} images); "
            f"lower batch_size to at most {len(data) // n_critic}"
        )
    with_labels = data.labels is not None if with_labels is None else with_labels
    tensors = (data.images, data.labels) if with_labels else data.images
    dataset = (
        tf.data.Dataset.from_tensor_slices(tensors)
        .shuffle(len(data), seed=seed, reshuffle_each_iteration=True)
        .repeat()
        .batch(per_step, drop_remainder=True)
    )
    if start_step:
        dataset = dataset.skip(start_step)
    return dataset.prefetch(tf.data.AUTOTUNE)
