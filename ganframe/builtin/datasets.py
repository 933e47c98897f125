"""Built-in datasets held in memory: MNIST, Fashion-MNIST, CIFAR-10, scikit-learn's digits, a user's .npz/.npy file.

Each loader returns the whole set in memory: uint8 images as they come (the standard sets, a
uint8 array), which the input pipeline maps onto the value range ([0, 1] unless the options ask
for [-1, 1]) a batch at a time, or float32 images already in [0, 1]. Every problem a user can cause (a missing or corrupt file,
a wrong shape, a bad value range) becomes one :class:`ganframe.DataError` that names
the file and says what to do. Nothing here imports TensorFlow; Keras is imported only
for the last resort of downloading a standard set. Nothing is ever unpickled.
"""

from __future__ import annotations

import functools
import gzip
import os
import struct
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable, Literal

import numpy as np
from PIL import Image
from pydantic import AfterValidator, BeforeValidator, Field

from ganframe import DataContext, DataError, DataSource, DataSpec, ImageData, Options, hookimpl

#: How a user points ganframe at a data directory (the core resolves them into DataContext.data_dir).
WHERE_DATA_DIR = "--data-dir DIR, data_dir = \"DIR\" in the config, or the GANFRAME_DATA_DIR environment variable"

Limit = Annotated[int | None, Field(gt=0, description="keep only the first `limit` images (small-data experiments, tests)")]


def _pair(value: Any) -> Any:
    """``size = 64`` means 64x64; a pair is (height, width)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    if value is None or isinstance(value, (list, tuple)):
        return value
    raise ValueError("expected an integer N (for NxN) or a pair [height, width]")


def _positive(size: tuple[int, int] | None) -> tuple[int, int] | None:
    if size is not None and min(size) <= 0:
        raise ValueError("height and width must be > 0")
    return size


#: An image size option: N for NxN, or [height, width].
Size = Annotated[tuple[int, int] | None, BeforeValidator(_pair), AfterValidator(_positive)]


def _first(array: Any, limit: int | None) -> Any:
    """The first ``limit`` items (all when None): a small, reproducible subset."""
    return array if limit is None or array is None else array[:limit]


def _require(path: Path, what: str, hint: str = "check the path") -> Path:
    """``path`` itself, or a DataError naming it when nothing is there."""
    if not path.exists():
        relative = "" if path.is_absolute() else f" (relative to {Path.cwd()})"
        raise DataError(f"{what} {path}{relative} does not exist; {hint}")
    return path


def _keras_home() -> Path:
    """Where Keras keeps its downloads (``$KERAS_HOME`` or ``~/.keras``)."""
    home = os.environ.get("KERAS_HOME")
    return Path(home) if home else Path.home() / ".keras"


def _own_folder(data_dir: Path, folder: str) -> Path:
    """The set's conventional subfolder of the data directory if there is one, else the directory itself.

    One data directory (say GANFRAME_DATA_DIR) then serves every set, each in its own
    folder; MNIST and Fashion-MNIST need that, since their files have the same names.
    """
    return data_dir / folder if (data_dir / folder).is_dir() else data_dir


# ------------------------------------------------------------- the standard sets' shared options

#: The value ranges a standard set can be scaled into: those of a sigmoid and of a tanh output.
VALUE_RANGES = ((0.0, 1.0), (-1.0, 1.0))


def _known_range(value: tuple[float, float]) -> tuple[float, float]:
    if value not in VALUE_RANGES:
        raise ValueError("expected [0, 1] (for a sigmoid output) or [-1, 1] (for a tanh output)")
    return value


#: The option ``value_range``: the interval the images' values are scaled into.
ValueRange = Annotated[tuple[float, float], AfterValidator(_known_range), Field(
    description="the pixel values' interval: [0, 1] (sigmoid output) or [-1, 1] (tanh output)")]


class ImageSetOptions(Options):
    """Options of mnist, fashion_mnist and cifar10: which images, and how they reach the networks.

    Applied in this order: limit, resize, pad_to, value_range.
    """

    split: Literal["train", "test", "all"] = "train"
    limit: Limit = None
    resize: Size = Field(None, description="resize (bilinear) to this (height, width), or N for NxN")
    pad_to: Size = Field(
        None, description="pad with the range's low value to this (height, width), or N for NxN, the image centred (28 -> 32)"
    )
    value_range: ValueRange = (0.0, 1.0)


def _resize(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 (N, H, W, C) resized bilinearly (Pillow, antialiased when shrinking) to ``size``."""
    height, width = size
    count, _, _, channels = pixels.shape
    resized = np.empty((count, height, width, channels), np.uint8)
    for index, image in enumerate(pixels):
        picture = Image.fromarray(image[..., 0] if channels == 1 else image)
        resized[index] = np.asarray(picture.resize((width, height), Image.Resampling.BILINEAR)).reshape(height, width, channels)
    return resized


