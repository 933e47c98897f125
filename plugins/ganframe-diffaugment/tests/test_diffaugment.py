"""Tests of ganframe-diffaugment. Run them with `python -m pytest` after `pip install -e .`."""

import numpy as np
import pytest

import ganframe
from ganframe import DataSpec
from ganframe.testing import TINY_SPEC, check_augmentation

ENTRY_POINT = "diffaugment"
GRAY = DataSpec((28, 28, 1), (0.0, 1.0))
RGB = DataSpec((32, 32, 3), (-1.0, 1.0))


@pytest.fixture(scope="module")
def registry():
    return ganframe.load_plugins()


def build(registry, spec, **options):
    return registry.build("augmentation", "diffaugment", options, spec)


def seeded(seed=0):
    import keras

    return keras.random.SeedGenerator(seed)


def random_images(spec, n=6, seed=0):
    low, high = spec.value_range
    return (low + (high - low) * np.random.default_rng(seed).random((n, *spec.shape))).astype(np.float32)


@pytest.fixture
def ganframe_plugins():
    """What the conformance kit's `ganframe_registry` fixture loads: ganframe's built-ins plus this plugin."""
    return [ENTRY_POINT]


@pytest.mark.parametrize("spec", [TINY_SPEC, DataSpec((8, 8, 3), (-1.0, 1.0))], ids=["8x8x1", "8x8x3"])
def test_diffaugment_passes_the_conformance_kit(ganframe_registry, spec):
    check_augmentation("diffaugment", registry=ganframe_registry, spec=spec)


def test_the_plugin_loads_and_registers_diffaugment(registry):
    record = registry.record(ENTRY_POINT)
    assert record is not None, "entry point not found: is the package installed (pip install -e .)?"
    assert record.status == "loaded", record.error
    assert record.distribution == "ganframe-diffaugment"
    assert set(record.components) == {("augmentation", "diffaugment")}


@pytest.mark.parametrize("spec", [GRAY, RGB], ids=["28x28x1", "32x32x3"])
@pytest.mark.parametrize("policy", ["color", "translation", "cutout", "color,translation,cutout"])
def test_shape_and_dtype_are_kept_and_the_images_change(registry, spec, policy):
    augment = build(registry, spec, policy=policy)
    images = random_images(spec)
    out = np.asarray(augment(images, seeded()))
    assert out.shape == images.shape and out.dtype == np.float32
    assert np.isfinite(out).all()
    assert not np.allclose(out, images)


@pytest.mark.parametrize("policy", ["color", "translation", "cutout"])
def test_each_policy_passes_the_gradient_of_its_affine_map(registry, policy):
    import tensorflow as tf  # only the test uses TensorFlow directly, for the tape

    # For fixed random draws each policy is affine in the images (brightness adds, saturation and contrast
    # mix with a mean, translation and cutout move or zero pixels), so for L = sum(augment(x) * w) the
    # change L(x + v) - L(x) is exactly <dL/dx, v>: a gradient that is wrong anywhere shows here.
    augment = build(registry, RGB, policy=policy)
    rng = np.random.default_rng(1)
    images = tf.constant(random_images(RGB, n=4))
    weights = tf.constant(rng.normal(size=(4, 32, 32, 3)).astype(np.float32))
    direction = tf.constant(rng.normal(size=(4, 32, 32, 3)).astype(np.float32))

    def loss(x):
        return tf.reduce_sum(augment(x, seeded()) * weights)  # the same draws on every call

    with tf.GradientTape() as tape:
        tape.watch(images)
        value = loss(images)
    grads = tape.gradient(value, images)
    predicted = float(tf.reduce_sum(grads * direction))
    # float32 sums of 12288 terms of size ~1, totals ~100: measured |difference| <= 6.1e-5 over three draws
    # of each policy; a wrong gradient (the identity's, say) is off by 25 or more
    assert float(loss(images + direction) - value) == pytest.approx(predicted, abs=1e-3)
    assert abs(predicted) > 1.0


def test_translation_moves_a_bright_pixel_by_at_most_the_ratio(registry):
    augment = build(registry, GRAY, policy="translation")  # 0.125 * 28 -> at most 4 pixels
    images = np.zeros((64, 28, 28, 1), np.float32)
    images[:, 14, 10, 0] = 1.0
    out = np.asarray(augment(images, seeded(3)))
    shifts = set()
    for image in out[..., 0]:
        (ys, xs) = np.nonzero(image)
        assert len(ys) == 1 and image[ys[0], xs[0]] == pytest.approx(1.0)  # moved, not blurred or lost
        dy, dx = ys[0] - 14, xs[0] - 10
        assert abs(dy) <= 4 and abs(dx) <= 4
        shifts.add((dy, dx))
    assert len(shifts) > 10  # shifts differ per image


def test_translation_pads_with_zeros_and_keeps_content(registry):
    augment = build(registry, GRAY, policy="translation", translation_ratio=0.25)
    images = random_images(GRAY, n=16) + 0.5  # every pixel > 0: padding shows as zeros
    out = np.asarray(augment(images, seeded(1)))
    for original, shifted in zip(images[..., 0], out[..., 0]):
        zero_rows = int((shifted == 0).all(axis=1).sum())
        zero_cols = int((shifted == 0).all(axis=0).sum())
        assert zero_rows <= 7 and zero_cols <= 7
        inner = shifted[shifted != 0]
        assert inner.size == (28 - zero_rows) * (28 - zero_cols)
        assert np.isin(inner, original).all()  # values are moved, never mixed


