"""Built-in architectures, built through the registry exactly as the engine builds them."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from ganframe import ConfigError, DataSpec, load_plugins

DIGITS = DataSpec((8, 8, 1))
MNIST = DataSpec((28, 28, 1))
CIFAR = DataSpec((32, 32, 3))
SMALL_DENSE = {"g_widths": [16, 32], "d_widths": [32, 16]}
SMALL_DCGAN = {"base_channels": 8}


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


@pytest.mark.parametrize(("arch", "options"), [("dense", SMALL_DENSE), ("dcgan", SMALL_DCGAN)])
def test_tanh_output(registry, arch, options):
    nets = registry.build("architecture", arch, {**options, "output_activation": "tanh", "latent_dim": 7}, MNIST)
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
    ],
)
def test_bad_options_name_field_and_component(registry, arch, options, field):
    with pytest.raises(ConfigError) as error:
        registry.build("architecture", arch, options, MNIST)
    message = str(error.value)
    assert f"architecture '{arch}'" in message
    assert field in message