def _pad(pixels: np.ndarray, size: tuple[int, int], name: str) -> np.ndarray:
    """uint8 (N, H, W, C) centred in zeros of ``size`` (an odd margin puts the extra pixel below and right)."""
    height, width = size
    _, old_height, old_width, _ = pixels.shape
    if height < old_height or width < old_width:
        raise DataError(
            f"{name}: pad_to {height}x{width} is smaller than the images ({old_height}x{old_width}); "
            "padding only adds pixels: use the option resize to shrink them"
        )
    top, left = (height - old_height) // 2, (width - old_width) // 2
    return np.pad(pixels, ((0, 0), (top, height - old_height - top), (left, width - old_width - left), (0, 0)))


def _present(pixels: np.ndarray, labels: np.ndarray, options: ImageSetOptions, num_classes: int, name: str) -> ImageData:
    """uint8 (N, H, W, C) images and their labels as ``options`` ask: limited, resized, padded, in the value range
    (which the pipeline maps the bytes onto: they stay uint8, a quarter of float32's memory)."""
    if options.limit is not None:  # a copy: a view would keep the whole set in memory
        pixels, labels = pixels[:options.limit].copy(), labels[:options.limit]
    if options.resize is not None and options.resize != pixels.shape[1:3]:
        pixels = _resize(pixels, options.resize)
    if options.pad_to is not None:
        pixels = _pad(pixels, options.pad_to, name)
    return ImageData(pixels, labels.astype(np.int32), DataSpec(pixels.shape[1:], options.value_range, num_classes), name=name)


# ------------------------------------------------------------------------- MNIST and Fashion-MNIST

