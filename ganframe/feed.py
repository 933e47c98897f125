"""The input pipeline without TensorFlow: a data set in memory as an endless iterator of numpy batches.

For backends other than TensorFlow (Keras 3 on JAX), which must train without importing it. The batches
are :func:`ganframe.pipeline.make_dataset`'s for one device, bit for bit: the same examples in the same
seeded order (:mod:`ganframe.order`), uint8 images mapped onto the value range by the same float32 steps
(:func:`ganframe.contract.in_range`), the same keys and dtypes. A few batches are gathered ahead in a
thread while the step runs. G's noise is not here: the step draws its own.

Only an :class:`~ganframe.ImageData` can be fed so: a :class:`~ganframe.DataSource` reads its examples
with TensorFlow ops and a :class:`~ganframe.DataStream` hands over its passes as ``tf.data`` data sets.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Iterable, Iterator

import numpy as np

from ganframe import order
from ganframe.contract import ImageData, in_range
from ganframe.errors import ConfigError

#: Batches gathered ahead of the step: as many as TensorFlow's pipeline prefetches, for the same reason
#: (a gather outruns the step by far, and more would only take memory and cores from it).
READ_AHEAD_BATCHES = 2

#: What :func:`_fill` puts after the last item.
_END = object()


def batches(data: ImageData, batch_size: int, *, n_critic: int = 1, seed: int = 0, start_step: int = 0,
            with_labels: bool | None = None) -> Iterator[dict[str, np.ndarray]]:
    """Step ``start_step``'s batch dict and every later step's, endless: ``image`` float32 in the data's
    value range (``n_critic`` slices of ``batch_size``), ``label`` (unless ``with_labels`` is False) and
    ``condition`` where the data has them. Close the iterator (or drop it) to stop its reading thread."""
    if not isinstance(data, ImageData):
        raise ConfigError(
            f"data set {getattr(data, 'name', 'data')!r} is a {type(data).__name__}, which needs TensorFlow's "
            "input pipeline (its examples are read with TensorFlow ops): install tensorflow, or use a data set "
            "held in memory (ImageData)"
        )
    order.check_step(len(data), batch_size, n_critic)
    labelled = data.spec.num_classes is not None if with_labels is None else with_labels
    arrays = {key: values for key, values in (("image", data.images), ("label", data.labels if labelled else None),
                                              ("condition", data.conditions)) if values is not None}

    def gather(indices: np.ndarray) -> dict[str, np.ndarray]:
        batch = {key: values[indices] for key, values in arrays.items()}
        return {**batch, "image": in_range(batch["image"], data.spec.value_range)}

    steps = order.chunks(len(data), seed, start_step * batch_size * n_critic, batch_size * n_critic)
    return _read_ahead(map(gather, steps), READ_AHEAD_BATCHES)


def _read_ahead(items: Iterable[Any], depth: int) -> Iterator[Any]:
    """``items``, up to ``depth`` of them computed ahead in a daemon thread; what computing one raises is
    raised here. Closing the generator (or its collection) stops the thread."""
    ahead: queue.Queue = queue.Queue(depth)
    stop = threading.Event()
    thread = threading.Thread(target=_fill, args=(items, ahead, stop), name="ganframe-feed", daemon=True)
    thread.start()
    try:
        while True:
            item, error = ahead.get()
            if error is not None:
                raise error
            if item is _END:
                return
            yield item
    finally:
        stop.set()
        if thread is not threading.current_thread():  # the cyclic collector may close it from the thread itself
            thread.join()


def _fill(items: Iterable[Any], ahead: queue.Queue, stop: threading.Event) -> None:
    """Put ``(item, None)`` for each of ``items`` into ``ahead``, then ``(_END, None)``, or ``(None, error)``
    once one fails, until ``stop`` is set. It holds no reference to the consumer, which can be collected."""
    try:
        for item in items:
            if not _put(ahead, (item, None), stop):
                return
        _put(ahead, (_END, None), stop)
    except Exception as error:  # handed to the consumer, raised there
        _put(ahead, (None, error), stop)


def _put(ahead: queue.Queue, entry: tuple[Any, Exception | None], stop: threading.Event) -> bool:
    """Put ``entry`` into ``ahead`` once there is room: True, or False when ``stop`` is set first."""
    while not stop.is_set():
        try:
            ahead.put(entry, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False
