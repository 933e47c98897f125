"""The built-in ``tfrecord`` dataset: shards of ``tf.train.Example`` records holding encoded images, read as a stream.

A TFRecord file is read front to back, never by index, so the data set is a :class:`ganframe.DataStream`.
Loading lists the shards and reads their first record (its features, its image's size and channels),
so that a wrong path, feature name or compression is refused before the first step, naming the file.
Training reads several shards at a time and decodes the images inside ``tf.data``, in parallel, as
bytes until the batch. How many records there are is unknown until they are counted: a run measured
in epochs counts them once (reading every shard, decoding nothing). Under a multi-worker strategy
each worker reads whole shards of its own. TensorFlow is imported when the data set is loaded.
"""

from __future__ import annotations

import functools
import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
from pydantic import Field, model_validator

from ganframe import DataContext, DataError, DataSpec, DataStream, Options, hookimpl
from ganframe.builtin.datasets import Size, ValueRange
from ganframe.builtin.folder import cache_directory, fingerprint, fit_image

#: Shards read at once, their records taken in turn: a fixed number, so that the order is the same every run.
READ_SHARDS = 8

#: The option compression as ``tf.data.TFRecordDataset`` names it.
COMPRESSION = {"none": "", "gzip": "GZIP", "zlib": "ZLIB"}


class TFRecordOptions(Options):
    path: Path = Field(description="a directory of TFRecord shards (every file in it but hidden ones, sorted), one file, "
                                   "or a glob pattern such as data/train-*.tfrecord")
    image_key: str = Field("image", description="the bytes feature holding each record's encoded image (PNG, JPEG, BMP, GIF)")
    label_key: str | None = Field(None, description="an int64 feature holding each record's class id (default: no labels)")
    num_classes: int | None = Field(None, gt=0, description="with label_key: the class ids run from 0 to num_classes - 1")
    size: Size = Field(
        None, description="resize (bilinear, antialiased) to this (height, width), or N for NxN; needed when the images differ in size"
    )
    channels: Literal[1, 3] | None = Field(None, description="1 (grayscale) or 3 (RGB); by default what the first image is")
    compression: Literal["none", "gzip", "zlib"] = Field("none", description="how the shards were written")
    unreadable: Literal["refuse", "skip"] = Field(
        "refuse", description="a record whose image cannot be decoded: stop the run, or leave the record out"
    )
    value_range: ValueRange = (0.0, 1.0)
    shuffle_buffer: int = Field(1000, gt=0, description="examples the shuffle buffer holds, decoded (each height × width × channels bytes)")
    cache: str | None = Field(
        None, description="\"memory\", or a directory: keep the decoded images of the first pass there (uint8), so that "
                          "later passes decode nothing; a directory keeps them for later runs reading the same shards alike"
    )

    @model_validator(mode="after")
    def _classes_with_labels(self) -> TFRecordOptions:
        if (self.label_key is None) != (self.num_classes is None):
            raise ValueError("label_key and num_classes go together: the class ids of label_key run from 0 to "
                             "num_classes - 1, and a stream is not read ahead to count them")
        return self