IDX_SHAPE = (28, 28)
IDX_FILES = {  # split -> (images, labels), each as .gz or uncompressed; MNIST's and Fashion-MNIST's names alike
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IDX_IMAGES, IDX_LABELS = 2051, 2049  # magic numbers: 0x0803 (uint8, 3 dims) and 0x0801 (uint8, 1 dim)
IDX_ALL_FILES = ", ".join(f"{stem}.gz" for pair in IDX_FILES.values() for stem in pair)
NPZ_KEYS = {"train": ("x_train", "y_train"), "test": ("x_test", "y_test")}


@dataclass(frozen=True)
class IdxSet:
    """MNIST or Fashion-MNIST: the same four IDX files, told apart only by where they are kept."""

    name: str  #: the registry name, also the keras.datasets module that downloads it
    title: str
    folder: str  #: its subfolder in a data directory, as in the Keras cache
    cache: str  #: where Keras keeps it, relative to $KERAS_HOME: the .npz or the IDX files' folder
    classes: tuple[str, ...]
    npz: str | None = None  #: the Keras .npz of all four arrays, also accepted in a data directory


MNIST = IdxSet("mnist", "MNIST", "mnist", "datasets/mnist.npz", tuple("0123456789"), npz="mnist.npz")
FASHION_MNIST = IdxSet(
    "fashion_mnist", "Fashion-MNIST", "fashion-mnist", "datasets/fashion-mnist",
    ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
)


def read_idx(path: Path, magic: int, item_shape: tuple[int, ...]) -> np.ndarray:
    """One IDX file (gzip if it ends in .gz) as uint8 (N, *item_shape), checked byte for byte.

    The header is checked against the file so that a truncated download or a
    swapped file is reported by name instead of yielding garbage images.
    """
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as error:  # BadGzipFile is an OSError
        raise DataError(f"{path}: cannot read it ({error}); the file is corrupt or truncated, download it again") from None
    dims = 1 + len(item_shape)
    header = 4 + 4 * dims
    if len(raw) < header:
        raise DataError(f"{path}: only {len(raw)} bytes, too short for an IDX header; the file is truncated, download it again")
    found_magic, count, *found_shape = struct.unpack(f">{1 + dims}I", raw[:header])
    if found_magic != magic:
        kind = "images" if magic == IDX_IMAGES else "labels"
        raise DataError(
            f"{path}: not an IDX {kind} file (magic number {found_magic}, expected {magic}); "
            "check that the file is the right one, or download it again"
        )
    if tuple(found_shape) != item_shape:
        raise DataError(f"{path}: items of shape {tuple(found_shape)}, expected {item_shape}")
    expected = count * int(np.prod(item_shape, dtype=np.int64))
    if len(raw) - header != expected:
        raise DataError(
            f"{path}: the header announces {count} items ({expected} bytes) but the file holds "
            f"{len(raw) - header} bytes of data; the file is truncated or corrupt, download it again"
        )
    return np.frombuffer(raw, np.uint8, offset=header).reshape(count, *item_shape)


def _check_idx(
    dataset: IdxSet, images: np.ndarray, labels: np.ndarray, images_from: str, labels_from: str
) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels that belong together: (N, 28, 28) uint8 and N classes 0..9."""
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != IDX_SHAPE:
        raise DataError(f"{images_from}: {dataset.title} images must be uint8 (N, 28, 28), got {images.dtype} {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(
            f"{labels_from} holds {len(labels)} labels but {images_from} holds {len(images)} images; "
            "the files do not belong together or one is truncated"
        )
    last = len(dataset.classes) - 1
    if not np.issubdtype(labels.dtype, np.integer) or (labels.size and (labels.min() < 0 or labels.max() > last)):
        raise DataError(f"{labels_from}: labels must be the {dataset.title} classes 0..{last}, found values {labels.min()}..{labels.max()}")
    return images, labels


def _idx_from_npz(dataset: IdxSet, path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """One split of a Keras .npz (x_train, y_train, x_test, y_test)."""
    x_key, y_key = NPZ_KEYS[split]
    arrays = _load_arrays(path)
    if isinstance(arrays, np.ndarray):
        raise DataError(f"{path}: a single array; a {dataset.title} .npz holds x_train, y_train, x_test and y_test")
    with arrays:
        images, labels = _array(arrays, x_key, path), _array(arrays, y_key, path)
    return _check_idx(dataset, images, labels, f"{path} [{x_key}]", f"{path} [{y_key}]")


def _idx_split(dataset: IdxSet, directory: Path, split: str) -> tuple[np.ndarray, np.ndarray] | list[str]:
    """One split from the IDX files in ``directory``, else from its .npz; else the IDX files missing."""
    found = [next((p for p in (directory / f"{stem}.gz", directory / stem) if p.is_file()), None) for stem in IDX_FILES[split]]
    if found[0] is not None and found[1] is not None:
        images = read_idx(found[0], IDX_IMAGES, IDX_SHAPE)
        labels = read_idx(found[1], IDX_LABELS, ())
        return _check_idx(dataset, images, labels, str(found[0]), str(found[1]))
    if dataset.npz is not None and (directory / dataset.npz).is_file():
        return _idx_from_npz(dataset, directory / dataset.npz, split)
    return [f"{stem}.gz" for stem, path in zip(IDX_FILES[split], found) if path is None]


def _idx_files(dataset: IdxSet) -> str:
    """The files a user may provide, for messages."""
    return IDX_ALL_FILES + (f", or the Keras {dataset.npz}" if dataset.npz else "")


def _idx_from_dir(dataset: IdxSet, data_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """One split from the user's data directory (its subfolder ``dataset.folder``, if any). Never downloads."""
    _require(data_dir, "data directory",
             f"create it and put the {dataset.title} files there, or point ganframe elsewhere with {WHERE_DATA_DIR}")
    directory = _own_folder(data_dir, dataset.folder)
    found = _idx_split(dataset, directory, split)
    if isinstance(found, tuple):
        return found
    raise DataError(
        f"{dataset.title} ({split} split) is not in the data directory {directory}: missing {', '.join(found)}. "
        f"Put {_idx_files(dataset)} there or in its subfolder {dataset.folder}/ (IDX files uncompressed, without .gz, "
        f"also work), or point ganframe at the directory that holds them with {WHERE_DATA_DIR}"
    )


def _idx_from_keras(dataset: IdxSet, splits: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    """The splits from the Keras cache, else from a Keras download (the only Keras import here)."""
    cache = _keras_home() / dataset.cache
    directory = cache.parent if dataset.npz else cache
    parts = [_idx_split(dataset, directory, split) for split in splits]
    if all(isinstance(part, tuple) for part in parts):
        return parts
    try:
        import keras  # imports its backend (TensorFlow by default): only when nothing local was found

        (x_train, y_train), (x_test, y_test) = getattr(keras.datasets, dataset.name).load_data()
    except Exception as error:  # noqa: BLE001 - offline, no keras, a broken download: all the same to the user
        raise DataError(
            f"{dataset.title} is not available: no data directory was given, the Keras cache {cache} does not hold it, "
            f"and downloading it failed ({type(error).__name__}: {error}). Put {_idx_files(dataset)} in a directory "
            f"or in its subfolder {dataset.folder}/, and point ganframe at the directory with {WHERE_DATA_DIR}"
        ) from None
    arrays = {"train": (x_train, y_train), "test": (x_test, y_test)}
    source = f"keras.datasets.{dataset.name}.load_data()"
    return [_check_idx(dataset, *arrays[split], f"{source} x_{split}", f"{source} y_{split}") for split in splits]


def _load_idx_set(dataset: IdxSet, context: DataContext, options: ImageSetOptions) -> ImageData:
    splits = ["train", "test"] if options.split == "all" else [options.split]
    if context.data_dir is not None:
        parts = [_idx_from_dir(dataset, Path(context.data_dir).expanduser(), split) for split in splits]
    else:
        parts = _idx_from_keras(dataset, splits)
    images = np.concatenate([images[..., None] for images, _ in parts])
    labels = np.concatenate([labels for _, labels in parts])
    return _present(images, labels, options, len(dataset.classes), dataset.name)


def load_mnist(context: DataContext, options: ImageSetOptions) -> ImageData:
    """MNIST digits, 28x28x1 with labels, from the data directory, the Keras cache or a download."""
    return _load_idx_set(MNIST, context, options)


def load_fashion_mnist(context: DataContext, options: ImageSetOptions) -> ImageData:
    """Zalando's Fashion-MNIST, 28x28x1 with 10 clothing classes; MNIST's format and file names."""
    return _load_idx_set(FASHION_MNIST, context, options)


# ------------------------------------------------------------------------------------------ CIFAR-10

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
CIFAR10_ARCHIVE = "cifar-10-binary.tar.gz"
CIFAR10_FOLDER = "cifar-10-batches-bin"  # the archive's one folder
CIFAR10_SPLITS = {"train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)), "test": ("test_batch.bin",)}
CIFAR10_ALL_FILES = CIFAR10_SPLITS["train"] + CIFAR10_SPLITS["test"]
CIFAR10_RECORD = 1 + 3 * 32 * 32  # a label byte, then the red, green and blue 32x32 planes, row by row
CIFAR10_RECORDS = 10000  # per file, in every file of the original
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
#: What the python version (keras.datasets.cifar10's) leaves: ganframe never unpickles it.
CIFAR10_PICKLED = ("cifar-10-batches-py", "cifar-10-batches-py-target", "cifar-10-python.tar.gz", "data_batch_1")
CIFAR10_GET = (
    f"the binary version: {CIFAR10_ARCHIVE} ({CIFAR10_URL}), or its extracted folder {CIFAR10_FOLDER}/ "
    f"({', '.join(CIFAR10_ALL_FILES)})"
)


def _cifar_records(raw: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
    """One binary batch as uint8 (N, 32, 32, 3) images and N labels, its size checked exactly."""
    expected = CIFAR10_RECORDS * CIFAR10_RECORD
    if len(raw) != expected:
        raise DataError(
            f"{source}: {len(raw)} bytes, expected {expected} ({CIFAR10_RECORDS} records of {CIFAR10_RECORD} bytes: "
            "a label byte and a 32x32x3 image); the file is truncated or not a CIFAR-10 binary batch, download it again"
        )
    records = np.frombuffer(raw, np.uint8).reshape(CIFAR10_RECORDS, CIFAR10_RECORD)
    labels = records[:, 0]
    if labels.max() >= len(CIFAR10_CLASSES):
        raise DataError(f"{source}: a label byte is {labels.max()}, but CIFAR-10's classes are 0..9; this is not a CIFAR-10 binary batch")
    return records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def _cifar_from_folder(folder: Path, names: tuple[str, ...]) -> list[tuple[np.ndarray, np.ndarray]]:
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise DataError(f"{folder} holds part of CIFAR-10's binary version but not {', '.join(missing)}; put {CIFAR10_GET} there")
    parts = []
    for name in names:
        try:
            raw = (folder / name).read_bytes()
        except OSError as error:
            raise DataError(f"{folder / name}: cannot read it ({error})") from None
        parts.append(_cifar_records(raw, str(folder / name)))
    return parts


def _cifar_from_archive(archive: Path, names: tuple[str, ...]) -> list[tuple[np.ndarray, np.ndarray]]:
    """The batches read straight from the .tar.gz (nothing extracted to disk)."""
    wanted = [f"{CIFAR10_FOLDER}/{name}" for name in names]
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                if member.name in wanted and member.isfile():
                    found[member.name] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        raise DataError(f"{archive}: cannot read it ({error}); the archive is corrupt or truncated, download it again") from None
    missing = [name for name in wanted if name not in found]
    if missing:
        raise DataError(f"{archive}: holds no {', '.join(missing)}; is it CIFAR-10's binary version ({CIFAR10_URL})?")
    return [_cifar_records(found[name], f"{archive}:{name}") for name in wanted]


def _cifar_in(directory: Path, names: tuple[str, ...]) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """The batches from ``directory``: its cifar-10-batches-bin/, the .bin files themselves, or the archive; None if none."""
    for folder in (directory / CIFAR10_FOLDER, directory):
        if any((folder / name).is_file() for name in CIFAR10_ALL_FILES):
            return _cifar_from_folder(folder, names)
    if (directory / CIFAR10_ARCHIVE).is_file():
        return _cifar_from_archive(directory / CIFAR10_ARCHIVE, names)
    return None


def _pickled_cifar(directory: Path) -> str:
    """A sentence on the python (pickle) version in ``directory``, if it is there: why it is not used."""
    found = next((directory / name for name in CIFAR10_PICKLED if (directory / name).exists()), None)
    if found is None:
        return ""
    return (f"{found} is CIFAR-10's python version (pickled batches), which ganframe never loads: "
            "unpickling a file can run any code in it. ")


def _cifar_from_keras(names: tuple[str, ...]) -> list[tuple[np.ndarray, np.ndarray]]:
    """The batches from the Keras cache, else the binary archive downloaded into it by Keras."""
    cache = _keras_home() / "datasets"
    parts = _cifar_in(cache, names)
    if parts is not None:
        return parts
    try:
        import keras  # imports its backend (TensorFlow by default): only when nothing local was found

        archive = Path(keras.utils.get_file(CIFAR10_ARCHIVE, CIFAR10_URL, cache_subdir="datasets"))
    except Exception as error:  # noqa: BLE001 - offline, no keras, a broken download: all the same to the user
        raise DataError(
            f"CIFAR-10 is not available: no data directory was given, the Keras cache {cache} does not hold its binary "
            f"version, and downloading it failed ({type(error).__name__}: {error}). {_pickled_cifar(cache)}"
            f"Put {CIFAR10_GET} in a directory and point ganframe at it with {WHERE_DATA_DIR}"
        ) from None
    return _cifar_from_archive(archive, names)


def load_cifar10(context: DataContext, options: ImageSetOptions) -> ImageData:
    """CIFAR-10, 32x32x3 with 10 classes, from its binary version: data directory, Keras cache or download."""
    names = CIFAR10_ALL_FILES if options.split == "all" else CIFAR10_SPLITS[options.split]
    if context.data_dir is not None:
        data_dir = _require(Path(context.data_dir).expanduser(), "data directory",
                            f"create it and put CIFAR-10 there, or point ganframe elsewhere with {WHERE_DATA_DIR}")
        parts = _cifar_in(data_dir, names)
        if parts is None:
            raise DataError(
                f"CIFAR-10 is not in the data directory {data_dir}. {_pickled_cifar(data_dir)}"
                f"Put {CIFAR10_GET} there, or point ganframe at the directory that holds it with {WHERE_DATA_DIR}"
            )
    else:
        parts = _cifar_from_keras(names)
    images = np.concatenate([images for images, _ in parts])
    labels = np.concatenate([labels for _, labels in parts])
    return _present(images, labels, options, len(CIFAR10_CLASSES), "cifar10")


# --------------------------------------------------------------------------------------------- digits


class DigitsOptions(Options):
    limit: Limit = None


def load_digits(context: DataContext, options: DigitsOptions) -> ImageData:
    """scikit-learn's bundled 8x8 digits (1797 images, no download): a data set for seconds-long runs."""
    from sklearn.datasets import load_digits as sklearn_digits  # slow to import; only when used

    pixels, labels = sklearn_digits(return_X_y=True)
    images = _first(pixels, options.limit).reshape(-1, 8, 8, 1) / 16.0
    return ImageData(
        images.astype(np.float32),
        _first(labels, options.limit).astype(np.int32),
        DataSpec((8, 8, 1), (0.0, 1.0), 10),
        name="digits",
    )


# ------------------------------------------------------------------------------------------ npz / npy


class NpzOptions(Options):
    path: Path = Field(description="a .npz or .npy file")
    key: str | None = Field(None, description="the images' array in an .npz (default: x, images, x_train or the only one)")
    labels_key: str | None = Field(None, description="the labels' array in an .npz (default: no labels)")
    limit: Limit = None
    stream: bool = Field(
        False, description="read uint8 images from the file while training (memory-mapped) instead of loading them: "
                           "for arrays larger than memory; a .npy, or an .npz saved with np.savez (not compressed)"
    )


def _load_arrays(path: Path, mapped: bool = False) -> Any:
    """``np.load`` without pickle: an ndarray for .npy (memory-mapped, nothing read yet, when ``mapped``),
    an open NpzFile for .npz."""
    _require(path, "array file")
    try:
        return np.load(path, mmap_mode="r" if mapped else None, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise DataError(
            f"{path}: cannot load it as a numeric .npy or .npz file ({error}); ganframe never loads "
            "pickled Python objects, save plain arrays with np.save or np.savez"
        ) from None


def _require_key(arrays: Any, key: str, path: Path) -> None:
    if key not in arrays.files:
        raise DataError(f"{path}: no array named {key!r}; it holds {', '.join(arrays.files) or 'no arrays'}")


def _array(arrays: Any, key: str, path: Path) -> np.ndarray:
    """One array of an open .npz, refusing object arrays (they would need pickle)."""
    _require_key(arrays, key, path)
    try:
        return arrays[key]
    except ValueError:
        raise DataError(
            f"{path}: array {key!r} holds Python objects (dtype=object), which ganframe never loads; "
            "save it with a numeric dtype, e.g. uint8 images"
        ) from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise DataError(f"{path}: array {key!r} cannot be read ({error}); the file is corrupt") from None


def _default_key(names: list[str], path: Path) -> str:
    """The images' array when the user named none: a conventional name, or the only array."""
    for name in ("x", "images", "x_train"):
        if name in names:
            return name
    if len(names) == 1:
        return names[0]
    raise DataError(f"{path}: which array holds the images? It holds {', '.join(names) or 'none'}; set the option `key`")


def _nhwc(array: np.ndarray, source: str) -> np.ndarray:
    """``array`` as (N, H, W, C) images (a view: a memory-mapped array stays unread), or a DataError saying why not."""
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4 or array.shape[-1] not in (1, 3, 4):
        raise DataError(f"{source}: images have shape {array.shape}; expected (N, H, W) or (N, H, W, C) with C = 1, 3 or 4")
    if not array.size:
        raise DataError(f"{source}: the array holds no images (shape {array.shape}); save a non-empty array")
    return array


def _unit_images(array: np.ndarray, source: str) -> np.ndarray:
    """(N, H, W, C) images to hold in memory: uint8 as they are (a copy of a view, which would keep what it views),
    or floats checked to lie in [0, 1], as float32; anything else is refused."""
    array = _nhwc(array, source)
    if array.dtype == np.uint8:
        return array if array.base is None else array.copy()
    if not np.issubdtype(array.dtype, np.floating):
        raise DataError(f"{source}: images have dtype {array.dtype}; expected uint8 (0..255) or floats in [0, 1]")
    finite = np.isfinite(array)
    if not finite.all():  # one NaN pixel would poison every update it is in: count them, so the user can find them
        bad_images = int((~finite).reshape(len(array), -1).any(axis=1).sum())
        raise DataError(
            f"{source}: {finite.size - int(np.count_nonzero(finite))} pixel values are NaN or infinite, in "
            f"{bad_images} of {len(array)} images; repair or drop those images (np.isfinite finds them)"
        )
    low, high = float(array.min()), float(array.max())
    if not (0.0 <= low and high <= 1.0):
        raise DataError(
            f"{source}: float pixel values span [{low:g}, {high:g}]; expected floats in [0, 1] or uint8 "
            "in 0..255; rescale them first, e.g. x / 255 or (x + 1) / 2"
        )
    return array.astype(np.float32)


def _class_ids(labels: np.ndarray, count: int, source: str) -> tuple[np.ndarray, int]:
    """int32 labels (N,) and the number of classes (largest id + 1)."""
    if labels.ndim == 2 and labels.shape[1] == 1:  # (N, 1), as in Keras' CIFAR
        labels = labels[:, 0]
    if labels.shape != (count,):
        raise DataError(f"{source}: labels have shape {labels.shape}, expected ({count},), one per image")
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{source}: labels have dtype {labels.dtype}; expected integer class ids 0, 1, 2, ...")
    if count and labels.min() < 0:
        raise DataError(f"{source}: labels must be class ids >= 0, found {labels.min()}")
    return labels.astype(np.int32), int(labels.max()) + 1 if count else 0


@dataclass(frozen=True, eq=False)
class MemmapSource(DataSource):
    """uint8 images in a memory-mapped array, read an example at a time (the page cache does the rest)."""

    images: np.ndarray
    labels: np.ndarray | None
    spec: DataSpec
    name: str = "npz"

    def __len__(self) -> int:
        return len(self.images)

    def read(self, index: Any) -> dict[str, Any]:
        import tensorflow as tf

        image = tf.numpy_function(lambda i: np.asarray(self.images[i]), [index], tf.uint8, stateful=False)
        example = {"image": tf.ensure_shape(image, self.spec.shape)}
        if self.labels is not None:
            example["label"] = tf.gather(self._tensors["label"], index)
        return example

    @functools.cached_property
    def _tensors(self) -> dict[str, Any]:
        return outside_trace({"label": self.labels})


def outside_trace(arrays: dict[str, Any]) -> dict[str, Any]:
    """The arrays that are not None as tensors made eagerly, outside the ``tf.data`` trace that asks for them:
    every pipeline reading a source then captures them, instead of copying them into its graph as constants
    (200,000 paths cost 4.7 s per pipeline so)."""
    import tensorflow as tf

    with tf.init_scope():
        return {key: tf.constant(value) for key, value in arrays.items() if value is not None}


def _mapped_member(arrays: Any, key: str, path: Path) -> np.ndarray:
    """Array ``key`` of an uncompressed .npz, memory-mapped where it lies inside the zip file."""
    _require_key(arrays, key, path)
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(f"{key}.npy")
    if info.compress_type != zipfile.ZIP_STORED:
        raise DataError(f"{path}: array {key!r} is compressed (np.savez_compressed), so it cannot be read in place; "
                        "save it with np.savez, or as a .npy, for stream = true")
    with open(path, "rb") as handle:
        handle.seek(info.header_offset)
        name_length, extra_length = struct.unpack("<HH", handle.read(30)[26:30])
        handle.seek(info.header_offset + 30 + name_length + extra_length)
        version = np.lib.format.read_magic(handle)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = read_header(handle)
        offset = handle.tell()
    return np.memmap(path, dtype, mode="r", offset=offset, shape=shape, order="F" if fortran_order else "C")


def _npz_arrays(path: Path, options: NpzOptions) -> tuple[np.ndarray, np.ndarray | None, int | None]:
    """The images (memory-mapped with ``stream``, nothing read) and the labels, as class ids, with their count."""
    arrays = _load_arrays(path, mapped=options.stream)
    if isinstance(arrays, np.ndarray):
        if options.key or options.labels_key:
            raise DataError(f"{path}: a .npy file holds one array; the options key and labels_key apply to .npz files only")
        images, labels = arrays, None
    else:
        with arrays:
            key = options.key or _default_key(arrays.files, path)
            images = _mapped_member(arrays, key, path) if options.stream else _array(arrays, key, path)
            labels = _array(arrays, options.labels_key, path) if options.labels_key else None
    if labels is None:
        return images, None, None
    return images, *_class_ids(labels, len(images), f"{path} [{options.labels_key}]")


def load_npz(context: DataContext, options: NpzOptions) -> ImageData | MemmapSource:
    """Images (and optionally labels) from a user's .npz or .npy file, loaded or (``stream``) memory-mapped."""
    path = options.path.expanduser()
    images, labels, num_classes = _npz_arrays(path, options)
    images, labels = _first(images, options.limit), _first(labels, options.limit)
    if options.stream:  # checked by shape and dtype only: reading every pixel is what streaming avoids
        if images.dtype != np.uint8:
            raise DataError(f"{path}: stream = true reads uint8 images (0..255); these are {images.dtype}: save them "
                            "as uint8, or load them whole without stream")
        images = _nhwc(images, str(path))
        return MemmapSource(images, labels, DataSpec(images.shape[1:], (0.0, 1.0), num_classes))
    images = _unit_images(images, str(path))
    return ImageData(images, labels, DataSpec(images.shape[1:], (0.0, 1.0), num_classes), name="npz")


@hookimpl
def ganframe_register_datasets(register: Callable[..., None]) -> None:
    register("mnist", load_mnist, "MNIST digits 28x28x1 with labels (data directory, Keras cache, or download).", ImageSetOptions)
    register("fashion_mnist", load_fashion_mnist,
             "Fashion-MNIST clothing 28x28x1 with 10 labels (data directory, Keras cache, or download).", ImageSetOptions)
    register("cifar10", load_cifar10,
             "CIFAR-10 32x32x3 with 10 labels, binary version (data directory, Keras cache, or download).", ImageSetOptions)
    register("digits", load_digits, "scikit-learn's bundled 8x8 digits with labels; no download, trains in seconds.", DigitsOptions)
    register("npz", load_npz, "Images (and labels) from your .npz or .npy file: uint8 or floats in [0, 1].", NpzOptions)
