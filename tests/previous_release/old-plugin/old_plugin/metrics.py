"""Metric "old-plugin-pixel-gap": how far the generated images' per-pixel mean and spread are from the real ones'.

A cheap sanity score, not a measure of image quality like FID: it catches a generator that gets
the brightness or layout wrong or collapses to a few images, but it cannot tell a digit from a blob.
"""

import numpy as np

from ganframe import DataSpec, Metric, NoOptions


class PixelGap(Metric):
    higher_is_better = False  # a distance: 0 when both sets have the same per-pixel statistics

    def compute(self, real: np.ndarray, fake: np.ndarray) -> dict[str, float]:
        return {
            "mean_gap": float(np.abs(real.mean(axis=0) - fake.mean(axis=0)).mean()),
            "std_gap": float(np.abs(real.std(axis=0) - fake.std(axis=0)).mean()),
        }


def build_pixel_gap(spec: DataSpec, options: NoOptions) -> PixelGap:
    return PixelGap()
