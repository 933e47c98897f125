"""The built-in ``folder`` dataset: a directory of images, read from disk while training.

Loading lists the files and reads each one's header (size and colour mode, not its pixels),
so that a wrong file, mixed sizes or a missing label are refused before the first step, naming
the file. Training then decodes and resizes the images inside ``tf.data``, in parallel, as the
steps need them: memory does not grow with the number of images (docs/datasets.md). Paired data
(image-to-image) comes as files holding the condition and the image side by side, or as a second
folder of conditions with the images' file names; they are decoded alike. With ``cache`` every
example is decoded once, in one parallel pass when the folder is loaded, into uint8 arrays in memory
or in files, and read from there by index. This module imports TensorFlow only when the pipeline
traces :meth:`FolderSource.read` or a cache is filled.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import struct
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
from PIL import Image
from pydantic import Field, ValidationInfo, field_validator

from ganframe import DataContext, DataError, DataSource, DataSpec, Options, hookimpl
from ganframe.builtin.datasets import Limit, Size, ValueRange, _first, _require, outside_trace

#: What the folder reads: the formats TensorFlow decodes (the first frame of an animated GIF).
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif"}

#: Pillow modes read as one channel when the option ``channels`` is not given; any other is read as RGB.
GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}

#: Threads reading headers (file opens wait on the disk more than on the CPU), each given this many files at a time.
HEADER_THREADS, HEADER_CHUNK = 8, 2000

#: Examples decoded per batch while a cache is filled.
CACHE_BATCH = 256


class FolderOptions(Options):
    path: Path = Field(description="a directory of PNG/JPEG/BMP/GIF images, searched recursively (hidden files skipped)")
    size: Size = Field(
        None, description="resize (bilinear, antialiased) to this (height, width), or N for NxN; needed when the images differ in size"
    )
    channels: Literal[1, 3] | None = Field(
        None, description="1 (grayscale) or 3 (RGB); by default what the first image is (RGBA and palettes read as RGB)"
    )
    labels: bool = Field(False, description="class = the top-level subfolder an image lies in")
    unreadable: Literal["refuse", "skip"] = Field(
        "refuse", description="an image file that cannot be read: refuse the data set, naming it, or skip it with a warning"
    )
    limit: Limit = None
    value_range: ValueRange = (0.0, 1.0)
    side_by_side: Literal["left", "right"] | None = Field(
        None, description="paired data: each file holds the condition and the image side by side, halves of equal "
                          "width (as pix2pix's data sets ship them); this names the condition's half"
    )
    conditions: Path | None = Field(
        None, description="paired data: a directory holding each image's condition at the image's relative path "
                          "(relative paths resolve as path does); channels as its first file, resized by size too"
    )
    cache: str | None = Field(
        None, description="\"memory\", or a directory: decode every image once (a parallel pass when the folder is "
                          "loaded) and keep the uint8 pixels there, so that no epoch decodes again; a directory keeps "
                          "them for later runs reading the same files alike"
    )

    @field_validator("conditions")
    @classmethod
    def _one_pairing(cls, conditions: Path | None, info: ValidationInfo) -> Path | None:
        if conditions is not None and info.data.get("side_by_side") is not None:
            raise ValueError("side_by_side and conditions are two ways to pair the images: give one of them")
        return conditions


@dataclass(frozen=True, eq=False)
class FolderSource(DataSource):
    """The images at ``paths`` (with their ``labels``), decoded to ``spec.shape`` when read.

    Paired (``spec.condition_shape`` set): each image's condition is the ``side_by_side`` half of its
    file not holding the image, or the file at ``condition_paths``; float32 in the data's range.
    """

    paths: tuple[str, ...]
    labels: np.ndarray | None
    spec: DataSpec
    resize: bool
    name: str = "folder"
    skip_unreadable: bool = False
    side_by_side: Literal["left", "right"] | None = None
    condition_paths: tuple[str, ...] | None = None
    cache: str | None = None

    def __len__(self) -> int:
        return len(self.paths)

    def describe(self, index: int) -> str:
        if self.condition_paths is None:
            return self.paths[index]
        return f"{self.paths[index]} (or its condition {self.condition_paths[index]})"

    def read(self, index: Any) -> dict[str, Any]:
        import tensorflow as tf

        from ganframe.pipeline import in_range

        example = self._decoded(index) if self.cache is None else self._from_cache(index)
        if "condition" in example:
            example["condition"] = in_range(example["condition"], self.spec.value_range)
        if self.labels is not None:
            example["label"] = tf.gather(self._tensors["label"], index)
        return example

    def _decoded(self, index: Any) -> dict[str, Any]:
        """Example ``index`` decoded from its file(s): ``image`` and, paired, ``condition``, uint8 of their shapes."""
        import tensorflow as tf

        image = self._decode("path", index, self.spec.channels)
        condition = None
        if self.side_by_side is not None:
            half = tf.shape(image)[1] // 2
            left, right = image[:, :half], image[:, half:]
            image, condition = (right, left) if self.side_by_side == "left" else (left, right)
        elif self.condition_paths is not None:
            condition = self._decode("condition_path", index, self.spec.condition_shape[2])
        example = {"image": fit_image(image, self.spec.shape, self.resize)}
        if condition is not None:
            example["condition"] = fit_image(condition, self.spec.condition_shape, self.resize)
        return example

    def _from_cache(self, index: Any) -> dict[str, Any]:
        """Example ``index`` as :meth:`_decoded` gives it, read from the cache (filled when the folder was
        loaded); an example that could not be decoded (kept out with unreadable = "skip") fails again, so
        that the pipeline drops it as it would."""
        import tensorflow as tf

        arrays = self._cache
        keys = [key for key in arrays if key != "readable"]
        *values, readable = tf.numpy_function(lambda i: [np.asarray(arrays[key][i]) for key in (*keys, "readable")],
                                              [index], [tf.uint8] * len(keys) + [tf.bool], stateful=False)
        example = {key: tf.ensure_shape(value, arrays[key].shape[1:]) for key, value in zip(keys, values)}
        if arrays["readable"].all():
            return example
        with tf.control_dependencies([tf.debugging.Assert(readable, ["this example's file cannot be decoded"])]):
            return {key: tf.identity(value) for key, value in example.items()}

    @functools.cached_property
    def _cache(self) -> dict[str, np.ndarray]:
        """Every example's decoded ``image`` (and ``condition``), uint8, and whether it could be decoded
        (``readable``): decoded in one parallel pass into memory, or found in the cache directory, where such
        a pass leaves its arrays under a name that says which files, read how, they hold."""
        shapes = {"image": self.spec.shape, **({} if self.spec.condition_shape is None
                                                 else {"condition": self.spec.condition_shape})}
        if self.cache == "memory":
            arrays = {key: np.zeros((len(self), *shape), np.uint8) for key, shape in shapes.items()}
            return {**arrays, "readable": self._decode_into(arrays)}
        directory = cache_directory(self.name, self.cache)
        stem = directory / f"folder-{self._fingerprint()}"
        files = {key: Path(f"{stem}.{key}.npy") for key in (*shapes, "readable")}
        if not all(path.is_file() for path in files.values()):  # written under temporary names, then renamed
            directory.mkdir(parents=True, exist_ok=True)
            scratch = {key: path.with_name(f"{path.name}.{os.getpid()}.tmp") for key, path in files.items()}
            try:
                arrays = {key: np.lib.format.open_memmap(scratch[key], "w+", np.uint8, (len(self), *shape))
                          for key, shape in shapes.items()}
                readable = self._decode_into(arrays)
                for array in arrays.values():
                    array.flush()
                with open(scratch["readable"], "wb") as handle:
                    np.save(handle, readable)
                for key, path in scratch.items():
                    os.replace(path, files[key])
            finally:  # a pass that failed leaves nothing behind
                for path in scratch.values():
                    path.unlink(missing_ok=True)
        return {key: np.load(path, mmap_mode="r") for key, path in files.items()}

    def _decode_into(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """Decode every example into ``arrays`` (by key, uint8 (N, ...)), in parallel; which could be decoded.
        One that cannot refuses the data set, naming its file, unless unreadable = "skip"."""
        import tensorflow as tf

        from ganframe.examples import take

        readable = np.zeros(len(self), bool)
        uncached = dataclasses.replace(self, cache=None)
        examples = tf.data.Dataset.range(len(self)).map(lambda i: {"index": i, **uncached._decoded(i)},
                                                        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        for batch in examples.ignore_errors().batch(CACHE_BATCH).as_numpy_iterator():
            for key, array in arrays.items():
                array[batch["index"]] = batch[key]
            readable[batch["index"]] = True
        if not readable.any() or not (readable.all() or self.skip_unreadable):
            take(uncached, np.flatnonzero(~readable)[:1])  # raises the error that names the file
        return readable

    def _fingerprint(self) -> str:
        """What the cache of this source holds, as a short hash: how it decodes (shapes, resizing, pairing, what
        it does with a file it cannot decode) and each file's path, size and modification time, so that a
        changed folder never reads a stale cache."""
        return fingerprint([*self.paths, *(self.condition_paths or ())],
                           {"shape": self.spec.shape, "condition_shape": self.spec.condition_shape,
                            "resize": self.resize, "side_by_side": self.side_by_side, "skip": self.skip_unreadable})

    def _decode(self, paths: str, index: Any, channels: int) -> Any:
        """The file at ``index`` of ``paths`` (a key of :attr:`_tensors`), decoded to uint8 of ``channels``."""
        import tensorflow as tf

        path = tf.gather(self._tensors[paths], index)
        return tf.io.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False)

    @functools.cached_property
    def _tensors(self) -> dict[str, Any]:
        return outside_trace({"path": self.paths, "label": self.labels, "condition_path": self.condition_paths})


def cache_directory(name: str, cache: str) -> Path:
    """The directory the option ``cache`` of data set ``name`` names (not "memory"); refused when it is a file."""
    directory = Path(cache).expanduser()
    if directory.exists() and not directory.is_dir():
        raise DataError(f"data set {name!r}: the cache {directory} is a file; the option cache takes "
                        "\"memory\" or a directory")
    return directory


def fingerprint(files: list[str], how: dict[str, Any]) -> str:
    """A short hash of ``how`` files are read and of each file's path, size and modification time: the name of
    their cache, so that a changed file or another way of reading never finds a stale one."""
    stats = [os.stat(file) for file in files]
    what = {**how, "files": [[os.path.abspath(file), stat.st_size, stat.st_mtime_ns] for file, stat in zip(files, stats)]}
    return hashlib.sha256(json.dumps(what).encode()).hexdigest()[:20]


def fit_image(image: Any, shape: tuple[int, ...], resize: bool) -> Any:
    """``image`` (uint8) of ``shape``: resized to its height and width (bilinear, antialiased, kept as bytes)
    when ``resize`` (the option size is given) and the image is another size."""
    import tensorflow as tf

    if resize:
        image = tf.cond(
            tf.reduce_all(tf.shape(image)[:2] == shape[:2]),
            lambda: image,
            lambda: tf.saturate_cast(tf.round(tf.image.resize(image, shape[:2], antialias=True)), tf.uint8),
        )
    return tf.ensure_shape(image, shape)


def _image_files(root: Path) -> list[str]:
    """Image files under ``root``, sorted by path (folder by folder) so that runs see the same order;
    hidden files and folders skipped. Strings, not ``Path`` objects: a folder may hold millions."""
    files = []
    for directory, folders, names in os.walk(root):
        folders[:] = [name for name in folders if not name.startswith(".")]
        files.extend(os.path.join(directory, name) for name in names
                     if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES)
    return sorted(files, key=lambda path: path.split(os.sep))


def _folder_classes(root: Path, files: list[str]) -> tuple[list[str], dict[str, int]]:
    """Each file's class (its top-level subfolder) and the class ids, by sorted class name."""
    names = []
    for path in files:
        parts = Path(path).relative_to(root).parts
        if len(parts) < 2:
            raise DataError(
                f"{path} lies directly in {root}, but labels = true takes each image's class from its subfolder; "
                "move every image into a folder named after its class, or set labels = false"
            )
        names.append(parts[0])
    return names, {name: index for index, name in enumerate(sorted(set(names)))}


