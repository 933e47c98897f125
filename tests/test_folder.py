"""The ``folder`` dataset: a directory of images checked when loaded and read while training.

Loading reads headers only and refuses what it can name (a file that is no image, mixed sizes,
an unlabelled file); the pixels are decoded by the input pipeline, so the images are checked
here as the pipeline hands them over (:func:`ganframe.pipeline.take`, and training batches).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ganframe
from tinyrun import TINY

from ganframe import DataContext, DataError, DataSource
from ganframe.testing import isolated_registry
from ganframe.pipeline import make_dataset, take


@pytest.fixture
def load():
    """load(options) -> the folder source and all its examples in memory."""
    registry = isolated_registry()

    def load(options: dict) -> tuple[DataSource, np.ndarray, np.ndarray | None]:
        source = registry.build("dataset", "folder", options, DataContext(None))
        assert isinstance(source, DataSource)
        data = take(source, np.arange(len(source)))
        assert data.images.dtype == np.float32 and data.images.shape[1:] == source.spec.shape
        return source, data.images, data.labels

    return load


def write_image(path: Path, size: tuple[int, int] = (6, 5), value: int = 128, mode: str = "L",
                format: str | None = None) -> None:
    """A flat image of (width, height) ``size``; colour modes get (value, 0, 255[, 255])."""
    path.parent.mkdir(parents=True, exist_ok=True)
    colour = value if mode == "L" else (value, 0, 255, 255)[:len(mode)]
    Image.new(mode, size, colour).save(path, format=format)


def jpeg_bytes(size: int = 16) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (size, size, 3), np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


def test_grayscale_pngs_in_sorted_order_hidden_files_skipped(load, tmp_path):
    for index in range(3):
        write_image(tmp_path / "imgs" / f"{index}.png", value=index * 100)
    write_image(tmp_path / "imgs" / "deeper" / "3.PNG", value=255)
    write_image(tmp_path / "imgs" / ".hidden.png", value=7)
    write_image(tmp_path / "imgs" / ".cache" / "thumb.png", value=7)
    (tmp_path / "imgs" / "notes.txt").write_text("not an image")
    source, images, labels = load({"path": tmp_path / "imgs"})
    assert source.spec.shape == (5, 6, 1) and labels is None and source.name == "folder"
    # sorted paths: 0.png, 1.png, 2.png, deeper/3.PNG
    np.testing.assert_allclose(images[:, 0, 0, 0], [0, 100 / 255, 200 / 255, 1.0], atol=1e-6)


@pytest.mark.parametrize("mode, channels, first_pixel", [
    ("L", 1, [128]), ("RGB", 3, [128, 0, 255]), ("RGBA", 3, [128, 0, 255]), ("P", 3, None),
])
def test_channels_default_to_what_the_images_are(load, tmp_path, mode, channels, first_pixel):
    if mode == "P":
        Image.new("RGB", (4, 4), (10, 200, 30)).convert("P").save(tmp_path / "a.png")
        first_pixel = np.asarray(Image.open(tmp_path / "a.png").convert("RGB"))[0, 0]  # the palette's nearest colour
    else:
        write_image(tmp_path / "a.png", mode=mode)
    source, images, _ = load({"path": tmp_path})
    assert source.spec.channels == channels
    np.testing.assert_allclose(images[0, 0, 0] * 255, first_pixel, atol=1e-3)
    gray = load({"path": tmp_path, "channels": 1})[0]
    assert gray.spec.channels == 1


def test_labels_rgb_resize_and_limit(load, tmp_path):
    for name, count in [("zebra", 2), ("cat", 3)]:
        for index in range(count):
            write_image(tmp_path / name / f"{index}.png", size=(10 + index, 7), mode="RGB")
    (tmp_path / "cat" / "sub").mkdir()
    Image.new("RGB", (9, 9)).save(tmp_path / "cat" / "sub" / "x.jpg")
    source, images, labels = load({"path": tmp_path, "labels": True, "size": [8, 4], "value_range": [-1, 1]})
    assert images.shape == (6, 8, 4, 3) and source.spec.num_classes == 2 and source.spec.value_range == (-1, 1)
    assert list(labels) == [0, 0, 0, 0, 1, 1]  # cat (incl. cat/sub) = 0, zebra = 1
    np.testing.assert_allclose(images[0, 3, 2], [128 / 127.5 - 1, -1, 1], atol=0.01)  # a flat image stays flat
    square = load({"path": tmp_path, "labels": True, "size": 16, "limit": 2, "channels": 1})[1]
    assert square.shape == (2, 16, 16, 1)


def test_an_unreadable_file_is_named_or_skipped_with_the_labels_aligned(load, tmp_path, capsys):
    write_image(tmp_path / "cat" / "a.png", value=0)
    (tmp_path / "cat" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n this is no png")
    write_image(tmp_path / "zebra" / "c.png", value=255)
    with pytest.raises(DataError, match="cannot read this image") as error:
        load({"path": tmp_path})
    assert str(tmp_path / "cat" / "b.png") in str(error.value) and 'unreadable = "skip"' in str(error.value)
    _, images, labels = load({"path": tmp_path, "labels": True, "unreadable": "skip"})
    assert list(labels) == [0, 1] and list(images[:, 0, 0, 0]) == [0.0, 1.0]
    assert (f"skipped 1 unreadable image file(s) of 3 (unreadable = \"skip\"), the first: {tmp_path / 'cat' / 'b.png'}"
            in capsys.readouterr().err)
    for path in (tmp_path / "cat" / "a.png", tmp_path / "zebra" / "c.png"):
        path.write_bytes(b"no png either")
    with pytest.raises(DataError, match="none of the 3 image files can be read"):
        load({"path": tmp_path, "unreadable": "skip"})


def test_a_format_tensorflow_cannot_decode_is_named(load, tmp_path):
    write_image(tmp_path / "a.png")
    write_image(tmp_path / "b.jpg", format="TIFF")  # a TIFF under a JPEG name
    with pytest.raises(DataError, match="TIFF image, which TensorFlow cannot decode") as error:
        load({"path": tmp_path})
    assert str(tmp_path / "b.jpg") in str(error.value)


def test_a_jpeg_cut_short_is_dropped_while_training_when_skipping(load, tmp_path):
    """The header reads, the pixels do not (an interrupted download): found only by decoding, so the pipeline drops it (skip)
    and the batches close up; with refuse, reading it fails."""
    for index in range(5):
        (tmp_path / f"{index}.jpg").write_bytes(jpeg_bytes())
    broken = jpeg_bytes()
    (tmp_path / "2.jpg").write_bytes(broken[:broken.index(b"\xff\xda") + 30])  # cut short in its pixel data
    source, images, _ = load({"path": tmp_path, "unreadable": "skip"})
    assert len(source) == 5 and len(images) == 4
    batches = list(make_dataset(source, 2, seed=0).take(6))
    assert all(batch["image"].shape == (2, 16, 16, 3) for batch in batches)
    refusing = isolated_registry().build("dataset", "folder", {"path": tmp_path}, DataContext(None))
    with pytest.raises(Exception, match="(?i)jpeg|invalid"):
        take(refusing, np.arange(5))


def test_mixed_sizes_need_size(load, tmp_path):
    write_image(tmp_path / "a.png", size=(6, 5))
    write_image(tmp_path / "b.png", size=(8, 8))
    with pytest.raises(DataError, match="set the option `size`") as error:
        load({"path": tmp_path})
    assert str(tmp_path / "b.png") in str(error.value) and "8x8" in str(error.value)
    assert load({"path": tmp_path, "size": 4})[1].shape == (2, 4, 4, 1)


def test_empty_missing_and_unlabelled_root(load, tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(DataError, match="no PNG or JPEG images") as error:
        load({"path": tmp_path / "empty"})
    assert str(tmp_path / "empty") in str(error.value)
    with pytest.raises(DataError, match="does not exist"):
        load({"path": tmp_path / "missing"})
    write_image(tmp_path / "root" / "cls" / "a.png")
    write_image(tmp_path / "root" / "loose.png")
    with pytest.raises(DataError, match="lies directly in") as error:
        load({"path": tmp_path / "root", "labels": True})
    assert str(tmp_path / "root" / "loose.png") in str(error.value)


def test_training_batches_come_from_disk_as_uint8_made_floats_in_range(load, tmp_path):
    """Each image's pixels are its index: a batch says which files it holds; every file once per epoch."""
    for index in range(8):
        write_image(tmp_path / f"{index:02d}.png", size=(4, 4), value=index * 30)
    source = load({"path": tmp_path, "value_range": [-1, 1]})[0]
    epoch = np.concatenate([batch["image"].numpy()[:, 0, 0, 0] for batch in make_dataset(source, 4, seed=3).take(2)])
    assert sorted(np.round((epoch + 1) * 127.5 / 30).astype(int)) == list(range(8))



