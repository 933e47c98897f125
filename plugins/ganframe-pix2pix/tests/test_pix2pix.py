"""Tests of ganframe-pix2pix. Run them with `python -m pytest` after `pip install -e .`."""

import ast
import csv
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ganframe
import ganframe_pix2pix
from ganframe import DataSpec, Update
from ganframe.testing import TINY_SPEC, check_architecture, check_loss, check_metric

ENTRY_POINT = "pix2pix"
MNIST = DataSpec((28, 28, 1), condition_shape=(28, 28, 1))
COLOUR = DataSpec((32, 32, 3), (-1.0, 1.0), condition_shape=(32, 32, 1))  # grayscale -> RGB
SHRUNK = DataSpec((28, 28, 1), condition_shape=(7, 7, 1))  # downscale x4 without back_to_size
DIGITS = DataSpec((8, 8, 1), condition_shape=(8, 8, 1))
SMALL = {"base_channels": 4}


@pytest.fixture(scope="module")
def registry():
    return ganframe.load_plugins()


@pytest.fixture
def ganframe_plugins():
    """What the conformance kit's `ganframe_registry` fixture loads: ganframe's built-ins plus this plugin."""
    return [ENTRY_POINT]


def unet(registry, spec, **options):
    return registry.build("architecture", "unet", {**SMALL, **options}, spec)


def metric(registry, name, spec=MNIST, **options):
    return registry.build("metric", name, options, spec)


def rng_images(shape, seed=0, low=0.0, high=1.0):
    return (low + (high - low) * np.random.default_rng(seed).random(shape)).astype(np.float32)


# -- the plugin ---------------------------------------------------------------------------------


def test_the_plugin_loads_and_registers_its_components(registry):
    record = registry.record(ENTRY_POINT)
    assert record is not None, "entry point not found: is the package installed (pip install -e .)?"
    assert record.status == "loaded", record.error
    assert record.distribution == "ganframe-pix2pix"
    assert set(record.components) == {
        ("architecture", "unet"), ("loss", "l1_only"), ("loss", "patchgan"),
        ("metric", "l1"), ("metric", "psnr"), ("metric", "ssim"),
    }