#: PNG colour types (IHDR) as Pillow names the modes they decode to.
PNG_MODES = {0: "L", 2: "RGB", 3: "P", 4: "LA", 6: "RGBA"}
#: JPEG start-of-frame markers (SOF0 to SOF15, less DHT, JPG and DAC), which hold the image's size.
JPEG_FRAMES = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
#: How much of a file the fast header read looks at: a JPEG's EXIF block comes before its frame header.
HEAD_BYTES = 1 << 16


def _quick_header(head: bytes) -> tuple[int, int, str] | None:
    """(width, height, mode) of a PNG or JPEG from its first bytes, without Pillow (a folder of
    200,000 images is checked in seconds); None when the bytes are anything else or end too soon."""
    if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR" and len(head) >= 26:
        width, height = struct.unpack(">II", head[16:24])
        mode = PNG_MODES.get(head[25])
        return (width, height, mode) if mode else None
    if not head.startswith(b"\xff\xd8"):
        return None
    at = 2
    while at + 9 < len(head):
        if head[at] != 0xFF:
            return None
        marker, length = head[at + 1], struct.unpack(">H", head[at + 2:at + 4])[0]
        if marker in JPEG_FRAMES:
            height, width, components = struct.unpack(">HHB", head[at + 5:at + 10])
            return (width, height, {1: "L", 3: "RGB"}.get(components, "CMYK")) if width and height else None
        at += 2 + length
    return None


