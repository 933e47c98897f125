"""The built-in datasets, used through the plugin registry as the engine uses them.

Every test writes its own small files in the real formats (IDX gz, CIFAR-10's binary
batches and archive, npz, PNG); one test reads the real MNIST when a local copy is
present. No test reads the real Keras cache or downloads anything: ``offline`` below.
"""

from __future__ import annotations

import gzip
import os
import pickle
import subprocess
import sys
import tarfile
import types
from pathlib import Path

import numpy as np
import pytest

import ganframe.builtin.datasets as datasets
from ganframe import ConfigError, DataContext, DataError, ImageData, load_plugins
from ganframe.testing import check_dataset
from datafiles import REAL_MNIST, CIFAR_FILES, cifar_batch, idx_bytes, needs_mnist, write_cifar, write_mnist

IDX_NAMES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


@pytest.fixture(scope="module")
def registry():
    return load_plugins()


class Offline:
    """A stand-in for the ``keras`` module whose downloads fail as without a network, counting the tries."""

    def __init__(self) -> None:
        self.tries: list[str] = []
        loaders = {name: types.SimpleNamespace(load_data=self.failing(name)) for name in ("mnist", "fashion_mnist", "cifar10")}
        self.datasets = types.SimpleNamespace(**loaders)
        self.utils = types.SimpleNamespace(get_file=self.failing("get_file"))

    def failing(self, name: str):
        def download(*args, **kwargs):
            self.tries.append(name)
            raise OSError("URL fetch failure: no network")

        return download


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path) -> Offline:
    """Every test: an empty Keras cache ($KERAS_HOME) and a Keras that cannot download."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    fake = Offline()
    monkeypatch.setitem(sys.modules, "keras", fake)
    return fake


@pytest.fixture
def load(registry):
    """load(name, options, data_dir=None) -> ImageData, through the registry."""

    def load(name: str, options: dict | None = None, data_dir: Path | None = None) -> ImageData:
        return registry.build("dataset", name, options or {}, DataContext(data_dir=data_dir))

    return load


def check(data: ImageData, shape: tuple[int, ...], num_classes: int | None, value_range: tuple[float, float] = (0.0, 1.0),
          dtype: type = np.uint8) -> None:
    """``data`` holds images of ``shape`` and ``dtype`` (uint8, as the standard sets come, or float32) in ``value_range``."""
    assert isinstance(data, ImageData)
    assert data.images.shape == shape
    assert data.images.dtype == dtype
    assert value_range[0] <= data.float_images().min() and data.float_images().max() <= value_range[1]
    assert data.spec.shape == shape[1:] and data.spec.value_range == value_range
    assert data.spec.num_classes == num_classes
    if num_classes is None:
        assert data.labels is None
    else:
        assert data.labels.dtype == np.int32 and data.labels.shape == (shape[0],)


# ---------------------------------------------------------------------------------------------- MNIST


def test_mnist_from_idx_gz(load, tmp_path):
    written = write_mnist(tmp_path)
    data = load("mnist", {"split": "test"}, tmp_path)
    check(data, (12, 28, 28, 1), 10)
    np.testing.assert_array_equal(data.images[..., 0], written["t10k-images-idx3-ubyte"])  # the file's bytes, kept
    np.testing.assert_array_equal(data.labels, written["t10k-labels-idx1-ubyte"])
    assert data.name == "mnist"


def test_mnist_train_is_default_and_all_concatenates(load, tmp_path):
    written = write_mnist(tmp_path)
    check(load("mnist", {}, tmp_path), (20, 28, 28, 1), 10)
    both = load("mnist", {"split": "all"}, tmp_path)
    check(both, (32, 28, 28, 1), 10)
    np.testing.assert_array_equal(both.labels[20:], written["t10k-labels-idx1-ubyte"])


def test_mnist_limit_takes_the_first_images(load, tmp_path):
    written = write_mnist(tmp_path)
    data = load("mnist", {"split": "train", "limit": 5}, tmp_path)
    check(data, (5, 28, 28, 1), 10)
    np.testing.assert_array_equal(data.labels, written["train-labels-idx1-ubyte"][:5])
    assert len(load("mnist", {"limit": 1000}, tmp_path)) == 20  # a limit above N keeps everything


def test_mnist_uncompressed_idx(load, tmp_path):
    write_mnist(tmp_path, gz=False)
    check(load("mnist", {"split": "test"}, tmp_path), (12, 28, 28, 1), 10)


def test_mnist_npz_in_data_dir(load, tmp_path):
    x = np.full((7, 28, 28), 255, np.uint8)
    np.savez(tmp_path / "mnist.npz", x_train=x, y_train=np.arange(7) % 10, x_test=x[:3], y_test=np.array([9, 8, 7]))
    data = load("mnist", {"split": "test"}, tmp_path)
    check(data, (3, 28, 28, 1), 10)
    assert data.float_images().max() == 1.0 and list(data.labels) == [9, 8, 7]


def test_mnist_from_keras_cache(load, tmp_path, monkeypatch):
    (tmp_path / "datasets").mkdir()
    x = np.zeros((4, 28, 28), np.uint8)
    np.savez(tmp_path / "datasets" / "mnist.npz", x_train=x, y_train=np.arange(4), x_test=x[:2], y_test=np.arange(2))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    check(load("mnist", {"split": "all"}), (6, 28, 28, 1), 10)


def test_mnist_offline_says_what_to_download_and_where(load, tmp_path, offline):
    """No data dir, no cache, and the download fails: the message is the recipe."""
    with pytest.raises(DataError) as error:
        load("mnist")
    message = str(error.value)
    assert offline.tries == ["mnist"]
    assert "no network" in message and str(tmp_path / "keras-home" / "datasets" / "mnist.npz") in message
    for name in IDX_NAMES + ["--data-dir", "data_dir", "GANFRAME_DATA_DIR", "mnist.npz", "mnist/"]:
        assert name in message


def test_mnist_data_dir_without_the_files_lists_them(load, tmp_path):
    (tmp_path / "unrelated.txt").write_text("hello")
    with pytest.raises(DataError) as error:
        load("mnist", {"split": "train"}, tmp_path)
    message = str(error.value)
    assert str(tmp_path) in message and "mnist.npz" in message and "GANFRAME_DATA_DIR" in message
    for name in IDX_NAMES:
        assert name in message


def test_mnist_missing_one_file_names_it(load, tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    check(load("mnist", {"split": "train"}, tmp_path), (20, 28, 28, 1), 10)
    with pytest.raises(DataError, match=r"missing t10k-labels-idx1-ubyte\.gz"):
        load("mnist", {"split": "test"}, tmp_path)


def test_mnist_data_dir_that_does_not_exist(load, tmp_path):
    with pytest.raises(DataError, match="does not exist") as error:
        load("mnist", {}, tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(error.value) and "GANFRAME_DATA_DIR" in str(error.value)


def _gz(raw: bytes) -> bytes:
    return gzip.compress(raw)


IMAGES = np.zeros((12, 28, 28), np.uint8)
CORRUPTIONS = {
    # name: (file to overwrite, its new bytes, words the message must hold)
    "bad magic": ("t10k-images-idx3-ubyte.gz", _gz(idx_bytes(IMAGES, magic=2049)), "magic number 2049, expected 2051"),
    "labels as images": ("t10k-labels-idx1-ubyte.gz", _gz(idx_bytes(IMAGES)), "magic number 2051, expected 2049"),
    "truncated data": ("t10k-images-idx3-ubyte.gz", _gz(idx_bytes(IMAGES)[:-100]), "truncated"),
    "truncated header": ("t10k-images-idx3-ubyte.gz", _gz(b"\x00\x00\x08"), "too short for an IDX header"),
    "count above data": ("t10k-images-idx3-ubyte.gz", _gz(idx_bytes(IMAGES, count=13)), "announces 13 items"),
    "count below data": ("t10k-images-idx3-ubyte.gz", _gz(idx_bytes(IMAGES, count=11)), "announces 11 items"),
    "wrong image size": ("t10k-images-idx3-ubyte.gz", _gz(idx_bytes(np.zeros((12, 32, 32), np.uint8))), "(32, 32)"),
    "corrupt gzip": ("t10k-images-idx3-ubyte.gz", b"\x1f\x8b\x08\x00garbage-not-deflate", "corrupt"),
    "not gzip": ("t10k-images-idx3-ubyte.gz", idx_bytes(IMAGES), "corrupt"),
    "gzip cut short": ("t10k-images-idx3-ubyte.gz", _gz(idx_bytes(IMAGES))[:-12], "corrupt or truncated"),
    "label count": ("t10k-labels-idx1-ubyte.gz", _gz(idx_bytes(np.zeros(11, np.uint8))), "holds 11 labels but"),
    "label range": ("t10k-labels-idx1-ubyte.gz", _gz(idx_bytes(np.full(12, 12, np.uint8))), "classes 0..9"),
}


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_mnist_corrupt_file_is_named(load, tmp_path, corruption):
    write_mnist(tmp_path)
    name, content, words = CORRUPTIONS[corruption]
    (tmp_path / name).write_bytes(content)
    with pytest.raises(DataError) as error:
        load("mnist", {"split": "test"}, tmp_path)
    message = str(error.value)
    assert str(tmp_path / name) in message and words in message
    assert "\n" not in message


def test_mnist_npz_missing_key_is_named(load, tmp_path):
    np.savez(tmp_path / "mnist.npz", x_train=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(DataError, match="no array named 'y_train'") as error:
        load("mnist", {}, tmp_path)
    assert str(tmp_path / "mnist.npz") in str(error.value)


@needs_mnist
def test_real_mnist_test_split(load):
    data = load("mnist", {"split": "test"}, REAL_MNIST)
    check(data, (10000, 28, 28, 1), 10)
    assert set(np.unique(data.labels)) == set(range(10))
    assert data.float_images().max() == 1.0 and 0.05 < data.float_images().mean() < 0.25


# ------------------------------------------------------------------------------------- Fashion-MNIST


def test_fashion_mnist_from_idx_gz(load, tmp_path, registry):
    written = write_mnist(tmp_path)
    data = load("fashion_mnist", {"split": "test"}, tmp_path)
    check(data, (12, 28, 28, 1), 10)
    np.testing.assert_array_equal(data.images[..., 0], written["t10k-images-idx3-ubyte"])  # the file's bytes, kept
    np.testing.assert_array_equal(data.labels, written["t10k-labels-idx1-ubyte"])
    assert data.name == "fashion_mnist"
    check_dataset("fashion_mnist", {"split": "all", "value_range": [-1, 1]}, registry=registry, data_dir=tmp_path)


def test_one_data_dir_serves_mnist_and_fashion_mnist_from_their_subfolders(load, tmp_path):
    """Their files have the same names: in a shared data directory each set reads its own subfolder."""
    digits = write_mnist(tmp_path / "mnist", train=5)
    clothes = write_mnist(tmp_path / "fashion-mnist", train=7)
    (tmp_path / "fashion-mnist" / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.full(7, 9, np.uint8))))
    mnist, fashion = load("mnist", {}, tmp_path), load("fashion_mnist", {}, tmp_path)
    check(mnist, (5, 28, 28, 1), 10)
    check(fashion, (7, 28, 28, 1), 10)
    np.testing.assert_array_equal(mnist.images[..., 0], digits["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(fashion.images[..., 0], clothes["train-images-idx3-ubyte"])
    assert set(fashion.labels) == {9}


def test_fashion_mnist_from_keras_cache(load, tmp_path, offline):
    write_mnist(tmp_path / "keras-home" / "datasets" / "fashion-mnist")
    check(load("fashion_mnist", {"split": "all"}), (32, 28, 28, 1), 10)
    assert offline.tries == []


def test_fashion_mnist_offline_says_what_to_download_and_where(load, tmp_path, offline):
    write_mnist(tmp_path / "keras-home" / "datasets")  # MNIST's npz place holds IDX files: not Fashion-MNIST's cache
    with pytest.raises(DataError) as error:
        load("fashion_mnist")
    message = str(error.value)
    assert offline.tries == ["fashion_mnist"]
    assert message.startswith("Fashion-MNIST is not available") and "no network" in message
    assert str(tmp_path / "keras-home" / "datasets" / "fashion-mnist") in message and "mnist.npz" not in message
    for name in IDX_NAMES + ["fashion-mnist/", "--data-dir", "data_dir", "GANFRAME_DATA_DIR"]:
        assert name in message


def test_fashion_mnist_data_dir_without_the_files(load, tmp_path):
    write_mnist(tmp_path / "mnist")
    with pytest.raises(DataError) as error:
        load("fashion_mnist", {}, tmp_path)
    message = str(error.value)
    assert f"Fashion-MNIST (train split) is not in the data directory {tmp_path}: missing" in message
    assert "subfolder fashion-mnist/" in message and "GANFRAME_DATA_DIR" in message
    for name in IDX_NAMES:
        assert name in message


# ------------------------------------------------------------------------------------------ CIFAR-10

@pytest.fixture
def records(monkeypatch) -> int:
    """Records per CIFAR-10 file: 3 in the tests' files (10000 in the original, whose exact size is checked)."""
    monkeypatch.setattr(datasets, "CIFAR10_RECORDS", 3)
    return 3


