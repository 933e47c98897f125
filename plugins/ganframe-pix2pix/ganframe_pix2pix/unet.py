"""The pix2pix generator (Isola et al. 2017, sec. 3.2.1 and appendix 6.1): a U-Net from the condition to the image.

The encoder halves the image ``depth`` times with conv 4x4 stride 2, normalisation (not in the
first block, nor in a 1x1 bottleneck, which an instance norm would zero and the authors' code leaves
unnormalised) and LeakyReLU 0.2; the decoder doubles it back with transposed conv 4x4 stride 2,
normalisation and ReLU, dropout in its first three blocks, each block's output concatenated with
the encoder's map of the same size (the skips that carry the condition's detail past the
bottleneck). A last transposed convolution makes the image's channels, through the output
activation. There is no noise input: the dropout is G's noise, as in the paper. Keras applies it
in training only, so ``generate`` and sampling are deterministic.

Sizes that ``depth`` halvings do not divide are zero-padded (centred) to the next multiple of
2^depth inside the model and cropped back at the end; a condition of another size than the image
is resized to it first.
"""

from __future__ import annotations

from typing import Any

from ganframe import DataSpec

from ganframe_pix2pix.layers import INIT_STDDEV, KERNEL, LEAKY_SLOPE, Norm, at_image_size, channels, conv_block

#: Decoder blocks with dropout, counted from the bottleneck (the paper's CD512 x 3).
DROPOUT_BLOCKS = 3

#: The interval each output activation maps into.
ACTIVATION_RANGES: dict[str, tuple[float, float]] = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0)}


def padded(side: int, depth: int) -> int:
    """``side`` rounded up to a multiple of 2^depth, so that every halving is exact."""
    step = 2**depth
    return -(-side // step) * step


def build_generator(spec: DataSpec, *, depth: int, base_channels: int, norm: Norm, dropout: float,
                    activation: str) -> Any:
    """G: a condition of ``spec.condition_shape`` -> an image of ``spec.shape`` in ``spec.value_range``.

    ``activation`` (sigmoid or tanh) is rescaled onto the value range where its own differs.
    """
    import keras

    condition = keras.Input(spec.condition_shape, name="condition")
    x = at_image_size(condition, spec)
    pad_h, pad_w = padded(spec.height, depth) - spec.height, padded(spec.width, depth) - spec.width
    margins = ((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2))
    if pad_h or pad_w:
        x = keras.layers.ZeroPadding2D(margins)(x)

    one_pixel_bottleneck = x.shape[1] == x.shape[2] == 2**depth
    skips = []
    for level in range(depth):
        normalised = level > 0 and not (level == depth - 1 and one_pixel_bottleneck)
        x = conv_block(x, channels(base_channels, level), strides=2, norm=norm if normalised else "none",
                       activation=keras.layers.LeakyReLU(LEAKY_SLOPE))
        skips.append(x)
    for block, level in enumerate(reversed(range(depth - 1))):
        x = conv_block(x, channels(base_channels, level), strides=2, norm=norm, up=True,
                       dropout=dropout if block < DROPOUT_BLOCKS else 0.0, activation=keras.layers.ReLU())
        x = keras.layers.Concatenate()([x, skips[level]])
    x = keras.layers.Conv2DTranspose(spec.channels, KERNEL, strides=2, padding="same", activation=activation,
                                     kernel_initializer=keras.initializers.RandomNormal(stddev=INIT_STDDEV))(x)

    if pad_h or pad_w:
        x = keras.layers.Cropping2D(margins)(x)
    low, high = map(float, spec.value_range)
    from_low, from_high = ACTIVATION_RANGES[activation]
    if (low, high) != (from_low, from_high):
        scale = (high - low) / (from_high - from_low)
        x = keras.layers.Rescaling(scale, offset=low - from_low * scale)(x)
    return keras.Model(condition, x, name="generator")
