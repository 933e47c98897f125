"""The input pipeline: which example comes when is a function of (seed, epoch), so resuming reads nothing twice.

Batches are checked by content (each image is its own index, so a batch says which examples it holds),
through :func:`ganframe.pipeline.make_dataset` as ``train`` uses it.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from ganframe import DataSource, DataSpec, ImageData
from ganframe.contract import InvalidImageData
from ganframe.pipeline import NoiseSpec, example_order, make_dataset, take

SIZE = 10


def indexed_data(size: int = SIZE, side: int = 1) -> ImageData:
    """``size`` images whose pixels all hold the image's index / size, labelled index % 3."""
    index = np.arange(size, dtype=np.float32)
    images = np.broadcast_to((index / size)[:, None, None, None], (size, side, side, 1)).astype(np.float32)
    return ImageData(images, np.arange(size) % 3, DataSpec((side, side, 1), (0.0, 1.0), 3))


class IndexSource(DataSource):
    """A data set read from "storage": example ``i`` is an image whose pixels hold i / size, labelled i % 3."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.spec = DataSpec((1, 1, 1), (0.0, 1.0), 3)

    def __len__(self) -> int:
        return self.size

    def read(self, index):
        import tensorflow as tf

        value = tf.cast(index, tf.float32) / self.size
        return {"image": tf.reshape(value, (1, 1, 1)), "label": tf.cast(index % 3, tf.int32)}


def indices_of(batch: dict, size: int = SIZE) -> list[int]:
    return [int(round(value * size)) for value in batch["image"].numpy()[:, 0, 0, 0]]


def test_each_epoch_is_a_new_permutation_of_all_examples():
    order = [int(i) for i in example_order(SIZE, seed=3).take(4 * SIZE).as_numpy_iterator()]
    epochs = [order[e * SIZE:(e + 1) * SIZE] for e in range(4)]
    assert all(sorted(epoch) == list(range(SIZE)) for epoch in epochs)
    assert len({tuple(epoch) for epoch in epochs}) == 4  # reshuffled every epoch
    other_seed = [int(i) for i in example_order(SIZE, seed=4).take(SIZE).as_numpy_iterator()]
    assert other_seed != epochs[0]


@pytest.mark.parametrize("start", [0, 3, 10, 17, 35])
def test_the_order_from_any_position_is_the_whole_order_from_there(start):
    whole = [int(i) for i in example_order(SIZE, seed=3).take(50).as_numpy_iterator()]
    assert [int(i) for i in example_order(SIZE, seed=3, start=start).take(50 - start).as_numpy_iterator()] == whole[start:]


@pytest.mark.parametrize("n_critic", [1, 2])
def test_a_resumed_pipeline_yields_the_batches_an_uninterrupted_one_does(n_critic):
    """Batches of 3 (x n_critic) from 10 examples straddle epochs; from step k they equal the k-th onwards."""
    data = indexed_data()
    whole = [indices_of(batch) for batch in make_dataset(data, 3, n_critic=n_critic, seed=1).take(12)]
    assert all(len(batch) == 3 * n_critic for batch in whole)
    for step in (1, 4, 7):
        resumed = [indices_of(batch) for batch in make_dataset(data, 3, n_critic=n_critic, seed=1,
                                                               start_step=step).take(12 - step)]
        assert resumed == whole[step:]
    batch = next(iter(make_dataset(data, 3, seed=1)))
    assert sorted(batch) == ["image", "label"] and batch["label"].dtype.name == "int32"
    np.testing.assert_array_equal(batch["label"].numpy(), np.array(indices_of(batch)) % 3)


@pytest.mark.parametrize("kind", ["in memory", "source"])
def test_resuming_far_into_a_run_reads_no_earlier_batch(kind):
    """Step 100,000 of 60,000 examples (batch 64, epoch 106) is as quick to reach as step 10."""
    data = indexed_data(60_000) if kind == "in memory" else IndexSource(60_000)

    def first_batch_seconds(step: int) -> float:
        began = time.perf_counter()
        next(iter(make_dataset(data, 64, seed=0, start_step=step)))
        return time.perf_counter() - began

    first_batch_seconds(0)  # tf.data's one-off start-up
    near, far = first_batch_seconds(10), first_batch_seconds(100_000)
    assert far - near < 2.0, f"step 10: {near:.2f} s, step 100,000: {far:.2f} s"
    # ... and the batch there is the one the order says: positions 6,400,000 to 6,400,063.
    expected = [int(i) for i in example_order(60_000, 0, 100_000 * 64).take(64).as_numpy_iterator()]
    assert indices_of(next(iter(make_dataset(data, 64, seed=0, start_step=100_000))), 60_000) == expected


@pytest.mark.parametrize("value_range", [(0.0, 1.0), (-1.0, 1.0), (-0.5, 2.25)])
def test_bytes_held_in_memory_become_in_each_batch_the_floats_loading_made(value_range):
    """Every byte value, uint8 in memory: in the batches, bit for bit the float32 (x / 255) · (high - low) + low
    that the loaders computed when they held floats, which ``float_images`` and ``take`` give too; and the
    same batches, seeded alike, as from those floats in memory."""
    pixels = np.arange(256, dtype=np.uint8).reshape(256, 1, 1, 1)
    low, high = value_range
    floats = (pixels.astype(np.float32) / np.float32(255.0)) * np.float32(high - low) + np.float32(low)
    data = ImageData(pixels, np.arange(256) % 3, DataSpec((1, 1, 1), value_range, 3))
    as_floats = ImageData(floats, np.arange(256) % 3, data.spec)
    np.testing.assert_array_equal(data.float_images().view(np.uint32), floats.view(np.uint32))
    np.testing.assert_array_equal(take(data, np.arange(256)).images.view(np.uint32), floats.view(np.uint32))
    pairs = zip(make_dataset(data, 32, seed=4).take(16), make_dataset(as_floats, 32, seed=4).take(16))  # 2 epochs
    for from_bytes, from_floats in pairs:
        assert from_bytes["image"].dtype.name == "float32"
        np.testing.assert_array_equal(from_bytes["image"].numpy().view(np.uint32),
                                      from_floats["image"].numpy().view(np.uint32))
        np.testing.assert_array_equal(from_bytes["label"], from_floats["label"])
    with pytest.raises(InvalidImageData, match="must be float32 .* or uint8 .*, got int16"):
        ImageData(pixels.astype(np.int16), None, DataSpec((1, 1, 1)))


def test_a_source_is_read_in_the_same_order_as_the_same_data_in_memory():
    memory = [indices_of(batch) for batch in make_dataset(indexed_data(), 3, n_critic=2, seed=1).take(8)]
    read = make_dataset(IndexSource(SIZE), 3, n_critic=2, seed=1).take(8)
    batches = list(read)
    assert [indices_of(batch) for batch in batches] == memory
    np.testing.assert_array_equal(batches[0]["label"].numpy(), np.array(memory[0]) % 3)
    assert take(IndexSource(SIZE), np.array([4, 1])).labels.tolist() == [1, 1]


class Pipelines:
    """A stand-in for a multi-worker strategy: ``workers`` input pipelines of one replica each, as
    ``distribute_datasets_from_function`` would build them, one per worker."""

    def __init__(self, workers: int) -> None:
        self.workers = workers

    def distribute_datasets_from_function(self, build):
        import tensorflow as tf

        return [build(tf.distribute.InputContext(self.workers, worker, self.workers)) for worker in range(self.workers)]


@pytest.mark.parametrize("n_critic", [1, 2])
def test_each_worker_reads_only_its_rows_of_every_slice(n_critic):
    """Worker w of 2 gets rows 4w..4w+3 of each slice of 8: disjoint, together the whole step, and with its
    rows of the same global noise."""
    source, steps = IndexSource(64), 5  # 64 examples: no step straddles two epochs, so no example comes twice in one
    whole = [indices_of(batch, 64) for batch in make_dataset(source, 8, n_critic=n_critic, seed=2).take(steps)]
    noise = NoiseSpec(latent_dim=3, num_classes=3)
    workers = [list(dataset.take(steps)) for dataset in make_dataset(
        source, 8, n_critic=n_critic, seed=2, noise=noise, strategy=Pipelines(2))]
    for step in range(steps):
        shares = [indices_of(worker[step], 64) for worker in workers]
        assert not set(shares[0]) & set(shares[1])
        slices = [whole[step][8 * i:8 * (i + 1)] for i in range(n_critic)]
        for worker, share in enumerate(shares):
            assert share == [index for piece in slices for index in piece[4 * worker:4 * (worker + 1)]]
        for key, width in (("noise", (3,)), ("noise_label", ())):
            assert workers[0][step][key].shape == ((n_critic + 1) * 4, *width)
        assert not np.array_equal(workers[0][step]["noise"], workers[1][step]["noise"])