def check_cifar(data: ImageData, numbers: range) -> None:
    """The images and labels of the records ``numbers`` (see cifar_batch), channels last."""
    check(data, (len(numbers), 32, 32, 3), 10)
    np.testing.assert_array_equal(data.labels, [k % 10 for k in numbers])
    rows, columns = np.mgrid[0:32, 0:32]
    red = np.broadcast_to((32 * rows + columns) % 256, (len(numbers), 32, 32))
    np.testing.assert_array_equal(data.images[:, :, :, 0], red)
    np.testing.assert_array_equal(data.images[:, :, :, 1], 7)
    np.testing.assert_array_equal(data.images[:, 5, 9, 2], numbers)


@pytest.mark.parametrize("layout", ["folder", "files", "archive"])
def test_cifar10_binary_version(load, tmp_path, registry, records, layout):
    write_cifar(tmp_path, layout=layout)
    check_cifar(load("cifar10", {}, tmp_path), range(15))
    check_cifar(load("cifar10", {"split": "test"}, tmp_path), range(15, 18))
    check_cifar(load("cifar10", {"split": "all", "limit": 4}, tmp_path), range(4))
    data = check_dataset("cifar10", {"split": "all"}, registry=registry, data_dir=tmp_path)
    assert data.name == "cifar10" and len(data) == 18


