"""Transposed convolutions on JAX's CPU (ganframe.backends.jax_conv): the fast kernel gradient is the gradient
Keras's own layer has, for every stride, kernel size and padding, and the GAN's networks use it."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest

from ganframe import DataSpec, RunConfig, get_registry
from ganframe.backends import jax_conv
from ganframe.run import build_gan

pytestmark = pytest.mark.backends("jax")

#: float32 sums of up to a few hundred products taken in another order: measured at most 5e-7 of the
#: largest entry (kernels 3-5, strides 1-3, both paddings).
RTOL = 1e-5


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("kernel", [3, 4, 5])
def test_the_layer_computes_and_differentiates_as_keras_does(kernel, stride, padding):
    rng = np.random.default_rng(kernel * 10 + stride)
    layer = keras.layers.Conv2DTranspose(4, kernel, strides=stride, padding=padding, activation="tanh")
    reference = keras.layers.Conv2DTranspose(4, kernel, strides=stride, padding=padding, activation="tanh")
    x = jnp.asarray(rng.normal(size=(2, 5, 6, 3)), jnp.float32)
    layer.build(x.shape), reference.build(x.shape)
    reference.set_weights([rng.normal(size=w.shape).astype("float32") * 0.3 for w in reference.get_weights()])
    layer.set_weights(reference.get_weights())
    assert jax_conv.speed_up(keras.Sequential([keras.Input(x.shape[1:]), layer])) == 1
    target = jnp.asarray(rng.normal(size=reference(x).shape), jnp.float32)

    def loss(net, values, x):
        out, _ = net.stateless_call(values, [], x)
        return jnp.sum(out * target)

    for net in (layer, reference):
        assert net(x).shape == reference(x).shape
    np.testing.assert_allclose(layer(x), reference(x), rtol=RTOL, atol=1e-6)
    values = [v.value for v in reference.trainable_variables]
    fast = jax.grad(loss, argnums=(1, 2))(layer, values, x)
    slow = jax.grad(loss, argnums=(1, 2))(reference, values, x)
    for got, want in zip(jax.tree.leaves(fast), jax.tree.leaves(slow)):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL * float(jnp.max(jnp.abs(want))))


def test_only_keras_own_layer_in_its_common_form_is_changed():
    plain = keras.layers.Conv2DTranspose(2, 3, strides=2, padding="same")
    dilated = keras.layers.Conv2DTranspose(2, 3, dilation_rate=2)
    output_padding = keras.layers.Conv2DTranspose(2, 3, strides=2, output_padding=1)

    class Own(keras.layers.Conv2DTranspose):
        pass

    own = Own(2, 3)
    inner = keras.Sequential([keras.Input((4, 4, 2)), plain])
    outer = keras.Sequential([keras.Input((4, 4, 2)), inner, dilated, output_padding, own])
    assert jax_conv.speed_up(outer) == 1
    assert "call" in vars(plain) and not any("call" in vars(layer) for layer in (dilated, output_padding, own))


def test_the_dcgan_generator_built_for_training_uses_it():
    config = RunConfig(arch="dcgan", arch_options={"base_channels": 8, "latent_dim": 4}, data="digits")
    gan = build_gan(config, DataSpec(shape=(16, 16, 1), value_range=(0.0, 1.0), num_classes=10), get_registry())
    layers = [layer for layer in gan.generator.layers if isinstance(layer, keras.layers.Conv2DTranspose)]
    assert layers and all("call" in vars(layer) for layer in layers)
