"""Built-in architectures, built through the registry exactly as the engine builds them."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from ganframe import ConfigError, DataSpec, load_plugins
from ganframe.testing import check_architecture

DIGITS = DataSpec((8, 8, 1))
MNIST = DataSpec((28, 28, 1))
CIFAR = DataSpec((32, 32, 3))
SMALL_DENSE = {"g_widths": [16, 32], "d_widths": [32, 16]}
SMALL_DCGAN = {"base_channels": 8}
SMALL_RESNET = {"g_channels": 8, "d_channels": 8, "latent_dim": 16}


@pytest.fixture(scope="module")
def registry():
    return load_plugins()


def generate(nets, n: int = 6, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal((n, nets.latent_dim)).astype(np.float32)
    return np.asarray(nets.generator(noise, training=False))


def dense_units(model) -> list[int]:
    return [layer.units for layer in model.layers if layer.__class__.__name__ == "Dense"]


def test_module_imports_no_tensorflow():
    code = "import sys, ganframe.builtin.archs; sys.exit(bool({'tensorflow', 'keras'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.parametrize(
    ("arch", "options", "spec"),
    [
        ("dense", SMALL_DENSE, DIGITS),
        ("dense", SMALL_DENSE, MNIST),
        ("dense", SMALL_DENSE, CIFAR),
        ("dcgan", SMALL_DCGAN, MNIST),
        ("dcgan", SMALL_DCGAN, CIFAR),
        ("dcgan", SMALL_DCGAN, DataSpec((16, 16, 1))),
        ("resnet", SMALL_RESNET, CIFAR),
        ("resnet", SMALL_RESNET, DIGITS),
        ("resnet", SMALL_RESNET, DataSpec((16, 16, 3))),
    ],
)
def test_shapes_and_range(registry, arch, options, spec):
    nets = registry.build("architecture", arch, options, spec)
    assert nets.generator.name == "generator" and nets.discriminator.name == "discriminator"
    assert nets.output_range == (0.0, 1.0) and not nets.conditional
    images = generate(nets)
    assert images.shape == (6, *spec.shape)
    assert images.min() >= 0.0 and images.max() <= 1.0
    logits = np.asarray(nets.discriminator(images, training=False))
    assert logits.shape == (6, 1) and np.isfinite(logits).all()


def test_dense_defaults_are_the_seed_model(registry):
    nets = registry.build("architecture", "dense", {}, MNIST)
    assert nets.latent_dim == 100
    assert nets.generator.input_shape == (None, 100)
    assert dense_units(nets.generator) == [256, 512, 1024, 784]
    assert dense_units(nets.discriminator) == [1024, 512, 256, 1]
    bn = [layer for layer in nets.generator.layers if layer.__class__.__name__ == "BatchNormalization"]
    assert [layer.momentum for layer in bn] == [0.8] * 3
    dropout = [layer.rate for layer in nets.discriminator.layers if layer.__class__.__name__ == "Dropout"]
    assert dropout == [0.3] * 3
    seed_d_params = 784 * 1024 + 1024 + 1024 * 512 + 512 + 512 * 256 + 256 + 256 + 1
    assert nets.discriminator.count_params() == seed_d_params


@pytest.mark.parametrize(("arch", "options"), [("dense", SMALL_DENSE), ("dcgan", SMALL_DCGAN)])
def test_discriminator_outputs_raw_logits(registry, arch, options):
    nets = registry.build("architecture", arch, options, MNIST)
    last = nets.discriminator.layers[-1]
    kernel, bias = last.get_weights()
    images = generate(nets, n=4)
    for value in (7.5, -7.5):
        last.set_weights([np.zeros_like(kernel), np.full_like(bias, value)])
        np.testing.assert_allclose(np.asarray(nets.discriminator(images, training=False)), value)


@pytest.mark.parametrize(
    ("arch", "options", "spec"),
    [("dense", SMALL_DENSE, MNIST), ("dcgan", SMALL_DCGAN, MNIST), ("resnet", SMALL_RESNET, DIGITS)],
)
def test_tanh_output(registry, arch, options, spec):
    nets = registry.build("architecture", arch, {**options, "output_activation": "tanh", "latent_dim": 7}, spec)
    assert nets.output_range == (-1.0, 1.0)
    assert nets.latent_dim == 7
    images = generate(nets, n=8)
    assert images.min() >= -1.0 and images.max() <= 1.0 and images.min() < 0.0


@pytest.mark.parametrize("shape", [(8, 8, 1), (28, 32, 1), (24, 24, 3), (8, 8, 3)])
def test_dcgan_refuses_unsupported_sizes(registry, shape):
    with pytest.raises(ConfigError) as error:
        registry.build("architecture", "dcgan", SMALL_DCGAN, DataSpec(shape))
    message = str(error.value)
    assert "28" in message and "power of two" in message
    assert "x".join(map(str, shape)) in message
    assert "--arch dense" in message


@pytest.mark.parametrize(
    ("arch", "options", "field"),
    [
        ("dense", {"g_widths": [16, -4]}, "g_widths"),
        ("dense", {"d_widths": []}, "d_widths"),
        ("dense", {"dropout": 1.0}, "dropout"),
        ("dense", {"latent_dim": 0}, "latent_dim"),
        ("dense", {"output_activation": "relu"}, "output_activation"),
        ("dense", {"widths": [16]}, "widths"),
        ("dcgan", {"base_channels": 0}, "base_channels"),
        ("dcgan", {"g_widths": [16]}, "g_widths"),
        ("dcgan", {"conditional": "sometimes"}, "conditional"),
        ("resnet", {"g_channels": 0}, "g_channels"),
        ("resnet", {"spectral_norm": "yes please"}, "spectral_norm"),
    ],
)
def test_bad_options_name_field_and_component(registry, arch, options, field):
    with pytest.raises(ConfigError) as error:
        registry.build("architecture", arch, options, MNIST)
    message = str(error.value)
    assert f"architecture '{arch}'" in message
    assert field in message


def test_resnet_is_the_sngan_cifar_model(registry):
    """At 32x32: G 4x4 → three upsampling blocks → 32x32; D two halving blocks, two at 8x8, sum pooling, SN."""
    nets = registry.build("architecture", "resnet", {}, CIFAR)
    assert nets.latent_dim == 128
    g_layers = [layer.__class__.__name__ for layer in nets.generator.layers]
    assert g_layers.count("UpSampling2D") == 2 * 3  # residual path and shortcut of each block
    assert nets.generator.get_layer(index=2).output.shape[1:] == (4, 4, 64)  # Dense, Reshape
    assert nets.generator.layers[-1].kernel.shape == (3, 3, 64, 3)
    d_layers = [layer.__class__.__name__ for layer in nets.discriminator.layers]
    assert d_layers.count("AveragePooling2D") == 2  # one per halving block, shared by its two paths
    assert d_layers.count("Add") == 4
    assert "BatchNormalization" not in d_layers and "Conv2D" not in d_layers  # every conv wrapped
    assert d_layers.count("SpectralNormalization") == 4 * 2 + 2 + 1  # two convs per block, 2 shortcut convs, logit


@pytest.mark.parametrize("shape", [(28, 28, 1), (24, 24, 3), (4, 4, 1), (32, 16, 3)])
def test_resnet_refuses_unsupported_sizes(registry, shape):
    with pytest.raises(ConfigError) as error:
        registry.build("architecture", "resnet", SMALL_RESNET, DataSpec(shape))
    message = str(error.value)
    assert "power of two >= 8" in message and "x".join(map(str, shape)) in message and "--arch dense" in message


def largest_singular_value(kernel) -> float:
    matrix = np.asarray(kernel).reshape(-1, kernel.shape[-1])
    return float(np.linalg.svd(matrix, compute_uv=False)[0])


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(("arch", "options"), [("dense", SMALL_DENSE), ("resnet", SMALL_RESNET)])
def test_spectral_norm_normalizes_every_weight_of_d(registry, arch, options, seed):
    import keras

    keras.utils.set_random_seed(seed)
    nets = registry.build("architecture", arch, {**options, "spectral_norm": True}, DIGITS)
    wrapped = [layer for layer in nets.discriminator.layers if layer.__class__.__name__ == "SpectralNormalization"]
    images = generate(nets, n=8)
    before = [largest_singular_value(layer.kernel) for layer in wrapped]
    nets.discriminator(images, training=False)  # inference leaves the weights alone
    assert [largest_singular_value(layer.kernel) for layer in wrapped] == before
    for _ in range(200):  # one power iteration per training call (a run does one per D call, every step)
        nets.discriminator(images, training=True)
    after = [largest_singular_value(layer.kernel) for layer in wrapped]
    assert max(abs(np.array(before) - 1)) > 0.1, before
    # Power iteration's error shrinks as (s2/s1)^(2n), so how many calls it needs depends on the draw's gap
    # between the two largest singular values: over 12 seeded draws of each network, the largest
    # |s1 - 1| was 4.6e-4 after 50 calls (one unseeded draw: 1.5e-2) and 3.6e-7 after 200.
    np.testing.assert_allclose(after, 1.0, atol=1e-4)
    # the power iteration's vector is D state, so checkpoints (which hold discriminator.variables) keep it
    u = [v for v in nets.discriminator.non_trainable_variables if "vector_u" in v.path]
    assert len(u) == len(wrapped) and all(any(v is w for w in nets.discriminator.variables) for v in u)


TINY_CLASSES = DataSpec((8, 8, 1), num_classes=3)


@pytest.mark.parametrize("conditional", [False, True], ids=["unconditional", "conditional"])
@pytest.mark.parametrize(
    ("arch", "options", "spec"),
    [
        ("dense", {**SMALL_DENSE, "latent_dim": 8}, TINY_CLASSES),
        ("dcgan", {"base_channels": 4, "latent_dim": 8}, DataSpec((16, 16, 1), num_classes=3)),
        ("resnet", {**SMALL_RESNET, "latent_dim": 8}, TINY_CLASSES),
    ],
)
def test_every_architecture_honours_the_contract(registry, arch, options, spec, conditional):
    """Conditional variants take [inputs, labels]; spectral norm on D in the conditional ones (resnet: always)."""
    nets = check_architecture(arch, {**options, "conditional": conditional, "spectral_norm": conditional},
                              registry=registry, spec=spec)
    assert nets.conditional is conditional
    assert len(nets.generator.inputs) == len(nets.discriminator.inputs) == 1 + conditional


def test_a_conditional_network_compiles_with_xla(registry):
    check_architecture("dense", {**SMALL_DENSE, "latent_dim": 8, "conditional": True, "spectral_norm": True},
                       registry=registry, spec=TINY_CLASSES, jit_compile=True)


def test_projection_discriminator_depends_on_the_label(registry):
    nets = registry.build("architecture", "dense", {**SMALL_DENSE, "conditional": True}, TINY_CLASSES)
    images = np.random.default_rng(0).random((3, 8, 8, 1)).astype("float32")
    logits = [np.asarray(nets.discriminator([images, np.full(3, k, np.int32)], training=False)) for k in range(3)]
    assert not np.allclose(logits[0], logits[1]) and not np.allclose(logits[1], logits[2])


@pytest.mark.parametrize("arch", ["dense", "dcgan", "resnet"])
def test_conditional_needs_labelled_data(registry, arch):
    with pytest.raises(ConfigError, match=f"'{arch}' with conditional = true needs labelled data"):
        registry.build("architecture", arch, {"conditional": True}, DataSpec((16, 16, 1)))