def test_cifar10_from_keras_cache(load, tmp_path, records, offline):
    write_cifar(tmp_path / "keras-home" / "datasets", layout="archive")
    check_cifar(load("cifar10", {"split": "test"}), range(15, 18))
    assert offline.tries == []


def test_cifar10_download_is_the_binary_archive(load, tmp_path, records, monkeypatch):
    """Keras downloads the archive (here: a stand-in that writes it) and ganframe reads it from the cache."""
    calls = []

    def get_file(fname, origin, cache_subdir):
        calls.append((fname, origin, cache_subdir))
        return write_cifar(tmp_path / "downloaded", layout="archive")

    monkeypatch.setitem(sys.modules, "keras", types.SimpleNamespace(utils=types.SimpleNamespace(get_file=get_file)))
    check_cifar(load("cifar10", {"split": "test"}), range(15, 18))
    assert calls == [("cifar-10-binary.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz", "datasets")]


def test_cifar10_offline_says_what_to_download_and_where(load, tmp_path, offline):
    with pytest.raises(DataError) as error:
        load("cifar10")
    message = str(error.value)
    assert offline.tries == ["get_file"]
    assert message.startswith("CIFAR-10 is not available") and "no network" in message
    assert str(tmp_path / "keras-home" / "datasets") in message and "python version" not in message
    for words in CIFAR_FILES + ["cifar-10-binary.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
                                "cifar-10-batches-bin/", "--data-dir", "GANFRAME_DATA_DIR"]:
        assert words in message