def _header(path: str) -> tuple[int, int, str] | str:
    """(width, height, mode) from the file's header, or why it cannot be read."""
    try:
        with open(path, "rb") as handle:
            quick = _quick_header(handle.read(HEAD_BYTES))
        if quick is not None:
            return quick
    except OSError as error:
        return str(error)
    try:
        with Image.open(path) as image:
            if image.format not in {"PNG", "JPEG", "BMP", "GIF", "MPO"}:
                return f"it is a {image.format} image, which TensorFlow cannot decode; convert it to PNG or JPEG"
            return image.size[0], image.size[1], image.mode
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        return str(error)


def _directory(path: Path, what: str) -> Path:
    """``path`` (``~`` expanded; relative to the working directory), refused unless it is a directory."""
    root = _require(path.expanduser(), what)
    if not root.is_dir():
        raise DataError(f"{root} is not a directory; the folder dataset needs a directory of images")
    return root


def _some(names: list[str], shown: int = 3) -> str:
    return ", ".join(names[:shown]) + (", ..." if len(names) > shown else "")


def _matching(root: Path, files: list[str], condition_root: Path) -> list[str]:
    """Each image's condition: the file of its relative path under ``condition_root``; every image must have
    one and every file there an image, else the first few of either are named."""
    prefix, condition_prefix = os.path.join(str(root), ""), os.path.join(str(condition_root), "")
    by_name = {path[len(condition_prefix):]: path for path in _image_files(condition_root)}
    names = [path[len(prefix):] for path in files]
    missing = [name for name in names if name not in by_name]
    extra = sorted(set(by_name) - set(names), key=lambda name: name.split(os.sep))
    if missing or extra:
        problems = ([f"{len(missing)} image(s) have no condition ({_some(missing)})"] if missing else []) + (
            [f"{len(extra)} condition file(s) have no image ({_some(extra)})"] if extra else [])
        raise DataError(
            f"{root} and its conditions {condition_root} do not match: {'; '.join(problems)}. Each image needs the "
            "file of the same relative path (name and extension) under conditions: add, rename or remove files so "
            "that the two folders hold the same names"
        )
    return [by_name[name] for name in names]


