"""Augmentation ``diffaugment``: DiffAugment (Zhao et al. 2020, arXiv:2006.10738).

"Differentiable Augmentation for Data-Efficient GAN Training" applies the same
random, differentiable transforms to real and fake images before the
discriminator sees them, in both the D and the G step (which is what ganframe's
engine does with every augmentation). D then cannot memorise a small training
set, and G still gets gradients through the transforms.

Three policies, applied in the order given in ``policy``:

``color``
    per image: brightness shift, saturation ×[0, 2] (around the per-pixel channel
    mean; a no-op on 1-channel images) and contrast ×[0.5, 1.5] (around the image
    mean). The paper works on [-1, 1] data and shifts brightness by U(-0.5, 0.5);
    here the shift is scaled to the data's ``value_range``: U(-0.5, 0.5)·(high-low)/2,
    i.e. the same fraction of the range.
``translation``
    per image, an integer shift of up to ``round(translation_ratio·size)`` pixels
    along each axis, zero padded. Implemented as two batched matrix products with
    one-hot shift matrices, so it is exactly differentiable w.r.t. the images and
    needs no gather.
``cutout``
    per image, a square of ``round(cutout_ratio·size)`` pixels set to zero through
    a mask; its centre is uniform over the image, so the square may be clipped at
    the border (as in the paper's reference code): on average a bit less than
    cutout_ratio² of the area is erased.

All ops are ``keras.ops`` and ``keras.random`` with the engine's ``SeedGenerator``;
they trace and compile under XLA.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from ganframe import Augmentation, DataSpec, Options

POLICIES = ("color", "translation", "cutout")


class DiffAugmentOptions(Options):
    """Options of ``diffaugment``."""

    policy: str = Field(
        "color,translation,cutout",
        description="comma-separated transforms, applied in this order: any of color, translation, cutout",
    )
    translation_ratio: float = Field(0.125, ge=0.0, le=0.5, description="largest shift, as a fraction of the image size")
    cutout_ratio: float = Field(0.5, ge=0.0, le=1.0, description="side of the erased square, as a fraction of the image size")

    @field_validator("policy")
    @classmethod
    def _known_policies(cls, policy: str) -> str:
        names = [name.strip() for name in policy.split(",")]
        if not any(names):
            raise ValueError(f"give at least one of {', '.join(POLICIES)} (comma-separated)")
        unknown = [name for name in names if name not in POLICIES]
        if unknown:
            raise ValueError(
                f"unknown DiffAugment polic{'y' if len(unknown) == 1 else 'ies'} "
                f"{', '.join(repr(name) for name in unknown)}; use a comma-separated subset of {', '.join(POLICIES)}"
            )
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"{', '.join(repr(name) for name in repeated)} given more than once")
        return ",".join(names)


class DiffAugment(Augmentation):
    """The DiffAugment transforms for one data spec; call as ``augment(images, seed_generator)``."""

    def __init__(
        self,
        spec: DataSpec,
        policy: str = "color,translation,cutout",
        translation_ratio: float = 0.125,
        cutout_ratio: float = 0.5,
    ) -> None:
        self.spec = spec
        self.policies = tuple(DiffAugmentOptions(policy=policy).policy.split(","))
        self.translation_ratio = translation_ratio
        self.cutout_ratio = cutout_ratio
        low, high = spec.value_range
        self.brightness = 0.5 * (high - low) / 2.0  # the paper's ±0.5 on [-1, 1], as a fraction of the range

    def __call__(self, images: Any, seed: Any) -> Any:
        import keras

        images = keras.ops.convert_to_tensor(images)
        for name in self.policies:
            images = getattr(self, f"_{name}")(images, seed)
        return images

    # -- the transforms -----------------------------------------------------------------------

    @staticmethod
    def _uniform(images: Any, seed: Any, shape: tuple, low: float = 0.0, high: float = 1.0) -> Any:
        import keras

        n = keras.ops.shape(images)[0]
        return keras.random.uniform((n, *shape), low, high, dtype=images.dtype, seed=seed)

    def _color(self, images: Any, seed: Any) -> Any:
        from keras import ops

        # brightness: x + U(-b, b)
        images = images + self._uniform(images, seed, (1, 1, 1), -self.brightness, self.brightness)
        # saturation: scale each pixel's distance from its channel mean by U(0, 2)
        if images.shape[-1] > 1:
            mean = ops.mean(images, axis=3, keepdims=True)
            images = (images - mean) * self._uniform(images, seed, (1, 1, 1), 0.0, 2.0) + mean
        # contrast: scale the distance from the image mean by U(0.5, 1.5)
        mean = ops.mean(images, axis=(1, 2, 3), keepdims=True)
        return (images - mean) * self._uniform(images, seed, (1, 1, 1), 0.5, 1.5) + mean

    def _translation(self, images: Any, seed: Any) -> Any:
        import keras
        from keras import ops

        height, width = images.shape[1], images.shape[2]
        n = ops.shape(images)[0]
        max_y = int(height * self.translation_ratio + 0.5)
        max_x = int(width * self.translation_ratio + 0.5)
        if max_y == 0 and max_x == 0:
            return images
        shift_y = keras.random.randint((n, 1, 1), -max_y, max_y + 1, seed=seed)
        shift_x = keras.random.randint((n, 1, 1), -max_x, max_x + 1, seed=seed)

        def shift_matrix(size: int, shift: Any) -> Any:
            # M[n, i, j] = 1 where output row i takes input row j = i - shift[n]; rows from outside stay 0
            rows = ops.reshape(ops.arange(size, dtype="int32"), (1, size, 1))
            cols = ops.reshape(ops.arange(size, dtype="int32"), (1, 1, size))
            return ops.cast(ops.equal(cols, rows - ops.cast(shift, "int32")), images.dtype)

        images = ops.einsum("nij,njwc->niwc", shift_matrix(height, shift_y), images)
        return ops.einsum("nij,nhjc->nhic", shift_matrix(width, shift_x), images)

    def _cutout(self, images: Any, seed: Any) -> Any:
        import keras
        from keras import ops

        height, width = images.shape[1], images.shape[2]
        n = ops.shape(images)[0]
        size_y = int(height * self.cutout_ratio + 0.5)
        size_x = int(width * self.cutout_ratio + 0.5)
        if size_y == 0 or size_x == 0:
            return images
        # the square's centre, as in the reference code: uniform over [0, size + (1 - cut % 2))
        centre_y = keras.random.randint((n, 1, 1, 1), 0, height + (1 - size_y % 2), seed=seed)
        centre_x = keras.random.randint((n, 1, 1, 1), 0, width + (1 - size_x % 2), seed=seed)
        top = centre_y - size_y // 2
        left = centre_x - size_x // 2
        rows = ops.reshape(ops.arange(height, dtype="int32"), (1, height, 1, 1))
        cols = ops.reshape(ops.arange(width, dtype="int32"), (1, 1, width, 1))
        inside = ops.logical_and(
            ops.logical_and(rows >= top, rows < top + size_y),
            ops.logical_and(cols >= left, cols < left + size_x),
        )
        return images * ops.cast(ops.logical_not(inside), images.dtype)


def build_diffaugment(spec: DataSpec, options: DiffAugmentOptions) -> DiffAugment:
    return DiffAugment(spec, options.policy, options.translation_ratio, options.cutout_ratio)