def test_cifar10_data_dir_without_it(load, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError) as error:
        load("cifar10", {}, tmp_path)
    message = str(error.value)
    assert f"CIFAR-10 is not in the data directory {tmp_path}" in message and "python version" not in message
    for words in CIFAR_FILES + ["cifar-10-binary.tar.gz", "cifar-10-batches-bin/", "GANFRAME_DATA_DIR"]:
        assert words in message
    with pytest.raises(DataError, match="does not exist"):
        load("cifar10", {}, tmp_path / "nowhere")


class Unpickled:
    """Unpickling this creates the directory UNPICKLED: its absence proves ganframe never did."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def write_pickled_cifar(folder: Path) -> None:
    """The python version's layout (as keras.datasets.cifar10 unpacks it), each batch a pickle bomb."""
    folder.mkdir(parents=True)
    for name in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch", "batches.meta"):
        (folder / name).write_bytes(pickle.dumps(Unpickled(folder.parent / "UNPICKLED")))


@pytest.mark.parametrize("inside", ["cifar-10-batches-py", "."])
def test_cifar10_pickle_version_is_refused_unread(load, tmp_path, inside):
    data_dir = tmp_path / "data"
    write_pickled_cifar(data_dir / inside if inside != "." else data_dir)
    with pytest.raises(DataError) as error:
        load("cifar10", {}, data_dir)
    message = str(error.value)
    assert "python version (pickled batches), which ganframe never loads" in message and "cifar-10-binary.tar.gz" in message
    assert str(data_dir / ("cifar-10-batches-py" if inside != "." else "data_batch_1")) in message
    assert not any(tmp_path.rglob("UNPICKLED"))