def test_a_run_meeting_a_file_cut_short_names_it_or_skips_it(tmp_path):
    """Found only when training decodes it: the run stops with the file's name (exit 2 from the CLI)
    instead of TensorFlow's message, or, skipping, trains on without it."""
    for index in range(40):
        Image.fromarray(np.full((8, 8), index * 6, np.uint8)).save(tmp_path / f"{index:02d}.jpg")
    whole = (tmp_path / "17.jpg").read_bytes()
    (tmp_path / "17.jpg").write_bytes(whole[:whole.index(b"\xff\xda") + 12])
    config = {"arch": "dense", "arch_options": TINY, "data": "folder", "data_options": {"path": str(tmp_path)},
              "batch_size": 8, "steps": 10, "seed": 1, "health": {"every": 0}}
    with pytest.raises(DataError, match="cannot read .*17.jpg at step [0-9]") as error:
        ganframe.train({**config, "out": str(tmp_path / "refused")})
    assert 'unreadable = "skip"' in str(error.value) and "{{" not in str(error.value)
    run = ganframe.train({**config, "data_options": {**config["data_options"], "unreadable": "skip"},
                          "out": str(tmp_path / "skipped")})
    assert run.step == 10


def test_a_resumed_run_on_a_folder_equals_an_uninterrupted_one(tmp_path):
    """4 + 4 steps = 8 steps, bit for bit, with the examples read from disk in the (seed, epoch) order."""
    from tinyrun import assert_same_state, tiny_config, training_state

    rng = np.random.default_rng(0)
    for index in range(48):
        Image.fromarray(rng.integers(0, 255, (8, 8), np.uint8)).save(tmp_path / f"{index:02d}.png")
    config = {"data": "folder", "data_options": {"path": str(tmp_path)}, "batch_size": 16, "steps": 8}
    whole = ganframe.train(tiny_config(tmp_path / "whole", **config), progress=False)
    ganframe.train(tiny_config(tmp_path / "split", **{**config, "steps": 4}), progress=False)
    resumed = ganframe.train({"steps": 8}, resume=tmp_path / "split" / "run", progress=False)
    assert resumed.step == whole.step == 8
    assert_same_state(training_state(resumed.gan), training_state(whole.gan))