@dataclass(frozen=True, eq=False)
class TFRecordStream(DataStream):
    """The records of ``files``, each image decoded (and resized) to ``spec.shape`` as it is read."""

    files: tuple[str, ...]
    spec: DataSpec
    image_key: str
    label_key: str | None
    resize: bool
    compression: str
    skip_unreadable: bool = False
    cache: str | None = None
    shuffle_buffer: int = DataStream.shuffle_buffer
    name: str = "tfrecord"

    def examples(self, worker: int, workers: int) -> Any:
        import tensorflow as tf

        files = list(self.files[worker::workers])
        if not files:
            raise DataError(f"data set {self.name!r}: {len(self.files)} shard file(s) for {workers} workers, but each "
                            f"worker reads whole shards: write the records into at least {workers} shards")
        records = tf.data.Dataset.from_tensor_slices(files).interleave(
            lambda file: tf.data.TFRecordDataset(file, self.compression), cycle_length=min(len(files), READ_SHARDS),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        examples = records.map(self._example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        if self.skip_unreadable:
            examples = examples.ignore_errors()
        if self.cache == "memory":
            return examples.cache()
        if self.cache is None:
            return examples
        directory = cache_directory(self.name, self.cache)
        directory.mkdir(parents=True, exist_ok=True)
        return examples.cache(str(directory / f"tfrecord-{self._fingerprint(files)}"))

    def count(self) -> int:
        return self._count

    @functools.cached_property
    def _count(self) -> int:
        """The records in all shards, counted once: read, not decoded."""
        import tensorflow as tf

        records = tf.data.TFRecordDataset(list(self.files), self.compression, num_parallel_reads=READ_SHARDS)
        try:
            return int(records.reduce(np.int64(0), lambda count, _: count + 1))
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as error:
            raise DataError(f"data set {self.name!r}: cannot count its records ({error.message.strip()}); a shard is "
                            "damaged or not a TFRecord file (check the option compression)") from None

    def _example(self, record: Any) -> dict[str, Any]:
        """One record as an example: its image decoded to uint8 of ``spec.shape``, its class id checked."""
        import tensorflow as tf

        features = {self.image_key: tf.io.FixedLenFeature([], tf.string)}
        if self.label_key is not None:
            features[self.label_key] = tf.io.FixedLenFeature([], tf.int64)
        parsed = tf.io.parse_single_example(record, features)
        image = tf.io.decode_image(parsed[self.image_key], channels=self.spec.channels, expand_animations=False)
        if not self.resize:
            size = tf.debugging.assert_equal(tf.shape(image)[:2], self.spec.shape[:2], message=(
                f"an image of another size than the first ({self.spec.height}x{self.spec.width}): set the option size"))
            with tf.control_dependencies([size]):
                image = tf.identity(image)
        example = {"image": fit_image(image, self.spec.shape, self.resize)}
        if self.label_key is not None:
            label = tf.cast(parsed[self.label_key], tf.int32)
            checks = [tf.debugging.assert_less(label, self.spec.num_classes, message=(
                          f"a class id ({self.label_key}) of num_classes = {self.spec.num_classes} or more")),
                      tf.debugging.assert_non_negative(label, message=f"a negative class id ({self.label_key})")]
            with tf.control_dependencies(checks):
                example["label"] = tf.identity(label)
        return example

    def _fingerprint(self, files: list[str]) -> str:
        """What a cache of ``files`` read this way holds, as a short hash: how they are decoded, and each file's
        path, size and modification time, so that changed shards never read a stale cache."""
        return fingerprint(files, {"shape": self.spec.shape, "resize": self.resize, "image_key": self.image_key,
                                   "label_key": self.label_key, "compression": self.compression,
                                   "skip": self.skip_unreadable})


def _shards(path: Path) -> list[str]:
    """The shard files ``path`` names: a directory's files (hidden ones skipped), one file, or a glob's matches; sorted."""
    where = path.expanduser()
    if where.is_dir():
        files = [str(file) for file in where.iterdir() if file.is_file() and not file.name.startswith(".")]
    elif where.is_file():
        files = [str(where)]
    else:
        files = [file for file in glob.glob(str(where)) if os.path.isfile(file)]
    if not files:
        relative = "" if where.is_absolute() else f" (relative to {Path.cwd()})"
        raise DataError(f"{where}{relative}: no TFRecord files there; give a directory of shards, a file, or a glob "
                        "pattern such as data/train-*.tfrecord")
    return sorted(files)


def _first_record(files: list[str], compression: str) -> tuple[str, bytes]:
    """The first record of the first shard that holds one, and that shard."""
    import tensorflow as tf

    for file in files:
        try:
            for record in tf.data.TFRecordDataset(file, compression).take(1).as_numpy_iterator():
                return file, record
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as error:
            raise DataError(f"{file}: cannot read a record ({error.message.strip()}); is it a TFRecord file, written "
                            "with the compression the option compression names?") from None
    raise DataError(f"none of the {len(files)} shard file(s) holds a record (the first: {files[0]})")


def _first_image(file: str, record: bytes, options: TFRecordOptions) -> tuple[int, int, int]:
    """(height, width, channels) of the first record's image, after checking its features."""
    import tensorflow as tf

    feature = tf.train.Example.FromString(record).features.feature
    found = ", ".join(sorted(feature)) or "none"
    wanted = [(options.image_key, "bytes_list", "image_key")] + (
        [] if options.label_key is None else [(options.label_key, "int64_list", "label_key")])
    for key, kind, option in wanted:
        if key not in feature or feature[key].WhichOneof("kind") != kind:
            raise DataError(f"{file}: the first record has no {kind.split('_')[0]} feature {key!r} (option {option}); "
                            f"its features: {found}")
    try:
        shape = tf.io.decode_image(feature[options.image_key].bytes_list.value[0], expand_animations=False).shape
    except tf.errors.InvalidArgumentError as error:
        raise DataError(f"{file}: the first record's {options.image_key!r} is no image TensorFlow decodes "
                        f"({error.message.strip()}); it must hold PNG, JPEG, BMP or GIF bytes") from None
    return shape[0], shape[1], shape[2]


def load_tfrecord(context: DataContext, options: TFRecordOptions) -> TFRecordStream:
    """The records of TFRecord shards as a stream: encoded images (and class ids), decoded while training."""
    files = _shards(options.path)
    compression = COMPRESSION[options.compression]
    height, width, channels = _first_image(*_first_record(files, compression), options)
    height, width = options.size or (height, width)
    channels = options.channels or (1 if channels in (1, 2) else 3)
    return TFRecordStream(tuple(files), DataSpec((height, width, channels), options.value_range, options.num_classes),
                          options.image_key, options.label_key, resize=options.size is not None, compression=compression,
                          skip_unreadable=options.unreadable == "skip", shuffle_buffer=options.shuffle_buffer,
                          cache=options.cache)


@hookimpl
def ganframe_register_datasets(register: Callable[..., None]) -> None:
    register("tfrecord", load_tfrecord, "TFRecord shards of tf.train.Example records holding encoded images (and "
             "class ids), read as a stream while training.", TFRecordOptions)