def test_cifar10_pickle_version_in_keras_cache_is_not_loaded(load, tmp_path, offline):
    cache = tmp_path / "keras-home" / "datasets"
    write_pickled_cifar(cache / "cifar-10-batches-py-target" / "cifar-10-batches-py")
    with pytest.raises(DataError) as error:
        load("cifar10", {"split": "test"})
    message = str(error.value)
    assert offline.tries == ["get_file"]
    assert f"{cache / 'cifar-10-batches-py-target'} is CIFAR-10's python version" in message and "never loads" in message
    assert not any(tmp_path.rglob("UNPICKLED"))


@pytest.mark.parametrize("layout", ["folder", "archive"])
def test_cifar10_truncated_file_names_it_and_the_size(load, tmp_path, records, layout):
    write_cifar(tmp_path / "src", layout="folder")
    batch = tmp_path / "src" / "cifar-10-batches-bin" / "data_batch_3.bin"
    batch.write_bytes(batch.read_bytes()[:-100])
    if layout == "archive":
        with tarfile.open(tmp_path / "cifar-10-binary.tar.gz", "w:gz") as tar:
            tar.add(tmp_path / "src" / "cifar-10-batches-bin", "cifar-10-batches-bin")
        where = f"{tmp_path / 'cifar-10-binary.tar.gz'}:cifar-10-batches-bin/data_batch_3.bin"
        data_dir = tmp_path
    else:
        where, data_dir = str(batch), tmp_path / "src"
    with pytest.raises(DataError) as error:
        load("cifar10", {}, data_dir)
    assert f"{where}: 9119 bytes, expected 9219 (3 records of 3073 bytes" in str(error.value)
    check_cifar(load("cifar10", {"split": "test"}, data_dir), range(15, 18))  # the other split is whole


