"""The input pipeline: a data set (in memory, a :class:`~ganframe.DataSource` read by index from storage,
or a :class:`~ganframe.DataStream` read front to back) as a seeded, endless ``tf.data`` stream of batches.

Each element is one train step's batch as a dict: ``image`` holds ``n_critic`` slices of
``batch_size`` real images, ``label`` their class ids and ``condition`` their conditions when the
data has them. Which example
comes at which position is a pure function of (seed, epoch): epoch ``e`` is the permutation of
the data set's indices seeded by ``(seed, e)`` (:mod:`ganframe.order`, here :func:`example_order`), the
order :mod:`ganframe.feed` reads in too, without TensorFlow. A run resumed at step
N therefore starts reading at step N's examples directly, without reading the N steps before
it, and sees exactly the batches an uninterrupted run sees.

Under a ``tf.distribute`` strategy each element also carries the step's noise for G (``noise``,
and ``noise_label`` for conditional networks), drawn from (seed, step) for the global batch, and
each input pipeline (one per worker) builds only its replicas' shares: replica ``r`` of ``R``
gets rows ``r·b`` to ``(r+1)·b - 1`` (``b = batch_size / R``) of every slice and of every update's
noise, which is what one device would see of the global batch. The split happens on the indices,
before any image is read, so each worker reads only its own examples.

A source's examples are read one by one, in parallel and in order, and batched as they come; an
in-memory set is gathered a batch at a time from its own arrays (TensorFlow holds no copy of them).
Either way uint8 images become floats in the data's range only in the batch, so a set held as bytes
costs a quarter of its floats.

A stream has no indices: it is read pass after pass through a shuffle buffer seeded by (seed, the
step the pipeline starts at), each worker reading its own share and cutting its replicas' batches from
it in turn. A resumed run starts a new pass, in a new order: the examples it sees differ from an
uninterrupted run's (the noise does not), so a stream does not resume exactly.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Callable, Iterator

import numpy as np
import tensorflow as tf

from ganframe import order
from ganframe.contract import DataSource, DataStream, ImageData
from ganframe.errors import DataError
from ganframe.examples import Data, check_batch
from ganframe.examples import sample as sample, take as take  # also here, where the plugin contract first named them
from ganframe.order import stream_seed
from ganframe.sampling import NoiseSpec

#: Batches read ahead of the step. A fixed few, not AUTOTUNE: tf.data's autotuner grows the buffer
#: while the step waits for its first batches, and on a CPU machine the burst of reading ahead took
#: cores from the step (a 64x64 dcgan trained from a folder at 0.80x the in-memory steps/s, 1.07x
#: with 2; benchmarks/data_scale.py). The pipeline outruns the step by far, so 2 are enough.
PREFETCH_BATCHES = 2

#: What reading a stream may fail with (a record that cannot be decoded, a damaged or vanished file, a cache
#: another run is writing, a pass that holds nothing): reported as the data set's error, not TensorFlow's.
STREAM_ERRORS = (tf.errors.InvalidArgumentError, tf.errors.DataLossError, tf.errors.NotFoundError,
                 tf.errors.AlreadyExistsError, tf.errors.FailedPreconditionError)
#: Steps after the one a read error stopped at whose examples are searched for the culprit: the
#: pipeline reads ahead of the step by its prefetch buffer and parallel reads.
READ_AHEAD_STEPS = 64


def example_order(size: int, seed: int, start: int = 0) -> tf.data.Dataset:
    """The indices of a data set of ``size`` examples in training order (:mod:`ganframe.order`), from
    position ``start`` on.

    Epoch ``e`` (positions ``e * size`` to ``(e + 1) * size - 1``) is a permutation of ``range(size)``
    seeded by ``(seed, e)``: every example once per epoch, a new order each epoch, and the example
    at any position known without drawing the ones before it, so starting at position 10**9 costs
    what starting at 0 does (one epoch drawn, cut at ``start``).
    """
    first_epoch, offset = divmod(start, size)

    def epoch_from(index: np.int64) -> np.ndarray:
        indices = order.epoch(size, seed, index)
        return indices[offset:] if index == first_epoch else indices

    def epoch(index: tf.Tensor) -> tf.data.Dataset:
        indices = tf.numpy_function(epoch_from, [index], tf.int64, stateful=False)
        return tf.data.Dataset.from_tensor_slices(tf.ensure_shape(indices, (None,)))

    # Endless, and said so: a strategy treats a stream of unknown length as possibly ending in a
    # partial batch and drops the batch's static size, which the step needs.
    endless = tf.data.experimental.assert_cardinality(tf.data.INFINITE_CARDINALITY)
    return tf.data.Dataset.counter(first_epoch).flat_map(epoch).apply(endless)


def make_dataset(data: Data, batch_size: int, *, n_critic: int = 1, seed: int = 0,
                 start_step: int = 0, with_labels: bool | None = None, noise: NoiseSpec | None = None,
                 strategy: tf.distribute.Strategy | None = None) -> tf.data.Dataset | tf.distribute.DistributedDataset:
    """Batch dicts in :func:`example_order`, endless, prefetched; the first is step ``start_step``'s.

    ``image`` is float32 in the data's value range; ``label`` comes with labelled data unless
    ``with_labels`` is False. With ``noise``, each batch also carries G's noise (see the module's
    docstring); with ``strategy``, the result is the strategy's distributed data set of per-replica batches.
    """
    check_batch(data, batch_size, n_critic)
    labelled = data.spec.num_classes is not None if with_labels is None else with_labels
    if strategy is None:
        return _batches(data, labelled, batch_size, n_critic, seed, start_step, noise, 0, 1, 1, 0, 1)

    def per_pipeline(context: tf.distribute.InputContext) -> tf.data.Dataset:
        local = context.num_replicas_in_sync // context.num_input_pipelines
        return _batches(data, labelled, batch_size, n_critic, seed, start_step, noise,
                        context.input_pipeline_id * local, local, context.num_replicas_in_sync,
                        context.input_pipeline_id, context.num_input_pipelines)

    return strategy.distribute_datasets_from_function(per_pipeline)


def read_examples(source: DataSource, indices: np.ndarray) -> ImageData:
    """The examples of ``source`` at ``indices`` in memory (:func:`ganframe.examples.take`), an unreadable
    one of a skipping source left out."""
    examples = _read_each(source, tf.data.Dataset.from_tensor_slices({"index": indices}))
    try:
        return _in_memory(source, examples)
    except tf.errors.InvalidArgumentError as error:
        raise unreadable_error(source, indices, error) from None


def first_of_pass(stream: DataStream, count: int, seed: int) -> ImageData:
    """The first ``count`` examples of a pass through ``stream``'s shuffle buffer seeded by ``seed``, in memory
    (:func:`ganframe.examples.sample`)."""
    examples = stream.examples(0, 1).shuffle(stream.shuffle_buffer, seed=seed).take(count)
    try:
        return _in_memory(stream, examples)
    except STREAM_ERRORS as error:
        raise stream_error(stream, error) from None


@contextlib.contextmanager
def read_errors(data: Data, seed: int, per_step: int, step: Callable[[], int]) -> Iterator[None]:
    """Training on ``data`` inside: a read that fails is raised as the data set's :class:`DataError`, at the
    step ``step()`` returns then, naming the example of a source that failed (the steps' examples, read again
    one by one), instead of TensorFlow's error."""
    try:
        yield
    except STREAM_ERRORS as error:
        where = f" at step {step()}"
        if isinstance(data, DataStream):
            raise stream_error(data, error, where) from None
        if not isinstance(data, DataSource) or not isinstance(error, tf.errors.InvalidArgumentError):
            raise
        indices = order.step_indices(len(data), seed, per_step, step(), READ_AHEAD_STEPS)
        raise unreadable_error(data, indices, error, where) from None