def _one_size(root: Path, files: list[str], headers: list[tuple[int, int, str]]) -> tuple[int, int]:
    """(height, width) that all the files share, else a DataError naming two that differ."""
    (width, height, _), first = headers[0], files[0]
    for path, (other_width, other_height, _) in zip(files, headers):
        if (other_width, other_height) != (width, height):
            raise DataError(
                f"{root}: images differ in size ({first} is {width}x{height}, {path} is "
                f"{other_width}x{other_height}); set the option `size` (e.g. size = 64) to resize them all"
            )
    return height, width


def _channels(root: Path, files: list[str], headers: list[tuple[int, int, str]], requested: int | None) -> int:
    """``requested``, else 1 if the first file is grayscale and 3 if not (a warning when the files mix both)."""
    mode, first = headers[0][2], files[0]
    channels = requested or (1 if mode in GRAY_MODES else 3)
    if requested is None:
        other = next(((path, header[2]) for path, header in zip(files, headers)
                      if (header[2] in GRAY_MODES) != (mode in GRAY_MODES)), None)
        if other is not None:
            print(f"warning: {root}: the images mix grayscale and colour ({first} is {mode}, {other[0]} is {other[1]}); "
                  f"reading all with {channels} channel(s), as the first; set the option channels (1 or 3) to choose",
                  file=sys.stderr)
    return channels