def test_cifar10_real_size_is_the_default(load, tmp_path):
    write_cifar(tmp_path, count=3)
    with pytest.raises(DataError, match=r"data_batch_1\.bin: 9219 bytes, expected 30730000 \(10000 records of 3073 bytes"):
        load("cifar10", {}, tmp_path)


def test_cifar10_damaged_archive_missing_file_and_bad_label(load, tmp_path, records):
    archive = write_cifar(tmp_path / "a", layout="archive")
    archive.write_bytes(archive.read_bytes()[:-40])
    with pytest.raises(DataError, match="corrupt or truncated, download it again") as error:
        load("cifar10", {"split": "test"}, tmp_path / "a")
    assert str(archive) in str(error.value)

    folder = write_cifar(tmp_path / "b")
    (folder / "data_batch_4.bin").unlink()
    with pytest.raises(DataError, match=r"but not data_batch_4\.bin") as error:
        load("cifar10", {}, tmp_path / "b")
    assert str(folder) in str(error.value)

    (folder / "test_batch.bin").write_bytes(bytes([10]) + cifar_batch(0, 3)[1:])
    with pytest.raises(DataError, match="a label byte is 10, but CIFAR-10's classes are 0..9") as error:
        load("cifar10", {"split": "test"}, tmp_path / "b")
    assert str(folder / "test_batch.bin") in str(error.value)


# ------------------------------------------------------------------ the standard sets' preprocessing


def test_value_range_minus_one_to_one_maps_exactly(load, tmp_path, registry):
    pixels = np.zeros((2, 28, 28), np.uint8)
    pixels[0, 0, :4] = [0, 51, 204, 255]
    np.savez(tmp_path / "mnist.npz", x_train=pixels, y_train=np.array([3, 4]), x_test=pixels, y_test=np.array([3, 4]))
    data = load("mnist", {"value_range": [-1, 1]}, tmp_path)
    check(data, (2, 28, 28, 1), 10, value_range=(-1.0, 1.0))
    images = data.float_images()
    np.testing.assert_allclose(images[0, 0, :4, 0], [-1.0, -0.6, 0.6, 1.0], atol=1e-6)
    assert images[0, 0, 0, 0] == -1.0 and images[0, 0, 3, 0] == 1.0
    check_dataset("mnist", {"value_range": [-1, 1]}, registry=registry, data_dir=tmp_path)


@pytest.mark.parametrize("value_range, low", [([0, 1], 0.0), ([-1, 1], -1.0)])
def test_pad_centres_the_image_in_the_low_value(load, tmp_path, value_range, low):
    write_mnist(tmp_path)
    plain = load("mnist", {"split": "test", "value_range": value_range}, tmp_path)
    padded = load("mnist", {"split": "test", "value_range": value_range, "pad_to": 32}, tmp_path)
    check(padded, (12, 32, 32, 1), 10, value_range=(low, 1.0))
    np.testing.assert_array_equal(padded.images[:, 2:30, 2:30], plain.images)
    border = np.ones((32, 32), bool)
    border[2:30, 2:30] = False
    assert (padded.float_images()[:, border] == low).all()
    odd = load("mnist", {"split": "test", "pad_to": [31, 29]}, tmp_path)  # the odd pixel goes below and right
    assert odd.images.shape == (12, 31, 29, 1)
    np.testing.assert_array_equal(odd.images[:, 1:29, 0:28], load("mnist", {"split": "test"}, tmp_path).images)