def _in_memory(data: Data, examples: tf.data.Dataset) -> ImageData:
    """``examples`` read into memory, images as float32 in the data's range."""
    batches = list(examples.batch(256).map(functools.partial(_to_range, data.spec.value_range)).as_numpy_iterator())
    if not batches:
        raise DataError(f"data set {data.name!r} gave no examples: it holds none, or none could be read")
    images, labels, conditions = (np.concatenate([batch[key] for batch in batches]) if key in batches[0] else None
                                  for key in ("image", "label", "condition"))
    return ImageData(images, labels, data.spec, data.name, conditions)


def unreadable_error(source: DataSource, indices: np.ndarray, error: tf.errors.OpError, where: str = "") -> DataError:
    """The error for a read of ``indices`` that failed with ``error``: which example it was (each is
    read again on its own to find it), TensorFlow's reason, and what to do."""
    read = _read_each(source, tf.data.Dataset.from_tensor_slices({"index": indices}), skip_unreadable=True)
    found = sorted(set(map(int, indices)) - {int(example["index"]) for example in read.as_numpy_iterator()})
    what = source.describe(found[0]) if found else "an example"
    return _read_error(source, what, where, error)


def stream_error(stream: DataStream, error: tf.errors.OpError, where: str = "") -> DataError:
    """The error for a read of a stream that failed with ``error``: TensorFlow's reason, and what to do
    (a stream cannot be read again by index to find the example)."""
    if isinstance(error, tf.errors.AlreadyExistsError):  # tf.data's file cache, locked: the reason says by what
        return DataError(f"data set {stream.name!r}: its cache cannot be written{where} ({_reason(error)})")
    return _read_error(stream, "an example", where, error)