def test_ganframe_plugins_lists_it():
    """What a user sees: ``ganframe plugins`` names the distribution and each component."""
    done = subprocess.run([sys.executable, "-m", "ganframe", "plugins"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "ganframe-pix2pix 0.1.0" in done.stdout
    for kind, name in (("architecture", "unet"), ("loss", "patchgan"), ("loss", "l1_only"), ("metric", "psnr")):
        assert any(line.split()[:2] == [kind, name] for line in done.stdout.splitlines()), f"{kind} {name}"


def test_registering_the_plugin_imports_no_tensorflow():
    code = "import sys, ganframe_pix2pix.plugin; print(sorted({'keras', 'tensorflow'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_package_imports_only_ganframes_public_api():
    """No ganframe submodule, and from ganframe only the names its ``__all__`` lists, by import or attribute."""
    used = []
    for path in sorted(Path(ganframe_pix2pix.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                used += [(path.name, alias.name) for alias in node.names if alias.name.startswith("ganframe.")]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "ganframe":
                used += [(path.name, f"{node.module}.{alias.name}") for alias in node.names]
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "ganframe":
                used.append((path.name, f"ganframe.{node.attr}"))
    public = {f"ganframe.{name}" for name in ganframe.__all__}
    assert used, "the scan found no use of ganframe at all: is it reading the package?"
    assert [(module, name) for module, name in used if name not in public] == []


# -- the conformance kit ------------------------------------------------------------------------


@pytest.mark.parametrize("spec, options", [
    (MNIST, {}),
    (COLOUR, {"norm": "instance"}),
    (SHRUNK, {"norm": "none", "depth": 3}),  # 28 padded to 32 inside G for three halvings
], ids=["28x28x1", "32x32x3-from-gray", "28x28-from-7x7"])
def test_unet_passes_the_conformance_kit(ganframe_registry, spec, options):
    networks = check_architecture("unet", {**SMALL, **options}, registry=ganframe_registry, spec=spec)
    assert networks.takes_condition and networks.latent_dim == 0
    assert networks.output_range == spec.value_range


def test_patchgan_passes_the_conformance_kit(ganframe_registry):
    check_loss("patchgan", registry=ganframe_registry)


@pytest.mark.parametrize("name", ["l1", "psnr", "ssim"])
@pytest.mark.parametrize("spec", [MNIST, TINY_SPEC], ids=["28x28", "8x8"])
def test_metrics_pass_the_conformance_kit(ganframe_registry, name, spec):
    check_metric(name, registry=ganframe_registry, spec=spec)


# -- unet ---------------------------------------------------------------------------------------


def smallest_map(model):
    """The smallest height of any 4-D map inside ``model``: the U-Net's bottleneck."""
    return min(layer.output.shape[1] for layer in model.layers if len(layer.output.shape) == 4)


@pytest.mark.parametrize("spec, depth, bottleneck", [
    (MNIST, None, 7),  # 28 -> 14 -> 7: at most 8x8
    (DIGITS, None, 4),  # at least one halving
    (DataSpec((64, 64, 3), condition_shape=(64, 64, 3)), None, 8),
    (MNIST, 3, 4),  # 28 padded to 32 -> 4
    (MNIST, 5, 1),  # ... -> 1, the deepest
])
def test_the_unet_halves_to_its_bottleneck_and_comes_back(registry, spec, depth, bottleneck):
    networks = unet(registry, spec, depth=depth)
    assert smallest_map(networks.generator) == bottleneck
    images = np.asarray(networks.generator(rng_images((2, *spec.condition_shape)), training=False))
    assert images.shape == (2, *spec.shape)


@pytest.mark.parametrize("depth, normalised", [(None, 2), (5, 7)])
def test_normalisation_skips_the_first_block_and_a_one_pixel_bottleneck(registry, depth, normalised):
    """28x28, depth 2: encoder block 2 and the one decoder block; depth 5 (1x1): encoder blocks 2-4, four decoder blocks."""
    generator = unet(registry, MNIST, depth=depth, norm="instance").generator
    assert sum(layer.__class__.__name__ == "GroupNormalization" for layer in generator.layers) == normalised


def test_a_depth_below_one_pixel_is_refused(registry):
    with pytest.raises(ganframe.ConfigError, match=r"option 'depth': got 6; 28x28 images can be halved at most 5"):
        unet(registry, MNIST, depth=6)


@pytest.mark.parametrize("spec, size", [(MNIST, 14), (DIGITS, 4), (DataSpec((256, 256, 3), condition_shape=(256, 256, 3)), 32)])
def test_patchgan_patches_fit_the_image(registry, spec, size):
    """Default patch_layers: 3 (70x70) where the image allows, else fewer: 28 and 8 get one (16x16 patches)."""
    networks = unet(registry, spec)
    image, condition = rng_images((2, *spec.shape)), rng_images((2, *spec.condition_shape), seed=1)
    outputs = networks.discriminator([image, condition], training=False)
    patches = np.asarray(outputs["patches"])
    assert patches.shape == (2, size, size, 1)
    np.testing.assert_allclose(np.asarray(outputs["logit"])[:, 0], patches.mean(axis=(1, 2, 3)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("spec, low, high", [(MNIST, 0.0, 1.0), (COLOUR, -1.0, 1.0),
                                             (DataSpec((8, 8, 1), (-3.0, 3.0), condition_shape=(8, 8, 1)), -3.0, 3.0)])
def test_the_output_covers_the_datas_range(registry, spec, low, high):
    networks = unet(registry, spec, norm="none")
    conditions = 1e4 * rng_images((4, *spec.condition_shape), low=-1.0)  # saturates the last activation
    images = np.asarray(networks.generator(conditions, training=False))
    assert networks.output_range == (low, high)
    assert images.min() >= low - 1e-5 and images.max() <= high + 1e-5
    assert images.min() < low + 0.01 * (high - low) and images.max() > high - 0.01 * (high - low)


def test_unet_refuses_unpaired_data_saying_how_to_pair_it(registry):
    with pytest.raises(ganframe.ConfigError, match=r"'unet'.*no condition: use paired data.*\[pairs\].*paired folder"):
        unet(registry, DataSpec((28, 28, 1)))
    with pytest.raises(ganframe.ConfigError, match=r"needs image conditions"):
        unet(registry, DataSpec((28, 28, 1), condition_shape=(10,)))


def test_an_activation_outside_the_datas_range_is_refused(registry):
    with pytest.raises(ganframe.ConfigError, match=r"'tanh' maps into \[-1, 1\], but the data lies in \[0, 1\]"):
        unet(registry, MNIST, output_activation="tanh")


# -- losses -------------------------------------------------------------------------------------


def update(network, real_logits, fake_logits, real_heads=None, fake_heads=None):
    import tensorflow as tf

    return Update(network=network, real=None, fake=None, real_logits=real_logits, fake_logits=fake_logits,
                  labels=None, fake_labels=None, critic=None, step=tf.constant(0, tf.int64),
                  real_heads=real_heads or {}, fake_heads=fake_heads or {})


def softplus(x):
    return np.log1p(np.exp(x))


def test_l1_only_is_zero_with_a_zero_gradient_for_both_networks(registry):
    """The kit's check_loss refuses it, rightly for any other loss: its gradients are zero by design."""
    import tensorflow as tf

    loss = registry.build("loss", "l1_only", {}, MNIST)
    real, fake = tf.constant([[3.0], [-2.0]]), tf.constant([[1.0], [5.0]])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([real, fake])
        d_loss = loss.update_loss(update("discriminator", real, fake))
        g_loss = loss.update_loss(update("generator", None, fake))
    assert float(d_loss) == 0.0 and float(g_loss) == 0.0 and d_loss.shape == () and g_loss.shape == ()
    for value, logits in ((d_loss, real), (d_loss, fake), (g_loss, fake)):
        gradient = tape.gradient(value, logits)
        assert gradient is not None and not np.asarray(gradient).any()


def test_patchgan_is_the_cross_entropy_of_each_patch():
    import tensorflow as tf

    from ganframe_pix2pix.losses import PatchGANLoss

    real, fake = np.array([[[[2.0]], [[-1.0]]]]), np.array([[[[0.5]], [[-3.0]]]])  # (1, 2, 1, 1) patch maps
    mean_real, mean_fake = np.array([[real.mean()]]), np.array([[fake.mean()]])  # what D's logit holds
    loss = PatchGANLoss()
    heads = ({"patches": tf.constant(real)}, {"patches": tf.constant(fake)})
    d = float(loss.update_loss(update("discriminator", tf.constant(mean_real), tf.constant(mean_fake), *heads)))
    g = float(loss.update_loss(update("generator", None, tf.constant(mean_fake), None, heads[1])))
    assert d == pytest.approx(softplus(-real).mean() + softplus(fake).mean(), rel=1e-6)
    assert g == pytest.approx(softplus(-fake).mean(), rel=1e-6)
    assert g != pytest.approx(softplus(-mean_fake).mean(), rel=1e-3)  # not the loss of the mean logit
    plain = float(loss.update_loss(update("generator", None, tf.constant(mean_fake))))  # no head: nonsaturating
    assert plain == pytest.approx(softplus(-mean_fake).mean(), rel=1e-6)


# -- metrics ------------------------------------------------------------------------------------


def test_l1_is_the_mean_absolute_difference(registry):
    real = np.zeros((2, 28, 28, 1), np.float32)
    fake = real.copy()
    fake[0] = 0.5  # image 0 off by 0.5 everywhere; image 1 by 1.0 on a quarter of it
    fake[1, :14, :14] = 1.0
    assert metric(registry, "l1").compute(real, fake) == {"l1": pytest.approx((0.5 + 0.25) / 2)}


def test_psnr_of_a_known_mean_squared_error(registry):
    real = rng_images((3, 28, 28, 1), low=0.2, high=0.8)
    assert metric(registry, "psnr").compute(real, real + 0.1)["psnr"] == pytest.approx(20.0, abs=1e-3)  # 10 log10(1 / 0.01)
    wide = DataSpec((28, 28, 1), (-1.0, 1.0), condition_shape=(28, 28, 1))  # peak = range width 2: +6.02 dB
    psnr = metric(registry, "psnr", wide).compute(real, real + 0.1)["psnr"]
    assert psnr == pytest.approx(20.0 + 20 * math.log10(2), abs=1e-3)


def test_psnr_of_an_exact_copy_is_the_cap(registry):
    real = rng_images((2, 28, 28, 1))
    assert metric(registry, "psnr").compute(real, real.copy()) == {"psnr": 100.0}
    mixed = np.stack([real[0], real[1] + 0.1])  # 100 dB and 20 dB: the mean of the capped values
    assert metric(registry, "psnr", max_db=60).compute(real, mixed)["psnr"] == pytest.approx(40.0, abs=1e-3)


def test_ssim_is_one_for_identical_images_and_less_otherwise(registry):
    real = rng_images((4, 28, 28, 1))
    ssim = metric(registry, "ssim")
    assert ssim.compute(real, real.copy())["ssim"] == pytest.approx(1.0, abs=1e-6)
    assert ssim.compute(real, rng_images((4, 28, 28, 1), seed=1))["ssim"] < 0.1


def test_ssim_reads_the_images_in_their_value_range(registry):
    """Images in [-1, 1] score what the same images mapped onto [0, 1] score: SSIM sees them from 0 up."""
    real, fake = rng_images((4, 28, 28, 1), low=-1.0), rng_images((4, 28, 28, 1), seed=1, low=-1.0)
    fake = 0.5 * real + 0.5 * fake  # related, so SSIM is well above 0
    wide = DataSpec((28, 28, 1), (-1.0, 1.0), condition_shape=(28, 28, 1))
    on_wide = metric(registry, "ssim", wide).compute(real, fake)["ssim"]
    assert on_wide == pytest.approx(metric(registry, "ssim").compute((real + 1) / 2, (fake + 1) / 2)["ssim"], abs=1e-5)
    assert 0.2 < on_wide < 0.99


def test_ssim_window_fits_small_images(registry):
    assert metric(registry, "ssim", TINY_SPEC).filter_size == 8
    assert metric(registry, "ssim").filter_size == 11
    with pytest.raises(ganframe.ConfigError, match=r"option 'filter_size': got 9; .* 8x8 images: at most 8"):
        metric(registry, "ssim", TINY_SPEC, filter_size=9)


@pytest.mark.parametrize("name", ["l1", "psnr", "ssim"])
def test_metrics_refuse_sets_that_do_not_pair_up(registry, name):
    with pytest.raises(ganframe.DataError, match=f"metric '{name}' compares each output with its own target"):
        metric(registry, name).compute(rng_images((3, 28, 28, 1)), rng_images((2, 28, 28, 1)))


# -- training -----------------------------------------------------------------------------------


def read_rows(path):
    with open(path, newline="") as handle:
        return {int(row["step"]): row for row in csv.DictReader(handle)}


@pytest.mark.backends
def test_l1_only_trains_g_by_the_reconstruction_term_alone(registry, tmp_path):
    """D's loss stays 0 and D does not change; G's loss at step k + 1 is 100 x the L1 the evaluation measured
    after step k.

    The batch is the whole data set (64 digits) and G has no dropout and no batch statistics, so G's
    loss in step k + 1 is computed on the same pairs, by the same G, as the ``l1`` score at step k;
    D's mean logit on those real images is the same in every step.
    """
    steps = 3
    run = ganframe.train({
        "arch": "unet", "arch_options": {**SMALL, "norm": "instance", "dropout": 0.0},
        "data": "digits", "data_options": {"limit": 64}, "pairs": {"derive": "mask"},
        "loss": "l1_only", "penalties": {"reconstruction": {"weight": 100}},
        "metrics": {"l1": {}, "psnr": {}, "ssim": {}}, "evaluation": {"every": 1, "samples": 64},
        "batch_size": 64, "steps": steps, "seed": 0, "jit_compile": False, "out": str(tmp_path / "run"),
        "callbacks": {"samples": {"every": 0}, "checkpoint": {"every": 0}, "metrics": {"every": 1}},
    }, registry=registry, progress=False)
    losses, scores = read_rows(run.path / "metrics.csv"), read_rows(run.path / "evaluations.csv")
    assert sorted(losses) == list(range(1, steps + 1)) and sorted(scores) == list(range(steps + 1))
    for step in range(1, steps + 1):
        assert float(losses[step]["d_loss"]) == 0.0
        assert float(losses[step]["d_real"]) == pytest.approx(float(losses[1]["d_real"]), rel=1e-5)
        assert float(losses[step]["g_loss"]) == pytest.approx(100 * float(scores[step - 1]["l1"]), rel=1e-4)
    assert float(scores[steps]["l1"]) < float(scores[0]["l1"])  # G learns from it
    assert float(scores[steps]["psnr"]) > float(scores[0]["psnr"])


@pytest.mark.backends
def test_patchgan_trains_unet_from_shrunk_conditions(registry, tmp_path):
    """The per-patch loss reads D's head in a real run; 4x4 conditions are resized to 8x8 in G and D."""
    run = ganframe.train({
        "arch": "unet", "arch_options": SMALL, "data": "digits", "data_options": {"limit": 64},
        "pairs": {"derive": "downscale", "factor": 2, "back_to_size": False},
        "loss": "patchgan", "penalties": {"reconstruction": {}}, "batch_size": 32, "steps": 2, "seed": 0,
        "jit_compile": False, "out": str(tmp_path / "run"),
        "callbacks": {"samples": {"every": 0}, "checkpoint": {"every": 0}, "metrics": {"every": 1}},
    }, registry=registry, progress=False)
    assert run.spec.condition_shape == (4, 4, 1)
    losses = read_rows(run.path / "metrics.csv")
    assert all(np.isfinite(float(losses[step][key])) for step in (1, 2) for key in ("d_loss", "g_loss"))
    images = run.generate(3, conditions=rng_images((3, 4, 4, 1)))
    assert images.shape == (3, 8, 8, 1) and 0.0 <= images.min() and images.max() <= 1.0