def test_resize_then_pad(load, tmp_path, records):
    write_mnist(tmp_path)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.full((20, 28, 28), 200, np.uint8))))
    small = load("fashion_mnist", {"resize": 14}, tmp_path)
    check(small, (20, 14, 14, 1), 10)
    assert (small.images == 200).all()  # bilinear keeps a flat image flat
    check(load("fashion_mnist", {"resize": [16, 20]}, tmp_path), (20, 16, 20, 1), 10)
    both = load("fashion_mnist", {"resize": 24, "pad_to": 32, "value_range": [-1, 1]}, tmp_path)
    check(both, (20, 32, 32, 1), 10, value_range=(-1.0, 1.0))
    assert (both.float_images()[:, 4:28, 4:28] > 0.5).all() and (both.float_images()[:, :4] == -1.0).all()
    write_cifar(tmp_path / "cifar")
    check(load("cifar10", {"split": "test", "resize": 16}, tmp_path / "cifar"), (3, 16, 16, 3), 10)
    check(load("cifar10", {"split": "test", "resize": 32}, tmp_path / "cifar"), (3, 32, 32, 3), 10)


def test_pad_smaller_than_the_images_is_refused(load, tmp_path):
    write_mnist(tmp_path)
    with pytest.raises(DataError, match=r"mnist: pad_to 16x16 is smaller than the images \(28x28\).*use the option resize"):
        load("mnist", {"pad_to": 16}, tmp_path)


# --------------------------------------------------------------------------------------------- digits


def test_digits(load):
    data = load("digits")
    check(data, (1797, 8, 8, 1), 10, dtype=np.float32)
    assert data.images.max() == 1.0 and set(np.unique(data.labels)) == set(range(10))
    check(load("digits", {"limit": 50}), (50, 8, 8, 1), 10, dtype=np.float32)


# ------------------------------------------------------------------------------------------ npz / npy


def test_npz_uint8_with_labels(load, tmp_path):
    x = np.arange(5 * 6 * 7, dtype=np.uint8).reshape(5, 6, 7)
    np.savez(tmp_path / "d.npz", images=x, y=np.array([0, 2, 1, 2, 0]))
    data = load("npz", {"path": tmp_path / "d.npz", "labels_key": "y"})
    check(data, (5, 6, 7, 1), 3)
    np.testing.assert_array_equal(data.images[..., 0], x)
    assert data.name == "npz"
    limited = load("npz", {"path": str(tmp_path / "d.npz"), "labels_key": "y", "limit": 2})
    check(limited, (2, 6, 7, 1), 3)  # num_classes comes from all labels, not the first two


@pytest.mark.parametrize("key", ["x", "images", "x_train", "only_one"])
def test_npz_default_key(load, tmp_path, key):
    arrays = {key: np.random.default_rng(0).random((4, 5, 5, 3), np.float32)}
    if key != "only_one":
        arrays["other"] = np.zeros(3)
    np.savez(tmp_path / "d.npz", **arrays)
    check(load("npz", {"path": tmp_path / "d.npz"}), (4, 5, 5, 3), None, dtype=np.float32)


def test_npz_ambiguous_or_unknown_key(load, tmp_path):
    np.savez(tmp_path / "d.npz", a=np.zeros((2, 4, 4)), b=np.zeros((2, 4, 4)))
    with pytest.raises(DataError, match="set the option `key`") as error:
        load("npz", {"path": tmp_path / "d.npz"})
    assert "a, b" in str(error.value)
    with pytest.raises(DataError, match="no array named 'c'; it holds a, b"):
        load("npz", {"path": tmp_path / "d.npz", "key": "c"})


def test_npy_file(load, tmp_path):
    np.save(tmp_path / "d.npy", np.zeros((3, 4, 4, 4), np.float64))
    check(load("npz", {"path": tmp_path / "d.npy"}), (3, 4, 4, 4), None, dtype=np.float32)