def _reason(error: tf.errors.OpError) -> str:
    """TensorFlow's message without the op and node names around it."""
    return error.message.split("[[")[0].split("}}")[-1].strip()


def _read_error(data: DataSource | DataStream, what: str, where: str, error: tf.errors.OpError) -> DataError:
    return DataError(
        f"data set {data.name!r}: cannot read {what}{where} ({_reason(error)}); delete or replace it, or skip unreadable "
        "examples with the data option unreadable = \"skip\" where the data set has one"
    )


def _batches(data: Data, labelled: bool, batch_size: int, n_critic: int, seed: int, start_step: int,
             noise: NoiseSpec | None, first_replica: int, replicas: int, all_replicas: int, worker: int,
             workers: int) -> tf.data.Dataset:
    """Replicas ``first_replica`` to ``first_replica + replicas - 1`` of ``all_replicas``, one batch each per
    step in turn: their rows of every slice of the step's examples (and of the global batch's noise), read by
    pipeline ``worker`` of ``workers``."""
    per_step, per_replica = batch_size * n_critic, batch_size * n_critic // all_replicas

    def shares(step: tf.Tensor, indices: tf.Tensor) -> dict[str, tf.Tensor]:
        """The step's indices, (n_critic × batch_size,), as each replica's rows of every slice, (replicas, per_replica)."""
        indices = tf.reshape(indices, (n_critic, all_replicas, batch_size // all_replicas))
        # replica-major by stacking, not tf.transpose: oneDNN's int64 transpose logs an error line on CPUs it
        # takes for having no AVX-512
        indices = tf.stack([indices[:, replica] for replica in range(first_replica, first_replica + replicas)])
        return {"index": tf.reshape(indices, (replicas, per_replica)),
                "step": tf.fill((replicas,), step),
                "replica": tf.range(first_replica, first_replica + replicas, dtype=tf.int64)}

    def finish(batch: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """A replica's batch of examples as the step takes it: images in range, G's noise added."""
        step, replica = batch.pop("step"), batch.pop("replica")
        batch = _to_range(data.spec.value_range, batch)
        if not labelled:
            batch.pop("label", None)
        if noise is not None:
            for key, values in _noise(step, noise, batch_size, n_critic, seed).items():
                values = tf.reshape(values, (n_critic + 1, all_replicas, -1, *values.shape[1:]))
                batch[key] = tf.reshape(tf.gather(values, replica, axis=1), (-1, *values.shape[3:]))
        return batch

    if isinstance(data, DataStream):
        batches = _stream_batches(data, per_replica, stream_seed(seed, start_step), start_step, first_replica,
                                  replicas, worker, workers)
        return batches.map(finish, num_parallel_calls=tf.data.AUTOTUNE).prefetch(PREFETCH_BATCHES)
    indices = example_order(len(data), seed, start_step * per_step).batch(per_step, drop_remainder=True)
    steps = tf.data.Dataset.zip(tf.data.Dataset.counter(start_step), indices).map(shares).unbatch()
    if isinstance(data, ImageData):
        arrays = {key: values for key, values in (("image", data.images), ("label", data.labels),
                                                  ("condition", data.conditions)) if values is not None}

        def gather(element: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
            rows = tf.numpy_function(lambda index: [values[index] for values in arrays.values()], [element["index"]],
                                     [tf.as_dtype(values.dtype) for values in arrays.values()], stateful=False)
            return {**element, **{key: tf.ensure_shape(row, (per_replica, *values.shape[1:]))
                                  for (key, values), row in zip(arrays.items(), rows)}}

        batches = steps.map(gather)
    else:
        def each_example(element: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
            return {key: tf.broadcast_to(value, (per_replica,)) for key, value in element.items()}

        examples = _read_each(data, steps.map(each_example).unbatch())
        batches = examples.batch(per_replica, drop_remainder=True).map(
            lambda batch: {**batch, "step": batch["step"][0], "replica": batch["replica"][0]})
    return batches.map(lambda batch: finish({k: v for k, v in batch.items() if k != "index"}),
                       num_parallel_calls=tf.data.AUTOTUNE).prefetch(PREFETCH_BATCHES)


def _stream_batches(stream: DataStream, per_replica: int, shuffle_seed: int, start_step: int, first_replica: int,
                    replicas: int, worker: int, workers: int) -> tf.data.Dataset:
    """Batches of ``per_replica`` examples from passes over the worker's share of ``stream``, each pass through
    the shuffle buffer in a new order, dealt to the pipeline's replicas in turn, each marked with its step."""
    endless = tf.data.experimental.assert_cardinality(tf.data.INFINITE_CARDINALITY)
    examples = stream.examples(worker, workers).shuffle(stream.shuffle_buffer, seed=shuffle_seed).repeat().apply(endless)

    def deal(position: tf.Tensor, batch: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        return {**batch, "step": start_step + position // replicas, "replica": first_replica + position % replicas}

    return tf.data.Dataset.zip(tf.data.Dataset.counter(), examples.batch(per_replica, drop_remainder=True)).map(deal)


def _read_each(source: DataSource, elements: tf.data.Dataset, skip_unreadable: bool | None = None) -> tf.data.Dataset:
    """Each element (a dict holding ``index``) with ``source.read(index)`` added, read in parallel and in
    order. A skipping source (or ``skip_unreadable``) drops the examples it cannot read."""
    examples = elements.map(lambda element: {**element, **source.read(element["index"])},
                            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    skip = source.skip_unreadable if skip_unreadable is None else skip_unreadable
    return examples.ignore_errors() if skip else examples


def in_range(image: tf.Tensor, value_range: tuple[float, float]) -> tf.Tensor:
    """A uint8 ``image`` (0..255) as float32 in ``value_range``; a float image passes as it is. The one
    mapping from bytes to the data's values in TensorFlow, so that a condition made from bytes matches its
    image; :func:`ganframe.contract.in_range` is its numpy twin, bit for bit (tests/test_pipeline.py)."""
    if image.dtype != tf.uint8:
        return image
    low, high = value_range
    return tf.cast(image, tf.float32) / 255.0 * (high - low) + low


def _to_range(value_range: tuple[float, float], batch: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """``batch`` with a uint8 ``image`` (0..255) as float32 in ``value_range``; float images pass as they are."""
    return {**batch, "image": in_range(batch["image"], value_range)}


def _noise(step: tf.Tensor, noise: NoiseSpec, batch_size: int, n_critic: int, seed: int) -> dict[str, tf.Tensor]:
    """The global batch's noise (and noise labels) at ``step`` for all its updates, update-major:
    ``n_critic`` D updates, then G's, each ``batch_size`` rows."""
    key = tf.stack([tf.constant(seed, tf.int64), step])
    rows = (n_critic + 1) * batch_size
    element = {"noise": tf.random.stateless_normal((rows, noise.latent_dim), seed=key)}
    if noise.num_classes:
        element["noise_label"] = tf.random.stateless_uniform(
            (rows,), seed=tf.random.experimental.stateless_fold_in(key, 1),
            minval=0, maxval=noise.num_classes, dtype=tf.int32,
        )
    return element
