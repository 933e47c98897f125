"""Transposed convolutions on JAX's CPU backend, with a kernel gradient XLA computes quickly.

``keras.layers.Conv2DTranspose`` on JAX is ``jax.lax.conv_transpose``; XLA:CPU differentiates it
with respect to the kernel as one convolution whose window is the whole output map, which it runs
about 10 times slower than TensorFlow's kernel (measured: 285 ms of a 353 ms forward and backward pass
for a dcgan layer, 64 × 7 × 7 × 128 → 14 × 14 × 64). Here the same gradient is K² strided slices of
the output's gradient contracted with the input in one ``einsum`` (44 ms for that pass), the forward
pass and the input's gradient stay ``jax.lax``'s, and the layer stays a plain ``Conv2DTranspose``
(checkpoints, ``export``, other backends untouched): :func:`speed_up` gives such layers of a network
a ``call`` that uses :func:`conv_transpose`.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import keras

Pads = tuple[tuple[int, int], ...]


def padding_of(kernel: int, stride: int, padding: str) -> tuple[int, int]:
    """The (left, right) padding of the stride-dilated input that gives Keras's ``padding`` (no output_padding)."""
    if padding == "valid":
        return kernel - 1, kernel - 1 + max(kernel, stride) - kernel
    total = stride + kernel - 2
    left = min(total // 2 + total % 2, kernel - 1)
    return left, total - left


def _transposed(x: jax.Array, kernel: jax.Array, strides: tuple[int, int], pads: Pads) -> jax.Array:
    """What Keras computes: channels last, kernel (height, width, out, in)."""
    return jax.lax.conv_transpose(x, kernel, strides, padding=pads, dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                  transpose_kernel=True)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv_transpose(x: jax.Array, kernel: jax.Array, strides: tuple[int, int], pads: Pads) -> jax.Array:
    """``jax.lax.conv_transpose`` as Keras calls it, differentiated by :func:`_backward`."""
    return _transposed(x, kernel, strides, pads)


def _forward(x: jax.Array, kernel: jax.Array, strides: tuple[int, int], pads: Pads) -> tuple[jax.Array, Any]:
    return _transposed(x, kernel, strides, pads), (x, kernel)


def _backward(strides: tuple[int, int], pads: Pads, residuals: Any, dy: jax.Array) -> tuple[jax.Array, jax.Array]:
    x, kernel = residuals
    _, input_vjp = jax.vjp(lambda x: _transposed(x, kernel, strides, pads), x)
    (dx,) = input_vjp(dy)
    # The output is a stride-1 convolution of the dilated, padded input with the flipped kernel k:
    # y[p] = sum_a x_dilated[p + a] k[a], and x_dilated[left + s*i] = x[i], so the kernel offset a meets x[i]
    # at p = left + s*i - a: dk[a] = sum_i x[i] dy[left + s*i - a], one strided slice of dy per offset.
    (kh, kw), (sh, sw) = kernel.shape[:2], strides
    ((top, _), (left, _)), (n, h, w, _) = pads, x.shape
    padded = jnp.pad(dy, ((0, 0), (kh, kh), (kw, kw), (0, 0)))
    windows = jnp.stack([
        jnp.stack([jax.lax.slice(padded, (0, top - a + kh, left - b + kw, 0),
                                 (n, top - a + kh + sh * (h - 1) + 1, left - b + kw + sw * (w - 1) + 1, dy.shape[3]),
                                 (1, sh, sw, 1)) for b in range(kw)])
        for a in range(kh)])
    dk = jnp.einsum("nhwi,abnhwo->abio", x, windows)
    return dx, jnp.transpose(dk[::-1, ::-1], (0, 1, 3, 2)).astype(kernel.dtype)


conv_transpose.defvjp(_forward, _backward)


def _fast_call(layer: keras.layers.Conv2DTranspose) -> Any:
    """``layer.call`` with :func:`conv_transpose` in place of ``keras.ops.conv_transpose``."""
    pads = tuple(padding_of(k, s, layer.padding) for k, s in zip(layer.kernel_size, layer.strides))

    def call(inputs: Any) -> Any:
        kernel = keras.ops.convert_to_tensor(layer.kernel)  # the step's value, in the layer's compute dtype
        outputs = conv_transpose(keras.ops.convert_to_tensor(inputs), kernel, tuple(layer.strides), pads)
        if layer.use_bias:
            outputs = outputs + keras.ops.convert_to_tensor(layer.bias)
        return outputs if layer.activation is None else layer.activation(outputs)

    return call


def _layers(layer: Any) -> list[Any]:
    """``layer`` and every layer inside it that a model lists (``.layers``, recursively)."""
    return [layer, *(inner for child in getattr(layer, "layers", []) for inner in _layers(child))]


def speed_up(network: keras.Model) -> int:
    """Give ``network``'s 2-D transposed convolutions the fast kernel gradient, on the CPU; how many.

    Only Keras's own layer in its common form (channels last, no dilation, no output_padding) is
    changed, and only its ``call`` on this instance: the computation is the same, to float rounding.
    """
    if jax.default_backend() != "cpu":  # measured on the CPU only: elsewhere the layers run as Keras has them
        return 0
    changed = 0
    for layer in _layers(network):
        if (type(layer) is keras.layers.Conv2DTranspose and layer.data_format == "channels_last"
                and tuple(layer.dilation_rate) == (1, 1) and layer.output_padding is None):
            layer.call = _fast_call(layer)
            changed += 1
    return changed
