"""Paired data derived from any image data set: each example's condition made from its own image.

``[pairs]`` turns an unpaired set into the pairs that image-to-image GANs train on: G starts from
the condition (the image shrunk, masked, reduced to its edges or to gray) and the reconstruction
term compares G's output with the image. A derivation is one TensorFlow function of a float image
batch in the data's value range, so in-memory data (its conditions computed once, here) and a
source or a stream (each condition computed inside ``tf.data`` as its example is read) get the same
conditions. A run applies it once, right after building the data set, so training, sample grids,
evaluation, resume and a loaded run all see the same pairs.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import tensorflow as tf

from ganframe.config import PairsConfig
from ganframe.contract import DataSource, DataSpec, DataStream, ImageData
from ganframe.errors import ConfigError
from ganframe.examples import Data
from ganframe.pipeline import in_range

#: downscale's factor and back_to_size when the config gives none.
DEFAULT_FACTOR, DEFAULT_BACK_TO_SIZE = 4, True
#: Images per batch while the conditions of in-memory data are computed: memory stays a few batches.
BATCH = 256

#: Float images (B, H, W, C) in the data's value range -> their conditions (B, ...), float32 in that range.
Derive = Callable[[tf.Tensor], tf.Tensor]


def downscale(images: tf.Tensor, factor: int, back_to_size: bool) -> tf.Tensor:
    """Each image shrunk ``factor`` times, each pixel the mean of its block (an area average), and brought
    back to full size (bilinear) when ``back_to_size``: what super-resolution starts from."""
    small = tf.nn.avg_pool2d(images, factor, factor, "VALID")
    return tf.image.resize(small, images.shape[1:3], method="bilinear") if back_to_size else small


def mask(images: tf.Tensor, hole: int, value_range: tuple[float, float]) -> tf.Tensor:
    """The images with a centred ``hole`` x ``hole`` square set to the middle of the value range: one flat
    value, so G sees where the hole is (inpainting)."""
    height, width = images.shape[1:3]
    top, left = (height - hole) // 2, (width - hole) // 2
    inside = np.zeros((height, width, 1), bool)
    inside[top:top + hole, left:left + hole] = True
    return tf.where(inside, (value_range[0] + value_range[1]) / 2, images)


def edges(images: tf.Tensor, value_range: tuple[float, float]) -> tf.Tensor:
    """The Sobel gradient magnitude of each grayscale image, its strongest edge at the top of the value
    range and flat parts at the bottom (edges-to-image). One channel."""
    gray = images if images.shape[-1] == 1 else tf.image.rgb_to_grayscale(images)
    magnitude = tf.sqrt(tf.reduce_sum(tf.square(tf.image.sobel_edges(gray)), axis=-1))  # dy and dx
    peak = tf.reduce_max(magnitude, axis=(1, 2, 3), keepdims=True)
    low, high = value_range
    return low + (high - low) * tf.math.divide_no_nan(magnitude, peak)


def grayscale(images: tf.Tensor) -> tf.Tensor:
    """RGB images as one channel of luma (colourisation)."""
    return tf.image.rgb_to_grayscale(images)


def _either(values: list[int]) -> str:
    return ", ".join(map(str, values[:-1])) + f" or {values[-1]}" if len(values) > 1 else str(values[0])


def derivation(pairs: PairsConfig, spec: DataSpec, name: str = "data") -> tuple[Derive, tuple[int, ...]]:
    """The function ``pairs`` asks for on images of ``spec``, and the shape of one condition; a
    :class:`ConfigError` naming the field when the images do not allow it (``name``: the data set's)."""
    height, width, channels = spec.shape
    if pairs.derive == "downscale":
        factor = pairs.factor or DEFAULT_FACTOR
        back = DEFAULT_BACK_TO_SIZE if pairs.back_to_size is None else pairs.back_to_size
        if height % factor or width % factor:
            fitting = [k for k in range(2, min(height, width) + 1) if not height % k and not width % k]
            allowed = f"choose {_either(fitting)}" if fitting else "no factor does: resize the images first"
            raise ConfigError(f"config 'pairs.factor': got {factor}; it must divide the images' height and width "
                              f"({height}x{width} in data set {name!r}), so that its blocks tile them: {allowed}")
        shape = spec.shape if back else (height // factor, width // factor, channels)
        return functools.partial(downscale, factor=factor, back_to_size=back), shape
    if pairs.derive == "mask":
        hole = pairs.hole or max(1, min(height, width) // 2)
        if hole > min(height, width):
            raise ConfigError(f"config 'pairs.hole': got {hole}; the hole must fit in the images ({height}x{width} in "
                              f"data set {name!r}): at most {min(height, width)}")
        return functools.partial(mask, hole=hole, value_range=spec.value_range), spec.shape
    if pairs.derive == "edges":
        if channels not in (1, 3):
            raise ConfigError(f"config 'pairs.derive': got 'edges'; it needs grayscale or RGB images (1 or 3 channels), "
                              f"but data set {name!r} has {channels}: choose downscale or mask")
        return functools.partial(edges, value_range=spec.value_range), (height, width, 1)
    if channels != 3:
        raise ConfigError(f"config 'pairs.derive': got 'grayscale'; it makes gray conditions from RGB images, but data "
                          f"set {name!r} has {channels} channel(s): choose downscale, mask or edges")
    return grayscale, (height, width, 1)


@dataclass(frozen=True, eq=False)
class DerivedSource(DataSource):
    """A streaming source whose examples also carry the condition derived from their image, made as each
    example is read (inside ``tf.data``, in parallel); the image stays as the inner source gives it."""

    source: DataSource
    derive: Derive
    spec: DataSpec

    @property
    def name(self) -> str:
        return self.source.name

    @property
    def skip_unreadable(self) -> bool:
        return self.source.skip_unreadable

    def __len__(self) -> int:
        return len(self.source)

    def describe(self, index: int) -> str:
        return self.source.describe(index)

    def read(self, index: Any) -> dict[str, Any]:
        example = self.source.read(index)
        image = tf.ensure_shape(in_range(example["image"], self.spec.value_range), self.spec.shape)  # static H, W
        return {**example, "condition": tf.ensure_shape(self.derive(image[None])[0], self.spec.condition_shape)}


@dataclass(frozen=True, eq=False)
class DerivedStream(DataStream):
    """A stream whose examples also carry the condition derived from their image, made as each example is read."""

    stream: DataStream
    derive: Derive
    spec: DataSpec

    @property
    def name(self) -> str:
        return self.stream.name

    @property
    def size(self) -> int | None:
        return self.stream.size

    @property
    def shuffle_buffer(self) -> int:
        return self.stream.shuffle_buffer

    def count(self) -> int | None:
        return self.stream.count()

    def examples(self, worker: int, workers: int) -> tf.data.Dataset:
        def paired(example: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
            image = tf.ensure_shape(in_range(example["image"], self.spec.value_range), self.spec.shape)
            return {**example, "condition": tf.ensure_shape(self.derive(image[None])[0], self.spec.condition_shape)}

        return self.stream.examples(worker, workers).map(paired, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def derive_conditions(images: np.ndarray, pairs: PairsConfig, spec: DataSpec) -> np.ndarray:
    """The conditions ``pairs`` makes from ``images`` of ``spec`` (uint8, or floats in its value range), a batch
    at a time."""
    derive, _ = derivation(pairs, spec)
    return np.concatenate([derive(in_range(tf.constant(images[start:start + BATCH]), spec.value_range)).numpy()
                           for start in range(0, len(images), BATCH)]).astype(np.float32, copy=False)


def derive_pairs(data: Data, pairs: PairsConfig) -> Data:
    """``data`` with each example paired with the condition ``pairs`` derives from its image.

    In memory, the conditions are computed once, a batch at a time (they cost what the images cost as
    floats, or a factor² less when downscaled and not brought back); a source or a stream is wrapped,
    its conditions made as it is read. Data that already has conditions is refused: there would be two pairings.
    """
    if data.spec.condition_shape is not None:
        raise ConfigError(f"config 'pairs': data set {data.name!r} already pairs each image with a condition (of shape "
                          f"{data.spec.condition_shape}); remove [pairs] (or --pairs) to train on its own pairs")
    derive, shape = derivation(pairs, data.spec, data.name)
    spec = dataclasses.replace(data.spec, condition_shape=shape)
    if isinstance(data, DataSource):
        return DerivedSource(data, derive, spec)
    if isinstance(data, DataStream):
        return DerivedStream(data, derive, spec)
    return ImageData(data.images, data.labels, spec, data.name, derive_conditions(data.images, pairs, data.spec))
