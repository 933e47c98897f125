"""What the U-Net and the PatchGAN share: the paper's 4x4 convolution block, its normalisation, and the
condition brought to the image's size.

Keras is imported inside the functions: listing plugins stays TensorFlow-free.
"""

from __future__ import annotations

from typing import Any, Literal

from ganframe import DataSpec

Norm = Literal["batch", "instance", "none"]

#: Kernel of every (transposed) convolution, as in the paper: divisible by the stride 2, so the
#: overlaps are even (no checkerboard).
KERNEL = 4
#: Negative slope of the encoder's and D's LeakyReLUs (the paper's 0.2).
LEAKY_SLOPE = 0.2
#: The paper's weight initialisation: N(0, 0.02).
INIT_STDDEV = 0.02
#: Channels double per halving up to this multiple of base_channels (the paper's 512 = 8 x 64).
MAX_MULTIPLE = 8


def channels(base: int, level: int) -> int:
    """Channels at ``level`` halvings: base, 2 base, 4 base, then 8 base from the fourth on."""
    return base * min(2**level, MAX_MULTIPLE)


def normalization(norm: Norm) -> Any | None:
    """A fresh normalisation layer, or None for ``"none"``.

    ``"instance"`` is a GroupNormalization with one group per channel: each image's channel
    normalised over its pixels, with a learned scale and offset. ``"batch"`` is synchronized under
    a distribution strategy, so its statistics are the global batch's, as on one device.
    """
    import keras

    if norm == "batch":
        from ganframe import distributed

        return keras.layers.BatchNormalization(synchronized=distributed())
    if norm == "instance":
        return keras.layers.GroupNormalization(groups=-1)
    return None


def conv_block(x: Any, filters: int, *, strides: int, norm: Norm, activation: Any, up: bool = False,
               dropout: float = 0.0) -> Any:
    """Conv 4x4 (transposed when ``up``), normalisation, dropout, activation: the paper's Ck / CDk block.

    The convolution has no bias where a normalisation follows: its offset would be subtracted again.
    """
    import keras

    normalise = normalization(norm)
    conv = keras.layers.Conv2DTranspose if up else keras.layers.Conv2D
    x = conv(filters, KERNEL, strides=strides, padding="same", use_bias=normalise is None,
             kernel_initializer=keras.initializers.RandomNormal(stddev=INIT_STDDEV))(x)
    if normalise is not None:
        x = normalise(x)
    if dropout > 0:
        x = keras.layers.Dropout(dropout)(x)
    return activation(x)


def at_image_size(condition: Any, spec: DataSpec) -> Any:
    """The condition resized (bilinear) to the image's height and width where they differ, e.g. a
    condition shrunk by ``[pairs] derive = "downscale"`` with ``back_to_size = false``."""
    import keras

    if tuple(condition.shape[1:3]) == tuple(spec.shape[:2]):
        return condition
    return keras.layers.Resizing(spec.height, spec.width, interpolation="bilinear")(condition)
