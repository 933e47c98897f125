"""Paired data for image-to-image GANs: conditions derived from each image (``[pairs]``), and folders
that hold the pairs (side by side in one file, or a second folder of the same names).

Each derivation is checked against a hand computation on a tiny array; a few steps of an
image-conditioned G on the 8x8 digits show that training, sample grids, resume and a loaded run see
the derived pairs; the folder layouts are read back pixel for pixel.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import ganframe
from ganframe import ConfigError, DataContext, DataError, DataSource, DataSpec, ImageData, Networks, NoOptions
from ganframe.config import PairsConfig
from ganframe.pairs import derivation, derive_pairs
from ganframe.pipeline import make_dataset, take
from ganframe.testing import check_dataset, isolated_registry
from tinyrun import tiny_config


def derived(images: np.ndarray, value_range: tuple[float, float] = (0.0, 1.0), **pairs: Any) -> np.ndarray:
    """The conditions ``[pairs]`` derives from float ``images`` (N, H, W, C)."""
    derive, shape = derivation(PairsConfig(**pairs), DataSpec(images.shape[1:], value_range))
    conditions = derive(tf.constant(images, tf.float32)).numpy()
    assert conditions.shape == (len(images), *shape) and conditions.dtype == np.float32
    return conditions


# -- the derivations, by hand ----------------------------------------------------------------------------


def test_downscale_averages_blocks_and_brings_them_back_bilinearly():
    image = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1) / 15
    small = np.array([[0 + 1 + 4 + 5, 2 + 3 + 6 + 7], [8 + 9 + 12 + 13, 10 + 11 + 14 + 15]]) / 4 / 15
    np.testing.assert_allclose(derived(image, derive="downscale", factor=2, back_to_size=False)[0, ..., 0], small,
                               rtol=1e-6)
    # bilinear 2 -> 4 with pixel centres aligned: the outer pixels copy, the inner ones weigh 3:1
    up = np.array([[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]])
    np.testing.assert_allclose(derived(image, derive="downscale", factor=2)[0, ..., 0], up @ small @ up.T, rtol=1e-6)
    assert derived(np.zeros((2, 8, 8, 3)), derive="downscale").shape == (2, 8, 8, 3)  # factor 4 by default


def test_mask_fills_a_centred_square_with_the_middle_of_the_range():
    images = np.full((2, 6, 6, 3), -1.0, np.float32)
    expected = images.copy()
    expected[:, 2:4, 2:4] = 0.0
    np.testing.assert_array_equal(derived(images, (-1.0, 1.0), derive="mask", hole=2), expected)
    expected = images.copy()
    expected[:, 1:4, 1:4] = 0.0  # by default half the side: 3, its odd margin below and right
    np.testing.assert_array_equal(derived(images, (-1.0, 1.0), derive="mask"), expected)


def sobel_magnitude(gray: np.ndarray) -> np.ndarray:
    """|Sobel gradient| of one (H, W) image, its border mirrored (``np.pad`` mode reflect), by hand."""
    padded = np.pad(gray, 1, mode="reflect")
    window = lambda i, j: padded[i:i + gray.shape[0], j:j + gray.shape[1]]  # noqa: E731
    dy = window(2, 0) + 2 * window(2, 1) + window(2, 2) - window(0, 0) - 2 * window(0, 1) - window(0, 2)
    dx = window(0, 2) + 2 * window(1, 2) + window(2, 2) - window(0, 0) - 2 * window(1, 0) - window(2, 0)
    return np.hypot(dx, dy)


def test_edges_are_the_sobel_magnitude_of_the_gray_image_scaled_into_the_range():
    rng = np.random.default_rng(0)
    rgb = rng.uniform(0, 1, (1, 5, 6, 3)).astype(np.float32)
    gray = rgb[0] @ np.array([0.2989, 0.5870, 0.1140], np.float32)
    magnitude = sobel_magnitude(gray)
    np.testing.assert_allclose(derived(rgb, derive="edges")[0, ..., 0], magnitude / magnitude.max(), atol=1e-5)
    # in [-1, 1]: the strongest edge at 1, the rest below; a flat image has none (all at the low end)
    images = np.stack([rgb[0, ..., :1] * 2 - 1, np.full((5, 6, 1), 0.3, np.float32)])
    conditions = derived(images, (-1.0, 1.0), derive="edges")
    magnitude = sobel_magnitude(images[0, ..., 0])
    np.testing.assert_allclose(conditions[0, ..., 0], magnitude / magnitude.max() * 2 - 1, atol=1e-5)
    np.testing.assert_array_equal(conditions[1], -1.0)


def test_grayscale_is_the_luma_of_rgb():
    rgb = np.array([[[[1, 0, 0], [0, 1, 0]], [[0, 0, 1], [0.5, 0.5, 0.5]]]], np.float32)
    np.testing.assert_allclose(derived(rgb, derive="grayscale")[0, ..., 0],
                               [[0.2989, 0.5870], [0.1140, 0.49995]], rtol=1e-5)


# -- refusals ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pairs, shape, message", [
    ({"derive": "downscale", "factor": 3}, (8, 8, 1), r"'pairs.factor': got 3; .*\(8x8 .*choose 2, 4 or 8"),
    ({"derive": "downscale", "factor": 2}, (8, 7, 1), r"'pairs.factor': got 2; .*no factor does"),
    ({"derive": "mask", "hole": 9}, (8, 8, 1), r"'pairs.hole': got 9; the hole must fit .*at most 8"),
    ({"derive": "grayscale"}, (8, 8, 1), r"'pairs.derive': got 'grayscale'; .*RGB .*has 1 channel"),
    ({"derive": "edges"}, (8, 8, 4), r"'pairs.derive': got 'edges'; .*1 or 3 channels"),
])
def test_what_the_images_do_not_allow_is_refused_naming_the_field(pairs, shape, message):
    with pytest.raises(ConfigError, match=message):
        derivation(PairsConfig(**pairs), DataSpec(shape))


def test_options_of_another_derivation_and_paired_data_are_refused():
    with pytest.raises(ConfigError, match=r"'pairs.hole': got 3; hole applies to derive = 'mask' only, .* 'edges'"):
        ganframe.resolve_config(None, {"pairs.derive": "edges", "pairs.hole": 3})
    with pytest.raises(ConfigError, match=r"'pairs.derive': required"):
        ganframe.resolve_config(None, {"pairs.factor": 2})
    paired = ImageData(np.zeros((2, 4, 4, 1), np.float32), None, DataSpec((4, 4, 1), condition_shape=(3,)), "mine",
                       np.zeros((2, 3), np.float32))
    with pytest.raises(ConfigError, match=r"data set 'mine' already pairs each image .*\(of shape \(3,\)\); remove"):
        derive_pairs(paired, PairsConfig(derive="mask"))


# -- in memory and streaming: the same conditions ------------------------------------------------------


def write_png(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.squeeze(-1) if pixels.shape[-1] == 1 else pixels).save(path)


def test_a_source_and_data_in_memory_get_the_same_conditions(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 256, (5, 8, 8, 3), np.uint8)
    for index, image in enumerate(pixels):
        write_png(tmp_path / f"{index}.png", image)
    source = isolated_registry().build("dataset", "folder", {"path": tmp_path, "value_range": [-1, 1]}, DataContext(None))
    pairs = PairsConfig(derive="edges")
    streamed = derive_pairs(source, pairs)
    assert isinstance(streamed, DataSource) and streamed.spec.condition_shape == (8, 8, 1) and len(streamed) == 5
    read = take(streamed, np.arange(5))
    in_memory = derive_pairs(take(source, np.arange(5)), pairs)
    np.testing.assert_array_equal(read.images, in_memory.images)
    np.testing.assert_allclose(read.conditions, in_memory.conditions, atol=1e-6)
    batch = next(iter(make_dataset(streamed, 2, seed=0)))
    assert batch["image"].shape == (2, 8, 8, 3) and batch["condition"].shape == (2, 8, 8, 1)


# -- a short run on derived pairs --------------------------------------------------------------------------


def build_from_condition(spec: DataSpec, options: NoOptions) -> Networks:
    """G: the condition (any shape) -> an image, no noise; D: an image beside its condition -> one logit."""
    condition = keras.Input(spec.condition_shape)
    x = keras.layers.Dense(16, activation="relu")(keras.layers.Flatten()(condition))
    image = keras.layers.Reshape(spec.shape)(keras.layers.Dense(spec.size, activation="sigmoid")(x))
    real, seen = keras.Input(spec.shape), keras.Input(spec.condition_shape)
    y = keras.layers.Concatenate()([keras.layers.Flatten()(real), keras.layers.Flatten()(seen)])
    logit = keras.layers.Dense(1)(keras.layers.LeakyReLU(0.2)(keras.layers.Dense(16)(y)))
    return Networks(keras.Model(condition, image), keras.Model([real, seen], logit), latent_dim=0,
                    output_range=(0.0, 1.0), takes_condition=True)


class FromCondition:
    @staticmethod
    @ganframe.hookimpl
    def ganframe_register_architectures(register: Any) -> None:
        register("from_condition", build_from_condition, "A condition in, an image out.")


def test_a_run_trains_samples_resumes_and_loads_on_derived_pairs(tmp_path):
    registry = ganframe.load_plugins(extra=[("from-condition", FromCondition)])
    config = tiny_config(tmp_path, arch="from_condition", arch_options={}, steps=2, batch_size=16,
                         pairs={"derive": "downscale", "factor": 2, "back_to_size": False},
                         penalties={"reconstruction": {}}, health={"every": 0},
                         callbacks={"samples": {"every": 2, "n": 4}, "checkpoint": {"every": 2}, "metrics": {"every": 1}})
    run = ganframe.train(config, registry=registry, progress=False)
    assert run.spec.condition_shape == (4, 4, 1) and run.gan.sampler.conditions.shape[1:] == (4, 4, 1)
    assert (run.path / "samples" / "step_0000002.png").is_file()
    assert json.loads((run.path / "run.json").read_text())["spec"]["condition_shape"] == [4, 4, 1]
    assert 'derive = "downscale"' in (run.path / "config.toml").read_text()
    resumed = ganframe.train({"steps": 4}, resume=run.path, registry=registry, progress=False)
    assert resumed.step == 4 and resumed.spec == run.spec
    loaded = ganframe.load_run(run.path, registry=registry)
    conditions = np.full((3, 4, 4, 1), 0.5, np.float32)
    assert loaded.generate(3, conditions=conditions).shape == (3, 8, 8, 1)
    with pytest.raises(ConfigError, match=r"changing pairs.factor"):
        ganframe.train({"steps": 6, "pairs.factor": 4}, resume=run.path, registry=registry, progress=False)


# -- folders of pairs ---------------------------------------------------------------------------------------


@pytest.fixture
def load():
    """load(options) -> the folder source and all its examples in memory."""
    registry = isolated_registry()

    def load(options: dict) -> tuple[DataSource, ImageData]:
        source = registry.build("dataset", "folder", options, DataContext(None))
        return source, take(source, np.arange(len(source)))

    return load


@pytest.mark.parametrize("side", ["left", "right"])
def test_side_by_side_files_split_into_condition_and_image(load, tmp_path, side):
    files = np.random.default_rng(2).integers(0, 256, (3, 4, 10, 3), np.uint8)  # 4 high, two halves 5 wide
    for index, pixels in enumerate(files):
        write_png(tmp_path / "ab" / f"{index}.png", pixels)
    source, data = load({"path": tmp_path / "ab", "side_by_side": side, "value_range": [-1, 1]})
    assert source.spec.shape == (4, 5, 3) and source.spec.condition_shape == (4, 5, 3)
    left, right = files[..., :5, :] / 127.5 - 1, files[..., 5:, :] / 127.5 - 1
    condition, image = (left, right) if side == "left" else (right, left)
    np.testing.assert_allclose(data.images, image, atol=1e-6)
    np.testing.assert_allclose(data.conditions, condition, atol=1e-6)
    flat = np.concatenate([np.full((4, 6, 1), 40, np.uint8), np.full((4, 6, 1), 200, np.uint8)], axis=1)
    write_png(tmp_path / "flat" / "a.png", flat)
    source, data = load({"path": tmp_path / "flat", "side_by_side": side, "size": 3})
    assert source.spec.shape == source.spec.condition_shape == (3, 3, 1)  # each half resized
    np.testing.assert_allclose(data.conditions[0], (40 if side == "left" else 200) / 255, atol=1e-6)
    np.testing.assert_allclose(data.images[0], (200 if side == "left" else 40) / 255, atol=1e-6)


def test_a_folder_of_conditions_pairs_files_by_relative_path(load, tmp_path):
    rng = np.random.default_rng(3)
    names = ["cat/a.png", "dog/b.png", "dog/c.png"]
    images, conditions = rng.integers(0, 256, (3, 8, 8, 3), np.uint8), rng.integers(0, 256, (3, 4, 4, 1), np.uint8)
    for name, image, condition in zip(names, images, conditions):
        write_png(tmp_path / "photos" / name, image)
        write_png(tmp_path / "inputs" / name, condition)
    source, data = load({"path": tmp_path / "photos", "conditions": tmp_path / "inputs", "labels": True})
    assert source.spec.shape == (8, 8, 3) and source.spec.condition_shape == (4, 4, 1)  # their own size and channels
    np.testing.assert_allclose(data.images, images / 255, atol=1e-6)
    np.testing.assert_allclose(data.conditions, conditions / 255, atol=1e-6)
    assert list(data.labels) == [0, 1, 1]  # the images' own class folders
    _, data = load({"path": tmp_path / "photos", "conditions": tmp_path / "inputs", "size": 2, "limit": 2})
    assert data.images.shape == (2, 2, 2, 3) and data.conditions.shape == (2, 2, 2, 1)


def test_an_unreadable_condition_leaves_out_its_pair_when_skipping(load, tmp_path, capsys):
    for index, name in enumerate(("cat/a.png", "cat/b.png", "dog/c.png")):
        write_png(tmp_path / "photos" / name, np.full((4, 4, 1), 100 * index, np.uint8))
        write_png(tmp_path / "inputs" / name, np.full((4, 4, 1), 100 * index + 5, np.uint8))
    (tmp_path / "inputs" / "cat" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n not the rest of a PNG")
    options = {"path": tmp_path / "photos", "conditions": tmp_path / "inputs", "labels": True}
    with pytest.raises(DataError, match=r"inputs/cat/b.png: cannot read this image"):
        load(options)
    source, data = load({**options, "unreadable": "skip"})
    assert len(source) == 2 and list(data.labels) == [0, 1]
    np.testing.assert_allclose(data.conditions[:, 0, 0, 0] * 255, [5, 205], atol=1e-3)
    assert "skipped 1 pair(s) with an unreadable image or condition of 3" in capsys.readouterr().err


def test_the_conformance_kit_accepts_both_folder_layouts(tmp_path):
    for index in range(3):
        write_png(tmp_path / "ab" / f"{index}.png", np.full((4, 8, 1), 50 * index, np.uint8))
        write_png(tmp_path / "inputs" / "ab" / f"{index}.png", np.full((2, 2, 3), 50 * index, np.uint8))
    side_by_side = check_dataset("folder", {"path": tmp_path / "ab", "side_by_side": "left"}, registry=isolated_registry())
    assert side_by_side.spec.condition_shape == (4, 4, 1)
    folders = check_dataset("folder", {"path": tmp_path / "ab", "conditions": tmp_path / "inputs" / "ab"},
                            registry=isolated_registry())
    assert folders.spec.condition_shape == (2, 2, 3)


def test_folders_that_do_not_pair_are_refused_naming_the_files(load, tmp_path):
    for name in ("a.png", "b.png", "c.png", "d.png", "e.png"):
        write_png(tmp_path / "photos" / name, np.zeros((4, 4, 1), np.uint8))
    for name in ("a.png", "b.jpg", "z.png"):
        write_png(tmp_path / "inputs" / name, np.zeros((4, 4, 1), np.uint8))
    with pytest.raises(DataError, match=r"do not match: 4 image\(s\) have no condition \(b.png, c.png, d.png, \.\.\.\); "
                                        r"2 condition file\(s\) have no image \(b.jpg, z.png\)"):
        load({"path": tmp_path / "photos", "conditions": tmp_path / "inputs"})
    with pytest.raises(DataError, match=r"condition folder .*nowhere does not exist"):
        load({"path": tmp_path / "photos", "conditions": tmp_path / "nowhere"})
    with pytest.raises(ConfigError, match=r"'conditions': .*two ways to pair the images: give one"):
        load({"path": tmp_path / "photos", "conditions": tmp_path / "inputs", "side_by_side": "left"})
    write_png(tmp_path / "odd" / "a.png", np.zeros((4, 7, 1), np.uint8))
    with pytest.raises(DataError, match=r"a.png is 7 pixels wide, but side_by_side = \"right\" cuts each file"):
        load({"path": tmp_path / "odd", "side_by_side": "right"})
