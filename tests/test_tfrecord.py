"""The ``tfrecord`` dataset: shards of ``tf.train.Example`` records holding encoded images, read as a stream.

Each test writes a few tiny shards with ``tf.io.TFRecordWriter``: record n holds a flat 4x4 PNG of
value 10·n and the class id n % 3, so a batch says which records it holds.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import ganframe
from ganframe import ConfigError, DataContext, DataError, DataStream
from ganframe.pipeline import make_dataset, sample
from ganframe.testing import isolated_registry
from test_pipeline import Pipelines
from tinyrun import TINY, tiny_config


def png(value: int, size: tuple[int, int] = (4, 4)) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", size, value).save(buffer, "PNG")
    return buffer.getvalue()


def record(number: int, image: bytes | None = None, key: str = "image") -> bytes:
    features = {key: tf.train.Feature(bytes_list=tf.train.BytesList(value=[image or png(10 * number)])),
                "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[number % 3]))}
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def write_shards(directory: Path, shards: int = 3, per_shard: int = 4, compression: str = "",
                 **replaced: bytes) -> Path:
    """``shards`` files of ``per_shard`` records, numbered on across them; ``replaced`` maps "r<n>" to record n's bytes."""
    directory.mkdir(parents=True, exist_ok=True)
    for shard in range(shards):
        with tf.io.TFRecordWriter(str(directory / f"train-{shard:05d}.tfrecord"), compression) as writer:
            for number in range(shard * per_shard, (shard + 1) * per_shard):
                writer.write(replaced.get(f"r{number}", record(number)))
    return directory


@pytest.fixture
def load():
    registry = isolated_registry()
    return lambda options: registry.build("dataset", "tfrecord", options, DataContext(None))


def numbers(batch: dict) -> list[int]:
    return [int(round(value * 255 / 10)) for value in batch["image"].numpy()[:, 0, 0, 0]]


def test_records_stream_with_their_labels_every_pass_whole(load, tmp_path):
    stream = load({"path": write_shards(tmp_path / "shards"), "label_key": "label", "num_classes": 3})
    assert isinstance(stream, DataStream) and stream.spec.shape == (4, 4, 1) and stream.spec.num_classes == 3
    assert stream.size is None and stream.count() == 12
    batches = list(make_dataset(stream, 4, seed=1).take(6))
    order = [number for batch in batches for number in numbers(batch)]
    assert sorted(order[:12]) == sorted(order[12:]) == list(range(12)) and order[:12] != order[12:]
    np.testing.assert_array_equal(batches[0]["label"].numpy(), np.array(numbers(batches[0])) % 3)
    assert batches[0]["image"].numpy()[0, 0, 0, 0] == np.float32(numbers(batches[0])[0] * 10) / np.float32(255)
    some = sample(stream, 5, seed=0)  # what evaluation and the health probe read: the start of a seeded pass
    assert len(set(numbers({"image": tf.constant(some.images)}))) == 5
    np.testing.assert_array_equal(some.labels, np.array(numbers({"image": tf.constant(some.images)})) % 3)


def test_a_file_a_glob_or_a_directory_names_the_shards(load, tmp_path):
    shards = write_shards(tmp_path / "shards")
    (shards / ".partial").write_bytes(b"a hidden file, not a shard")
    assert load({"path": shards}).count() == 12
    assert load({"path": shards / "train-00001.tfrecord"}).count() == 4
    write_shards(tmp_path / "shards" / "more", shards=1)
    assert load({"path": str(shards / "train-0000[02].tfrecord"), "size": 2}).count() == 8
    gzipped = write_shards(tmp_path / "gzipped", shards=1, compression="GZIP")
    assert load({"path": gzipped, "compression": "gzip"}).count() == 4


def test_each_worker_reads_whole_shards_of_its_own(load, tmp_path):
    stream = load({"path": write_shards(tmp_path / "shards")})
    workers = [list(dataset.take(4)) for dataset in make_dataset(stream, 4, seed=2, strategy=Pipelines(2))]
    read = [{number for batch in batches for number in numbers(batch)} for batches in workers]
    assert read[0] == set(range(4)) | set(range(8, 12)) and read[1] == set(range(4, 8))  # shards 0, 2 and 1
    with pytest.raises(DataError, match="3 shard file.* for 4 workers.*at least 4 shards"):
        make_dataset(stream, 4, strategy=Pipelines(4))


