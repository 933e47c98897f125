"""The numpy feed: TensorFlow's batches without TensorFlow, bit for bit, and the order both read.

:func:`ganframe.feed.batches` is checked against :func:`ganframe.pipeline.make_dataset` batch by batch (dtypes,
keys, and the bits of every value); :mod:`ganframe.order` against a pinned order, so that a numpy release that
changed its permutations, and with them every run's batches, would be noticed here.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from ganframe import ConfigError, DataSource, DataSpec, ImageData, feed, order
from ganframe.feed import _read_ahead
from ganframe.pipeline import example_order, make_dataset

SIZE = 10


def data_of(dtype: str, labels: bool, conditions: bool, size: int = SIZE) -> ImageData:
    """``size`` random 2x2x3 images in [-1, 1] (uint8 or float32), with class ids and 3-wide conditions if asked."""
    rng = np.random.default_rng(7)
    images = rng.integers(0, 256, (size, 2, 2, 3), dtype=np.uint8)
    if dtype == "float32":
        images = rng.uniform(-1.0, 1.0, images.shape).astype(np.float32)
    spec = DataSpec((2, 2, 3), (-1.0, 1.0), 3 if labels else None, (3,) if conditions else None)
    return ImageData(images, rng.integers(0, 3, size) if labels else None, spec,
                     conditions=rng.normal(size=(size, 3)).astype(np.float32) if conditions else None)


def same_batch(tf_batch: dict, batch: dict) -> None:
    """The same keys in the same order, the same dtypes and shapes, the same bits."""
    assert list(batch) == list(tf_batch)
    for key, value in tf_batch.items():
        value = value.numpy()
        assert batch[key].dtype == value.dtype and batch[key].shape == value.shape, key
        np.testing.assert_array_equal(batch[key].view(np.uint8), value.view(np.uint8), err_msg=key)


@pytest.mark.parametrize("dtype", ["uint8", "float32"])
@pytest.mark.parametrize("labels, conditions, with_labels", [
    (False, False, None), (True, False, None), (True, True, None), (True, False, False), (False, True, True)])
@pytest.mark.parametrize("n_critic, start_step", [(1, 0), (2, 4)])  # 6 of 10 a step from position 24: across epochs
def test_the_feed_gives_the_tensorflow_pipelines_batches_bit_for_bit(dtype, labels, conditions, with_labels, n_critic,
                                                                    start_step):
    data = data_of(dtype, labels, conditions)
    options = dict(n_critic=n_critic, seed=3, start_step=start_step, with_labels=with_labels)
    batches = feed.batches(data, 3, **options)
    for tf_batch in make_dataset(data, 3, **options).take(7):
        same_batch(tf_batch, next(batches))
    batches.close()


def test_far_into_a_run_the_feed_starts_at_once_with_that_steps_batch():
    """Step 100,000 of 60,000 examples (batch 64, epoch 106): one epoch drawn, not 106."""
    data = data_of("uint8", True, False, size=60_000)
    began = time.perf_counter()
    batch = next(feed.batches(data, 64, seed=0, start_step=100_000))
    assert time.perf_counter() - began < 1.0
    same_batch(next(iter(make_dataset(data, 64, seed=0, start_step=100_000))), batch)
    np.testing.assert_array_equal(batch["label"], data.labels[order.step_indices(60_000, 0, 64, 100_000, 1)])


def test_the_order_is_pinned_and_both_pipelines_read_it():
    """Epochs 0 and 1 of 10 examples with seed 3: a change here changes every run's batches."""
    pinned = [9, 6, 0, 2, 1, 4, 7, 5, 3, 8, 4, 1, 2, 8, 5, 0, 7, 9, 6, 3]
    assert order.indices(SIZE, 3, 0, 20).tolist() == pinned
    assert [int(i) for i in example_order(SIZE, 3).take(20).as_numpy_iterator()] == pinned
    for start in (7, 13, 10**9 + 3):
        assert [int(i) for i in example_order(SIZE, 3, start).take(12).as_numpy_iterator()] == \
            order.indices(SIZE, 3, start, 12).tolist()
    assert order.step_indices(SIZE, 3, 4, 2, 3).tolist() == order.indices(SIZE, 3, 8, 12).tolist()


def test_the_order_in_chunks_is_the_order():
    chunks = order.chunks(SIZE, 1, 4, 7)
    assert np.concatenate([next(chunks) for _ in range(6)]).tolist() == order.indices(SIZE, 1, 4, 42).tolist()


class Source(DataSource):
    """A data set read with TensorFlow ops, which the feed cannot read."""

    spec = DataSpec((1, 1, 1))
    name = "disk"

    def __len__(self) -> int:
        return SIZE

    def read(self, index):
        raise AssertionError("never read")


def test_a_source_is_refused_with_what_to_do():
    with pytest.raises(ConfigError, match="'disk' is a Source, which needs TensorFlow's input pipeline.*install "
                                          "tensorflow, or use a data set held in memory"):
        feed.batches(Source(), 2)
    with pytest.raises(ConfigError, match="lower batch_size to at most 5"):
        feed.batches(data_of("uint8", False, False), 6, n_critic=2)


def feed_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "ganframe-feed"]


def test_the_reading_thread_stops_when_the_feed_is_closed_or_dropped():
    data = data_of("uint8", False, False)
    batches = feed.batches(data, 2)
    next(batches)
    assert len(feed_threads()) == 1
    batches.close()
    assert not feed_threads()
    batches = feed.batches(data, 2)
    next(batches)
    del batches
    assert not feed_threads()


def test_reading_ahead_keeps_the_items_and_raises_their_error_in_the_reader():
    assert list(_read_ahead(iter(range(5)), 2)) == [0, 1, 2, 3, 4]

    def failing():
        yield from (0, 1)
        raise ValueError("unreadable")

    items = _read_ahead(failing(), 2)
    assert [next(items), next(items)] == [0, 1]
    with pytest.raises(ValueError, match="unreadable"):
        next(items)
    assert not feed_threads()


def test_the_feed_and_the_order_work_where_tensorflow_cannot_be_imported():
    script = textwrap.dedent("""
        import sys
        sys.modules["tensorflow"] = None  # import tensorflow now raises ImportError
        import numpy as np
        from ganframe import DataSpec, ImageData, feed, order
        data = ImageData(np.arange(40, dtype=np.uint8).reshape(10, 2, 2, 1), np.arange(10) % 3,
                         DataSpec((2, 2, 1), (0.0, 1.0), 3))
        batches = feed.batches(data, 4, n_critic=2, seed=1, start_step=3)
        first = next(batches)
        assert first["image"].dtype == np.float32 and first["image"].shape == (8, 2, 2, 1)
        assert first["label"].tolist() == (order.step_indices(10, 1, 8, 3, 1) % 3).tolist()
        batches.close()
        assert sys.modules["tensorflow"] is None and not [name for name in sys.modules if name.startswith("tensorflow.")]
        print("fed")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "fed"