@pytest.mark.parametrize("save", [
    {"format": "JPEG"}, {"format": "JPEG", "progressive": True}, {"format": "JPEG", "exif": b"Exif\x00\x00" + b"\x00" * 5000},
    {"format": "PNG"}, {"format": "BMP"}, {"format": "GIF"},
], ids=["jpeg", "progressive", "exif", "png", "bmp", "gif"])
def test_headers_read_without_pillow_agree_with_pillow(load, tmp_path, save):
    """Loading reads PNG and JPEG headers itself (fast); sizes and channels must be what the pixels are."""
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (7, 13, 3), np.uint8)).save(tmp_path / "a.img", **save)
    (tmp_path / "a.img").rename(tmp_path / f"a.{save['format'].lower()}")
    source, images, _ = load({"path": tmp_path})
    assert source.spec.shape == (7, 13, 3) and images.shape == (1, 7, 13, 3)


def _batch_values(batches) -> list[list[float]]:
    return [batch["image"].numpy()[:, 0, 0, 0].tolist() for batch in batches]


@pytest.mark.parametrize("cache", ["memory", "directory"])
def test_a_cache_decodes_each_image_once_and_changes_no_batch(load, tmp_path, cache):
    """The cache is filled when the folder is loaded: with the files deleted after the first epoch, the later
    epochs are still read, and every batch is the uncached one."""
    for index in range(12):
        write_image(tmp_path / "imgs" / f"{index:02d}.png", size=(4, 4), value=index * 20)
    uncached = load({"path": tmp_path / "imgs"})[0]
    expected = _batch_values(make_dataset(uncached, 4, seed=3).take(9))  # 3 epochs
    option = "memory" if cache == "memory" else str(tmp_path / "cache")
    source = load({"path": tmp_path / "imgs", "cache": option})[0]
    batches = iter(make_dataset(source, 4, seed=3))
    first_epoch = [next(batches) for _ in range(3)]
    for path in (tmp_path / "imgs").iterdir():
        path.unlink()
    assert _batch_values([*first_epoch, *(next(batches) for _ in range(6))]) == expected
    if cache == "directory":
        assert sorted(path.name.split(".", 1)[1] for path in (tmp_path / "cache").iterdir()) == ["image.npy", "readable.npy"]