def test_cutout_zeroes_about_ratio_squared_of_the_area(registry):
    augment = build(registry, GRAY, policy="cutout")  # a 14x14 square, possibly clipped at the border
    images = np.ones((256, 28, 28, 1), np.float32)
    out = np.asarray(augment(images, seeded(5)))
    erased = (out == 0).mean(axis=(1, 2, 3))
    assert set(np.unique(out)) <= {0.0, 1.0}
    assert (erased <= 0.25 + 1e-6).all() and (erased >= 7 * 7 / 784 - 1e-6).all()
    assert 0.15 < erased.mean() < 0.23  # ~0.19 expected with the reference code's clipping
    assert (erased == 0.25).mean() > 0.2  # a full square whenever it lies inside


def test_color_shifts_brightness_within_the_scaled_range(registry):
    augment = build(registry, GRAY, policy="color")
    images = np.full((128, 28, 28, 1), 0.5, np.float32)  # flat: contrast is a no-op, brightness shows
    out = np.asarray(augment(images, seeded(2)))
    shifts = out[:, 0, 0, 0] - 0.5
    assert np.allclose(out, out[:, :1, :1, :], atol=1e-6)
    assert np.abs(shifts).max() <= 0.25 + 1e-6  # ±0.5 on [-1, 1] is ±0.25 on [0, 1]
    assert shifts.min() < -0.15 and shifts.max() > 0.15


def test_saturation_keeps_gray_pixels_gray(registry):
    augment = build(registry, RGB, policy="color")
    images = np.repeat(random_images(DataSpec((32, 32, 1), (-1.0, 1.0))), 3, axis=-1)
    out = np.asarray(augment(images, seeded()))
    np.testing.assert_allclose(out[..., 0], out[..., 1], atol=1e-5)
    np.testing.assert_allclose(out[..., 0], out[..., 2], atol=1e-5)


def test_deterministic_for_a_seeded_generator(registry):
    augment = build(registry, RGB)
    images = random_images(RGB)
    first = np.asarray(augment(images, seeded(7)))
    np.testing.assert_array_equal(first, np.asarray(augment(images, seeded(7))))
    assert not np.allclose(first, np.asarray(augment(images, seeded(8))))


@pytest.mark.parametrize(
    "options, message",
    [
        ({"policy": "colour"}, "option 'policy'.*'colour'.*color, translation, cutout"),
        ({"policy": "color,,cutout"}, "option 'policy'"),
        ({"policy": "cutout,cutout"}, "option 'policy'.*more than once"),
        ({"translation_ratio": 0.9}, "option 'translation_ratio'"),
        ({"scale": 2}, "scale"),
    ],
)
def test_bad_options_are_refused_naming_the_option(registry, options, message):
    with pytest.raises(ganframe.ConfigError, match=message):
        build(registry, GRAY, **options)


def test_policy_spaces_are_accepted(registry):
    assert registry.options("augmentation", "diffaugment", {"policy": " cutout , color"}).policy == "cutout,color"


def tiny_run(tmp_path, **changes):
    config = {
        "arch": "dense",
        "arch_options": {"g_widths": [16], "d_widths": [16], "latent_dim": 8, "dropout": 0.0},
        "data": "digits",
        "data_options": {"limit": 256},
        "augmentations": {"diffaugment": {}},
        "callbacks": {"samples": {"every": 0}, "checkpoint": {"every": 0}, "metrics": {"every": 1}},
        "steps": 5,
        "batch_size": 16,
        "seed": 1,
        "jit_compile": False,
        "out": tmp_path / "run",
    }
    config.update(changes)
    return ganframe.train(config, progress=False)


def test_a_short_training_run_shows_the_augmentation_to_d(tmp_path):
    run = tiny_run(tmp_path / "augmented")
    assert run.step == 5
    again = tiny_run(tmp_path / "again")
    plain = tiny_run(tmp_path / "plain", augmentations={})
    d_loss = {name: np.asarray(r.history.history["d_loss"]) for name, r in (("augmented", run), ("again", again),
                                                                           ("plain", plain))}
    assert np.isfinite(d_loss["augmented"]).all() and np.isfinite(run.history.history["g_loss"]).all()
    np.testing.assert_array_equal(d_loss["augmented"], d_loss["again"])  # seeded: the same draws
    assert not np.allclose(d_loss["augmented"], d_loss["plain"])  # D saw augmented images, from step 1 on
    images = run.generate(4, seed=0)
    assert images.shape == (4, 8, 8, 1) and np.isfinite(images).all()


def test_a_short_training_run_compiled_with_xla(tmp_path):
    policy = {"diffaugment": {"policy": "translation,cutout,color"}}
    run = tiny_run(tmp_path / "augmented", steps=2, jit_compile=True, augmentations=policy)
    plain = tiny_run(tmp_path / "plain", steps=2, jit_compile=True, augmentations={})
    assert run.step == 2
    assert np.isfinite(run.history.history["d_loss"]).all()
    assert not np.allclose(run.history.history["d_loss"], plain.history.history["d_loss"])
