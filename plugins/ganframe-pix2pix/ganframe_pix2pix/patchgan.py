"""The pix2pix discriminator (Isola et al. 2017, sec. 3.2.2): a PatchGAN that judges the image beside its condition.

The image and its condition (resized to the image's size where they differ) are concatenated on
channels; ``layers`` conv 4x4 stride 2 blocks follow (normalisation from the second on, LeakyReLU
0.2), one conv 4x4 stride 1 block, and a conv 4x4 to one channel: a map of logits, each judging
one patch of the image. Its receptive field, the patch, is 9·2^layers − 2 pixels: 16, 34, 70
(the paper's default) for 1, 2, 3 layers.

ganframe's contract wants one logit per image, so ``logit`` is the mean of the patch logits. A
loss on that mean differs from the mean of per-patch losses the authors' code trains with (the cross-entropy of the
average logit is not the average cross-entropy: one confident patch can outvote the others), so
the map itself is returned as the head ``patches`` (B, h, w, 1); the ``patchgan`` loss applies
the cross-entropy to each patch, as that code does.
"""

from __future__ import annotations

from typing import Any

from ganframe import DataSpec

from ganframe_pix2pix.layers import INIT_STDDEV, KERNEL, LEAKY_SLOPE, Norm, at_image_size, channels, conv_block


def receptive_field(layers: int) -> int:
    """Side of the patch one logit sees: two stride-1 4x4 convs see 7 pixels, each stride-2 one 2r + 2."""
    return 9 * 2**layers - 2


def build_discriminator(spec: DataSpec, *, layers: int, base_channels: int, norm: Norm) -> Any:
    """D: [image, condition] -> {"logit": (B, 1), the mean patch logit; "patches": (B, h, w, 1)}."""
    import keras

    image = keras.Input(spec.shape, name="image")
    condition = keras.Input(spec.condition_shape, name="condition")
    x = keras.layers.Concatenate()([image, at_image_size(condition, spec)])
    for level in range(layers + 1):  # the last block keeps the size (stride 1)
        x = conv_block(x, channels(base_channels, level), strides=2 if level < layers else 1,
                       norm=norm if level > 0 else "none", activation=keras.layers.LeakyReLU(LEAKY_SLOPE))
    patches = keras.layers.Conv2D(1, KERNEL, padding="same",
                                  kernel_initializer=keras.initializers.RandomNormal(stddev=INIT_STDDEV))(x)
    logit = keras.layers.GlobalAveragePooling2D()(patches)
    return keras.Model([image, condition], {"logit": logit, "patches": patches}, name="discriminator")