def test_a_cache_directory_serves_a_later_run_until_a_file_changes(load, tmp_path):
    """A second load of the same files reads the pixels the first decoded (the files' pixels are garbage by
    then, their sizes and times kept); a file touched since is decoded again, and its garbage refused."""
    for index in range(6):
        write_image(tmp_path / "imgs" / f"{index}.png", size=(4, 4), value=index * 40)
    options = {"path": tmp_path / "imgs", "cache": str(tmp_path / "cache")}
    _, decoded, _ = load(options)
    for path in (tmp_path / "imgs").iterdir():
        stat, whole = path.stat(), path.read_bytes()
        path.write_bytes(whole[:33] + b"\x00" * (len(whole) - 33))  # the header stays, the pixels go
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    _, cached, _ = load(options)
    np.testing.assert_array_equal(cached, decoded)
    with pytest.raises(DataError, match="cannot read"):
        load({"path": tmp_path / "imgs"})
    (tmp_path / "imgs" / "3.png").touch()  # another set of files: decoded anew, and refused at the first
    with pytest.raises(DataError, match=r"cannot read .*imgs/0\.png"):
        load(options)


def test_a_cache_keeps_unreadable_files_out_as_without_one(load, tmp_path):
    for index in range(5):
        (tmp_path / f"{index}.jpg").write_bytes(jpeg_bytes())
    broken = jpeg_bytes()
    (tmp_path / "2.jpg").write_bytes(broken[:broken.index(b"\xff\xda") + 30])
    skipping = {"path": tmp_path, "unreadable": "skip"}
    expected = _batch_values(make_dataset(load(skipping)[0], 2, seed=0).take(6))
    assert _batch_values(make_dataset(load({**skipping, "cache": "memory"})[0], 2, seed=0).take(6)) == expected
    with pytest.raises(DataError, match=r"cannot read .*2\.jpg"):
        load({"path": tmp_path, "cache": "memory"})
    (tmp_path / "taken").write_text("a file")
    with pytest.raises(DataError, match="the cache .*taken is a file"):
        load({"path": tmp_path, "cache": str(tmp_path / "taken"), "unreadable": "skip"})