def test_npz_object_array_is_refused_without_unpickling(load, tmp_path):
    np.savez(tmp_path / "d.npz", x=np.array([np.zeros((2, 2)), "text"], dtype=object))
    with pytest.raises(DataError, match="dtype=object") as error:
        load("npz", {"path": tmp_path / "d.npz"})
    assert str(tmp_path / "d.npz") in str(error.value)
    np.save(tmp_path / "d.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="never loads") as error:
        load("npz", {"path": tmp_path / "d.npy"})
    assert str(tmp_path / "d.npy") in str(error.value)


def test_npz_float_out_of_range_states_min_and_max(load, tmp_path):
    np.savez(tmp_path / "d.npz", x=np.linspace(-1, 1, 2 * 4 * 4).reshape(2, 4, 4))
    with pytest.raises(DataError, match=r"span \[-1, 1\]; expected floats in \[0, 1\] or uint8") as error:
        load("npz", {"path": tmp_path / "d.npz"})
    assert str(tmp_path / "d.npz") in str(error.value)


@pytest.mark.parametrize(
    "array, words",
    [
        (np.zeros((2, 4, 4, 2), np.uint8), "C = 1, 3 or 4"),
        (np.zeros((4, 4), np.uint8), "shape (4, 4)"),
        (np.zeros((2, 4, 4), np.int64), "dtype int64"),
        (np.full((2, 4, 4), np.nan, np.float32), "32 pixel values are NaN or infinite, in 2 of 2 images"),
    ],
)
def test_npz_bad_images(load, tmp_path, array, words):
    np.savez(tmp_path / "d.npz", x=array)
    with pytest.raises(DataError) as error:
        load("npz", {"path": tmp_path / "d.npz"})
    assert words in str(error.value)


def test_npz_bad_labels(load, tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((3, 4, 4), np.uint8), n=np.array([0, 1]), f=np.array([0.0, 1.0, 1.0]))
    with pytest.raises(DataError, match=r"expected \(3,\), one per image"):
        load("npz", {"path": tmp_path / "d.npz", "labels_key": "n"})
    with pytest.raises(DataError, match="integer class ids"):
        load("npz", {"path": tmp_path / "d.npz", "labels_key": "f"})


def test_npz_missing_or_unreadable_file(load, tmp_path):
    with pytest.raises(DataError, match="does not exist") as error:
        load("npz", {"path": tmp_path / "nope.npz"})
    assert str(tmp_path / "nope.npz") in str(error.value)
    (tmp_path / "junk.npz").write_bytes(b"not an array file")
    with pytest.raises(DataError, match="cannot load it") as error:
        load("npz", {"path": tmp_path / "junk.npz"})
    assert str(tmp_path / "junk.npz") in str(error.value)


# -------------------------------------------------------------------------------- options and registry


@pytest.mark.parametrize(
    "name, options, field",
    [
        ("mnist", {"split": "valid"}, "'split'"),
        ("mnist", {"limit": 0}, "'limit'"),
        ("mnist", {"spilt": "test"}, "'spilt': unknown field"),
        ("fashion_mnist", {"value_range": [0, 255]}, "'value_range': got [0, 255]; expected [0, 1] (for a sigmoid output) or [-1, 1]"),
        ("cifar10", {"value_range": "-1,1"}, "'value_range'"),
        ("cifar10", {"pad_to": 0}, "'pad_to': got 0; height and width must be > 0"),
        ("mnist", {"resize": "big"}, "'resize'"),
        ("digits", {"limit": -3}, "'limit'"),
        ("npz", {}, "'path': required"),
        ("folder", {"path": ".", "channels": 2}, "'channels'"),
        ("folder", {"path": ".", "size": [4, 0]}, "'size': got [4, 0]; height and width must be > 0"),
        ("folder", {"path": ".", "size": "big"}, "[height, width]"),
    ],
)
def test_bad_options_name_the_field(load, name, options, field):
    with pytest.raises(ConfigError) as error:
        load(name, options)
    assert field in str(error.value) and f"dataset '{name}'" in str(error.value)


def test_registered_with_descriptions(registry):
    for name in ("mnist", "fashion_mnist", "cifar10", "digits", "npz", "folder"):
        component = registry.get("dataset", name)
        assert component.plugin == ("ganframe.builtin.folder" if name == "folder" else "ganframe.builtin.datasets")
        assert component.description


def test_modules_import_no_tensorflow():
    code = "import sys, ganframe.builtin.datasets, ganframe.builtin.folder; print(sorted(m for m in ('tensorflow', 'keras', 'sklearn') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