def _even_widths(files: list[str], headers: list[tuple[int, int, str]], side: str) -> None:
    """Refuse a side-by-side file that cannot be cut into two halves of equal width."""
    odd = [(path, width) for path, (width, _, _) in zip(files, headers) if width % 2]
    if odd:
        raise DataError(
            f"{odd[0][0]} is {odd[0][1]} pixels wide, but side_by_side = \"{side}\" cuts each file into two halves "
            f"of equal width: {len(odd)} file(s) have an odd width ({_some([path for path, _ in odd])}); crop or pad "
            "them by one column"
        )


def load_folder(context: DataContext, options: FolderOptions) -> FolderSource:
    """Every image under a directory, optionally labelled by subfolder, optionally paired with a condition
    (the other half of a side-by-side file, or a file of the same name in another folder); read while training."""
    root = _directory(options.path, "image folder")
    files = _image_files(root)
    if not files:
        raise DataError(f"{root}: no PNG or JPEG images found (searched subfolders too, for {', '.join(sorted(IMAGE_SUFFIXES))})")
    labels = num_classes = None
    if options.labels:
        names, ids = _folder_classes(root, files)
        labels, num_classes = np.array([ids[name] for name in names], np.int32), len(ids)
    condition_root = conditions = None
    if options.conditions is not None:
        condition_root = _directory(options.conditions, "condition folder")
        conditions = _matching(root, files, condition_root)
    files, labels, conditions = (_first(values, options.limit) for values in (files, labels, conditions))
    every = files + (conditions or [])
    chunks = [every[start:start + HEADER_CHUNK] for start in range(0, len(every), HEADER_CHUNK)]
    with ThreadPoolExecutor(HEADER_THREADS) as pool:
        headers = [header for chunk in pool.map(lambda chunk: list(map(_header, chunk)), chunks) for header in chunk]

    unreadable = [(path, header) for path, header in zip(every, headers) if isinstance(header, str)]
    if unreadable and options.unreadable == "refuse":
        path, problem = unreadable[0]
        raise DataError(
            f"{path}: cannot read this image ({problem}); delete or replace the file, "
            "or skip unreadable files with the option unreadable = \"skip\""
        )
    condition_headers = headers[len(files):] if conditions is not None else None
    headers = headers[:len(files)]
    if unreadable:
        kept = [index for index, header in enumerate(headers) if not isinstance(header, str)
                and (condition_headers is None or not isinstance(condition_headers[index], str))]
        paired = "" if conditions is None else " with their conditions"
        if not kept:
            raise DataError(f"{root}: none of the {len(files)} image files{paired} can be read "
                            f"(the first: {unreadable[0][0]})")
        dropped = "unreadable image file(s)" if conditions is None else "pair(s) with an unreadable image or condition"
        print(f"warning: {root}: skipped {len(files) - len(kept)} {dropped} of {len(files)} (unreadable = \"skip\"), "
              f"the first: {unreadable[0][0]}", file=sys.stderr)
        files, headers = [files[index] for index in kept], [headers[index] for index in kept]
        labels = None if labels is None else labels[kept]
        if conditions is not None:
            conditions, condition_headers = [conditions[index] for index in kept], [condition_headers[index] for index in kept]

    if options.side_by_side is not None:
        _even_widths(files, headers, options.side_by_side)
    height, width = options.size or _one_size(root, files, headers)
    if options.side_by_side is not None and options.size is None:
        width //= 2
    channels = _channels(root, files, headers, options.channels)
    condition_shape = (height, width, channels) if options.side_by_side is not None else None
    if conditions is not None:
        condition_size = options.size or _one_size(condition_root, conditions, condition_headers)
        condition_shape = (*condition_size, _channels(condition_root, conditions, condition_headers, None))
    source = FolderSource(tuple(files), labels,
                          DataSpec((height, width, channels), options.value_range, num_classes, condition_shape),
                          resize=options.size is not None, skip_unreadable=options.unreadable == "skip",
                          side_by_side=options.side_by_side,
                          condition_paths=None if conditions is None else tuple(conditions), cache=options.cache)
    if options.cache is not None:
        source._cache  # filled now: a file that cannot be decoded is refused before a run starts, naming it
    return source


@hookimpl
def ganframe_register_datasets(register: Callable[..., None]) -> None:
    register("folder", load_folder, "A folder of images (PNG/JPEG/BMP/GIF), read while training; optionally labelled by subfolder.",
             FolderOptions)