@pytest.mark.parametrize("cache", ["memory", "directory"])
def test_a_cache_serves_the_later_passes_and_changes_no_batch(load, tmp_path, cache):
    """After the first pass the shards are deleted: the later passes come from the cache, as the uncached ones."""
    shards = write_shards(tmp_path / "shards")
    expected = [numbers(batch) for batch in make_dataset(load({"path": shards}), 4, seed=3).take(9)]
    option = "memory" if cache == "memory" else str(tmp_path / "cache")
    batches = iter(make_dataset(load({"path": shards, "cache": option}), 4, seed=3))
    first_pass = [numbers(next(batches)) for _ in range(3)]
    for path in shards.iterdir():
        path.unlink()
    assert first_pass + [numbers(next(batches)) for _ in range(6)] == expected
    if cache == "directory":
        assert any(path.name.endswith(".index") for path in (tmp_path / "cache").iterdir())


def test_a_cache_another_reader_is_writing_is_named(load, tmp_path):
    """Two readers cannot write one cache: the second is told, with tf.data's reason (the lock file left
    by a run killed while writing reads the same)."""
    options = {"path": write_shards(tmp_path / "shards", per_shard=20), "cache": str(tmp_path / "cache"),
               "shuffle_buffer": 2}
    writing = iter(make_dataset(load(options), 4, seed=0))  # a pass of 60 begun: the cache is being written
    next(writing)
    with pytest.raises(DataError, match="data set 'tfrecord': its cache cannot be written .*lockfile"):
        sample(load(options), 4, seed=0)


def test_epochs_count_the_records_and_a_damaged_record_stops_the_run_naming_the_step(tmp_path):
    shards = write_shards(tmp_path / "shards")
    config = tiny_config(tmp_path, data="tfrecord", data_options={"path": str(shards)}, batch_size=4, steps=None,
                         epochs=2, arch_options=TINY, health={"every": 0})
    assert ganframe.train(config, progress=False).step == 6  # 2 epochs of 12 // 4 steps
    damaged = write_shards(tmp_path / "damaged", r5=record(5, image=b"no image at all"))
    with pytest.raises(DataError, match="data set 'tfrecord': cannot read an example at step [0-9]"):
        ganframe.train({**config, "data_options": {"path": str(damaged)}, "epochs": None, "steps": 6,
                        "out": str(tmp_path / "damaged-run")}, progress=False)
    skipping = load_stream(damaged, unreadable="skip")
    read = [number for batch in make_dataset(skipping, 11, seed=0).take(2) for number in numbers(batch)]
    assert sorted(read[:11]) == [n for n in range(12) if n != 5]


def load_stream(path: Path, **options) -> DataStream:
    return isolated_registry().build("dataset", "tfrecord", {"path": path, **options}, DataContext(None))


def test_what_cannot_be_read_is_refused_before_the_first_step(load, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty.*: no TFRecord files there"):
        load({"path": tmp_path / "empty"})
    shards = write_shards(tmp_path / "shards", shards=1)
    with pytest.raises(DataError, match="has no bytes feature 'picture' .option image_key.; its features: image, label"):
        load({"path": shards, "image_key": "picture"})
    with pytest.raises(ConfigError, match="label_key and num_classes go together"):
        load({"path": shards, "label_key": "label"})
    with pytest.raises(DataError, match="cannot read a record .*compression"):
        load({"path": shards, "compression": "gzip"})
    mixed = write_shards(tmp_path / "mixed", shards=1, r2=record(2, image=png(20, size=(6, 6))))
    with pytest.raises(tf.errors.InvalidArgumentError, match="another size than the first .4x4.: set the option size"):
        list(make_dataset(load({"path": mixed}), 4, seed=0).take(1))
    assert next(iter(make_dataset(load({"path": mixed, "size": 4}), 4, seed=0)))["image"].shape == (4, 4, 4, 1)
    with pytest.raises(tf.errors.InvalidArgumentError, match="class id .label. of num_classes = 2 or more"):
        list(make_dataset(load({"path": shards, "label_key": "label", "num_classes": 2}), 4, seed=0).take(1))
