"""``npz`` with ``stream = true``: uint8 images memory-mapped from a .npy or an uncompressed .npz, read while training."""

from __future__ import annotations

import numpy as np
import pytest

from ganframe import DataContext, DataError, DataSource
from ganframe.pipeline import make_dataset, take
from ganframe.testing import isolated_registry

IMAGES = np.arange(12 * 4 * 5, dtype=np.uint8).reshape(12, 4, 5)
LABELS = np.arange(12) % 4


@pytest.fixture
def load():
    registry = isolated_registry()
    return lambda options: registry.build("dataset", "npz", options, DataContext(None))


@pytest.mark.parametrize("layout", ["npy", "npz"])
def test_streamed_images_equal_the_loaded_ones(load, tmp_path, layout):
    if layout == "npy":
        np.save(tmp_path / "d.npy", IMAGES)
        options = {"path": tmp_path / "d.npy"}
    else:
        np.savez(tmp_path / "d.npz", x=IMAGES, y=LABELS)
        options = {"path": tmp_path / "d.npz", "labels_key": "y"}
    loaded, streamed = load(options), load({**options, "stream": True})
    assert isinstance(streamed, DataSource) and streamed.spec == loaded.spec and len(streamed) == 12
    read = take(streamed, np.arange(12))
    np.testing.assert_array_equal(loaded.images, IMAGES[..., None])  # bytes in memory, as in the file
    np.testing.assert_array_equal(read.images, loaded.float_images())
    if layout == "npz":
        np.testing.assert_array_equal(read.labels, LABELS)
    batches = [batch["image"].numpy() for batch in make_dataset(streamed, 4, seed=2).take(3)]
    expected = [batch["image"].numpy() for batch in make_dataset(loaded, 4, seed=2).take(3)]
    np.testing.assert_array_equal(batches, expected)
    assert len(load({**options, "stream": True, "limit": 5})) == 5


def test_what_cannot_be_streamed_is_refused_saying_why(load, tmp_path):
    np.savez_compressed(tmp_path / "small.npz", x=IMAGES)
    with pytest.raises(DataError, match="compressed .*np.savez"):
        load({"path": tmp_path / "small.npz", "stream": True})
    np.save(tmp_path / "floats.npy", IMAGES / 255.0)
    with pytest.raises(DataError, match="stream = true reads uint8 images.*float64"):
        load({"path": tmp_path / "floats.npy", "stream": True})
    np.savez(tmp_path / "d.npz", x=IMAGES)
    with pytest.raises(DataError, match="no array named 'images'"):
        load({"path": tmp_path / "d.npz", "key": "images", "stream": True})
