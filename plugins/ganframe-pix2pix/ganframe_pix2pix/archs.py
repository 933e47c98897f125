"""Architecture ``unet``: pix2pix's U-Net generator and PatchGAN discriminator (Isola et al. 2017) for paired data.

G takes the condition alone (``latent_dim = 0``: dropout is its noise), D the image and the
condition; both need a data spec with an image ``condition_shape``. How deep each network is
follows the image size unless the options say (:func:`encoder_depth`, :func:`patch_layers`), and
G's output activation follows the data's value range (:func:`output_activation`).
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field

from ganframe import ConfigError, DataSpec, Networks, Options

from ganframe_pix2pix.layers import Norm
from ganframe_pix2pix.patchgan import build_discriminator, receptive_field
from ganframe_pix2pix.unet import ACTIVATION_RANGES, build_generator

#: The default U-Net halves until its bottleneck is at most this many pixels a side (256 -> 8 in 5 levels).
BOTTLENECK = 8
#: D's stride-2 layers by default: the paper's 70x70 PatchGAN.
PATCH_LAYERS = 3


class UNetOptions(Options):
    """Options of ``unet``."""

    base_channels: int = Field(64, gt=0, description="Channels of G's first encoder block and of D's first block; "
                               "doubled per halving up to 8x (the paper's 64).")
    depth: int | None = Field(None, ge=1, le=16, description="Halvings in G's encoder; default: until the bottleneck "
                              "is at most 8x8 (256 -> 5, 28 -> 2, 8 -> 1); the paper's 1x1 at 256 is 8.")
    patch_layers: int | None = Field(None, ge=1, le=8, description="Stride-2 layers in D, which set its patch: 1, 2, "
                                     "3 -> 16, 34, 70 pixels; default: 3, fewer while the patch exceeds the image.")
    norm: Norm = Field("batch", description="Normalisation in G and D: batch (the paper's), instance or none.")
    dropout: float = Field(0.5, ge=0.0, lt=1.0, description="Dropout in G's first three decoder blocks, its noise "
                           "(in training only; 0 disables).")
    output_activation: Literal["sigmoid", "tanh"] | None = Field(
        None, description="G's last activation; default: sigmoid for data in [0, 1], tanh for [-1, 1], tanh "
        "rescaled onto any other range.")


def encoder_depth(spec: DataSpec, depth: int | None) -> int:
    """G's halvings: ``depth``, else until the larger side is at most :data:`BOTTLENECK`, at least one.

    A depth whose bottleneck would be under one pixel, even with the image padded to a power of two,
    is refused.
    """
    side = max(spec.height, spec.width)
    deepest = math.ceil(math.log2(side))
    if depth is None:
        return max(1, math.ceil(math.log2(side / BOTTLENECK)))
    if depth > deepest:
        raise ConfigError(f"architecture 'unet' option 'depth': got {depth}; {spec.height}x{spec.width} images can be "
                          f"halved at most {deepest} times (to 1x1): choose 1 to {deepest}, or leave it out")
    return depth


def patch_layers(spec: DataSpec, layers: int | None) -> int:
    """D's stride-2 layers: ``layers``, else :data:`PATCH_LAYERS`, fewer while the patch exceeds the image, at least one."""
    if layers is not None:
        return layers
    fitting = [n for n in range(1, PATCH_LAYERS + 1) if receptive_field(n) <= min(spec.height, spec.width)]
    return max(fitting, default=1)


def output_activation(spec: DataSpec, chosen: str | None) -> str:
    """The activation whose range is the data's (sigmoid for [0, 1], else tanh, rescaled where needed)."""
    value_range = tuple(map(float, spec.value_range))
    if chosen is None:
        return "sigmoid" if value_range == ACTIVATION_RANGES["sigmoid"] else "tanh"
    if ACTIVATION_RANGES[chosen] != value_range:
        low, high = ACTIVATION_RANGES[chosen]
        raise ConfigError(f"architecture 'unet' option 'output_activation': {chosen!r} maps into [{low:g}, {high:g}], "
                          f"but the data lies in [{value_range[0]:g}, {value_range[1]:g}]: leave the option out, and "
                          "the activation follows the data's range")
    return chosen


def check_paired(spec: DataSpec) -> None:
    """Refuse data without image conditions, saying how to pair it."""
    if spec.condition_shape is None:
        raise ConfigError(
            "architecture 'unet' translates each example's condition into its image (pix2pix), but the data set "
            "pairs its images with no condition: use paired data, derived with [pairs] (derive = \"downscale\", "
            "\"mask\", \"edges\" or \"grayscale\"; --pairs NAME) or read from a paired folder (data = \"folder\" "
            "with side_by_side or conditions)")
    if len(spec.condition_shape) != 3:
        raise ConfigError(f"architecture 'unet' translates images, but the data's conditions have shape "
                          f"{tuple(spec.condition_shape)}: it needs image conditions (height, width, channels)")


def build_unet(spec: DataSpec, options: UNetOptions) -> Networks:
    """pix2pix's networks for ``spec``: G maps a condition to an image in the data's range, D judges patches."""
    check_paired(spec)
    activation = output_activation(spec, options.output_activation)
    generator = build_generator(spec, depth=encoder_depth(spec, options.depth), base_channels=options.base_channels,
                                norm=options.norm, dropout=options.dropout, activation=activation)
    discriminator = build_discriminator(spec, layers=patch_layers(spec, options.patch_layers),
                                        base_channels=options.base_channels, norm=options.norm)
    return Networks(generator, discriminator, latent_dim=0, output_range=tuple(map(float, spec.value_range)),
                    takes_condition=True)
