"""Metrics ``l1``, ``psnr`` and ``ssim``: G's outputs against their own targets, pair by pair.

They score aligned pairs: ``fake[i]`` is G's output for the condition of ``real[i]``, which is
what ganframe's evaluation hands a metric in a run whose generator takes conditions (and
``ganframe evaluate`` of such a run). On unpaired samples the numbers mean nothing. Each is the
mean over images of a per-image score, computed in the data's value range: PSNR and SSIM take
its width as the peak value, and SSIM sees the images shifted to start at 0, as its luminance
term assumes. Three components rather than one because a metric has one direction
(``higher_is_better``): L1 falls as G improves, PSNR and SSIM rise.

PSNR and SSIM are TensorFlow's (``tf.image.psnr``, ``tf.image.ssim``), imported when a score is
computed: listing plugins stays TensorFlow-free.
"""

from __future__ import annotations

import abc
from typing import Any

import numpy as np
from pydantic import Field

from ganframe import ConfigError, DataError, DataSpec, Metric, NoOptions, Options

#: Image pairs per TensorFlow call: memory stays a few batches of images whatever the sample count.
BATCH = 256
#: SSIM's window side in the paper that defines it (Wang et al. 2004), used when the images allow.
SSIM_WINDOW = 11


class PSNROptions(Options):
    """Options of ``psnr``."""

    max_db: float = Field(100.0, gt=0.0, description="Cap of each image's PSNR, in dB: an exact copy's is infinite.")


class SSIMOptions(Options):
    """Options of ``ssim``."""

    filter_size: int | None = Field(None, ge=1, description="Side of SSIM's Gaussian window; default 11, or the "
                                    "images' smaller side when smaller (8 on 8x8 images).")
    filter_sigma: float = Field(1.5, gt=0.0, description="Standard deviation of the window's Gaussian.")


class PairedMetric(Metric):
    """The mean over pairs of :meth:`per_image`, named :attr:`key`, on aligned (target, output) pairs."""

    key = ""

    def __init__(self, spec: DataSpec, options: Options) -> None:
        self.low, self.high = map(float, spec.value_range)
        self.options = options

    @abc.abstractmethod
    def per_image(self, real: np.ndarray, fake: np.ndarray) -> Any:
        """One score per pair of a batch, (B,)."""

    def compute(self, real: np.ndarray, fake: np.ndarray) -> dict[str, float]:
        real, fake = np.asarray(real, np.float32), np.asarray(fake, np.float32)
        if real.shape != fake.shape or real.ndim != 4 or not len(real):
            raise DataError(f"metric {self.key!r} compares each output with its own target: it needs two equally "
                            f"many images of one shape (N, H, W, C), got {real.shape} and {fake.shape}")
        scores = [np.asarray(self.per_image(real[start:start + BATCH], fake[start:start + BATCH]), np.float64)
                  for start in range(0, len(real), BATCH)]
        return {self.key: float(np.concatenate(scores).mean())}

    def protocol(self) -> dict[str, Any]:
        """What the score depends on, for ``evaluations.json`` and ``scores.json``."""
        return {"pairs": "fake[i] is G's output for the condition of real[i]", "value_range": [self.low, self.high],
                "options": self.options.model_dump(mode="json"), "higher_is_better": self.higher_is_better}


class L1(PairedMetric):
    """Mean absolute error between output and target, in the data's units."""

    key = "l1"

    def per_image(self, real: np.ndarray, fake: np.ndarray) -> np.ndarray:
        return np.abs(real.astype(np.float64) - fake).mean(axis=(1, 2, 3))


class PSNR(PairedMetric):
    """Peak signal-to-noise ratio, 10·log10(width² / MSE) dB per image, capped at ``max_db``."""

    key = "psnr"
    higher_is_better = True

    def per_image(self, real: np.ndarray, fake: np.ndarray) -> Any:
        import tensorflow as tf

        return tf.minimum(tf.image.psnr(real, fake, max_val=self.high - self.low), self.options.max_db)


class SSIM(PairedMetric):
    """Structural similarity (Wang et al. 2004) per image, averaged over channels; 1 for identical images."""

    key = "ssim"
    higher_is_better = True

    def __init__(self, spec: DataSpec, options: SSIMOptions) -> None:
        super().__init__(spec, options)
        smaller = min(spec.height, spec.width)
        self.filter_size = min(SSIM_WINDOW, smaller) if options.filter_size is None else options.filter_size
        if self.filter_size > smaller:
            raise ConfigError(f"metric 'ssim' option 'filter_size': got {options.filter_size}; the window must fit in "
                              f"the {spec.height}x{spec.width} images: at most {smaller}")

    def per_image(self, real: np.ndarray, fake: np.ndarray) -> Any:
        import tensorflow as tf

        return tf.image.ssim(real - self.low, fake - self.low, max_val=self.high - self.low,
                             filter_size=self.filter_size, filter_sigma=self.options.filter_sigma)

    def protocol(self) -> dict[str, Any]:
        return {**super().protocol(), "filter_size": self.filter_size}


def build_l1(spec: DataSpec, options: NoOptions) -> L1:
    return L1(spec, options)


def build_psnr(spec: DataSpec, options: PSNROptions) -> PSNR:
    return PSNR(spec, options)


def build_ssim(spec: DataSpec, options: SSIMOptions) -> SSIM:
    return SSIM(spec, options)
