"""The input pipeline: an in-memory data set as a seeded, repeating ``tf.data`` stream of batches.

Each element is one train step's batch as a dict: ``image`` holds ``n_critic`` slices of
``batch_size`` real images, ``label`` their class ids when the data has them. Which example
comes at which position is a pure function of (seed, epoch): epoch ``e`` is the permutation of
the data set's indices seeded by ``(seed, e)`` (:func:`example_order`). A run resumed at step
N therefore starts reading at step N's examples directly, without reading the N steps before
it, and sees exactly the batches an uninterrupted run sees.

With ``noise`` (under a ``tf.distribute`` strategy), each element also carries the step's
noise for G, drawn from (seed, step), and its arrays are sample-major: row ``j`` holds the
``j``-th image of every real slice and the ``j``-th noise vector of every update. Splitting an
element along its first axis, as a strategy does, then gives each replica its share of every
slice and every update's noise, which is what one device would see of the global batch.
"""

from __future__ import annotations

from dataclasses import dataclass

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


#: More epochs than any run reaches: the index stream is endless in practice.
_EPOCHS = 2**62


def example_order(size: int, seed: int, start: int = 0) -> tf.data.Dataset:
    """The indices of a data set of ``size`` examples in training order, from position ``start`` on.

    Epoch ``e`` (positions ``e * size`` to ``(e + 1) * size - 1``) is a permutation of ``range(size)``
    seeded by ``(seed, e)``: every example once per epoch, a new order each epoch, and the example
    at any position known without drawing the ones before it, so starting at position 10**9 costs
    what starting at 0 does (the skip within one epoch passes over indices only).
    """
    first_epoch, offset = divmod(start, size)

    def epoch(index: tf.Tensor) -> tf.data.Dataset:
        key = tf.stack([tf.constant(seed, tf.int64), index])
        return tf.data.Dataset.from_tensor_slices(tf.random.experimental.stateless_shuffle(
            tf.range(size, dtype=tf.int64), seed=key))

    return tf.data.Dataset.range(first_epoch, _EPOCHS).flat_map(epoch).skip(offset)


def make_dataset(data: ImageData, batch_size: int, *, n_critic: int = 1, seed: int = 0,
                 start_step: int = 0, with_labels: bool | None = None,
                 noise: NoiseSpec | None = None) -> tf.data.Dataset:
    """Batch dicts (``image``, and ``label`` for labelled data) in :func:`example_order`, endless,
    prefetched; the first is step ``start_step``'s."""
    check_batch(data, batch_size, n_critic)
    with_labels = data.labels is not None if with_labels is None else with_labels
    arrays = {"image": tf.convert_to_tensor(data.images)}
    if with_labels:
        arrays["label"] = tf.convert_to_tensor(data.labels)
    per_step = batch_size * n_critic
    dataset = (
        example_order(len(data), seed, start_step * per_step)
        .batch(per_step, drop_remainder=True)
        .map(lambda indices: {key: tf.gather(values, indices) for key, values in arrays.items()})
    )
    if noise is not None:
        dataset = tf.data.Dataset.zip(tf.data.Dataset.counter(start_step), dataset).map(
            lambda step, batch: _with_noise(step, batch, noise, batch_size, n_critic, seed)
        )
    return dataset.prefetch(tf.data.AUTOTUNE)


def _with_noise(step: tf.Tensor, batch: dict[str, tf.Tensor], noise: NoiseSpec, batch_size: int, n_critic: int,
                seed: int) -> dict[str, tf.Tensor]:
    """One step's batch as a sample-major dict: image (and label), noise (and noise_label) for all updates."""
    key = tf.stack([tf.constant(seed, tf.int64), step])
    updates = n_critic + 1  # n_critic D updates, then G's
    element = {name: _sample_major(values, n_critic) for name, values in batch.items()}
    element["noise"] = tf.random.stateless_normal((batch_size, updates, noise.latent_dim), seed=key)
    if noise.num_classes:
        element["noise_label"] = tf.random.stateless_uniform(
            (batch_size, updates), seed=tf.random.experimental.stateless_fold_in(key, 1),
            minval=0, maxval=noise.num_classes, dtype=tf.int32,
        )
    return element


def _sample_major(values: tf.Tensor, slices: int) -> tf.Tensor:
    """(slices × B, ...) → (B, slices, ...)."""
    values = tf.reshape(values, (slices, -1, *values.shape[1:]))
    return tf.transpose(values, (1, 0, *range(2, values.shape.rank)))
