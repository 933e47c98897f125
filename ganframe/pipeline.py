"""The input pipeline: an in-memory data set as a seeded, repeating ``tf.data`` stream.

Each element is one train step's worth of real images (``n_critic`` slices of
``batch_size``), plus labels when the data has them. The stream is a pure
function of (data, seed, batch shape), so a resumed run skips to the step it
reached and sees exactly the batches an uninterrupted run would have seen.

With ``noise`` (under a ``tf.distribute`` strategy), each element also carries the step's
noise for G, drawn from (seed, step), and is a dict whose arrays are sample-major:
row ``j`` holds the ``j``-th image of every real slice and the ``j``-th noise vector of
every update. Splitting an element along its first axis, as a strategy does, then gives
each replica its share of every slice and every update's noise, which is what one device
would see of the global batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import tensorflow as tf

from ganframe.contract import ImageData
from ganframe.errors import ConfigError


@dataclass(frozen=True)
class NoiseSpec:
    """The noise the pipeline draws for G: ``latent_dim`` wide, with labels from ``num_classes`` when conditional."""

    latent_dim: int
    num_classes: int | None = None


def check_batch(data: ImageData, batch_size: int, n_critic: int = 1) -> None:
    """Refuse a step that needs more images than the data set holds (each step takes ``n_critic`` batches)."""
    per_step = batch_size * n_critic
    if len(data) < per_step:
        raise ConfigError(
            f"batch_size × n_critic = {per_step} is larger than the data set ({len(data)} images); "
            f"lower batch_size to at most {len(data) // n_critic}"
        )


def make_dataset(data: ImageData, batch_size: int, *, n_critic: int = 1, seed: int = 0,
                 start_step: int = 0, with_labels: bool | None = None,
                 noise: NoiseSpec | None = None) -> tf.data.Dataset:
    """Shuffled (reshuffled every epoch), batched, repeating, prefetched; starts at ``start_step``."""
    check_batch(data, batch_size, n_critic)
    with_labels = data.labels is not None if with_labels is None else with_labels
    tensors = (data.images, data.labels) if with_labels else data.images
    dataset = (
        tf.data.Dataset.from_tensor_slices(tensors)
        .shuffle(len(data), seed=seed, reshuffle_each_iteration=True)
        .repeat()
        .batch(batch_size * n_critic, drop_remainder=True)
    )
    if start_step:
        dataset = dataset.skip(start_step)
    if noise is not None:
        dataset = tf.data.Dataset.zip(tf.data.Dataset.counter(start_step), dataset).map(
            lambda step, real: _with_noise(step, real, noise, batch_size, n_critic, seed)
        )
    return dataset.prefetch(tf.data.AUTOTUNE)


def _with_noise(step: tf.Tensor, real: Any, noise: NoiseSpec, batch_size: int, n_critic: int,
                seed: int) -> dict[str, tf.Tensor]:
    """One step's element as a sample-major dict: images (and labels), noise (and noise labels) for all updates."""
    images, labels = real if isinstance(real, tuple) else (real, None)
    key = tf.stack([tf.constant(seed, tf.int64), step])
    updates = n_critic + 1  # n_critic D updates, then G's
    element = {
        "images": _sample_major(images, n_critic),
        "noise": tf.random.stateless_normal((batch_size, updates, noise.latent_dim), seed=key),
    }
    if labels is not None:
        element["labels"] = _sample_major(labels, n_critic)
    if noise.num_classes:
        element["noise_labels"] = tf.random.stateless_uniform(
            (batch_size, updates), seed=tf.random.experimental.stateless_fold_in(key, 1),
            minval=0, maxval=noise.num_classes, dtype=tf.int32,
        )
    return element


def _sample_major(values: tf.Tensor, slices: int) -> tf.Tensor:
    """(slices × B, ...) → (B, slices, ...)."""
    values = tf.reshape(values, (slices, -1, *values.shape[1:]))
    return tf.transpose(values, (1, 0, *range(2, values.shape.rank)))
