"""Metric ``modes``: how many modes of ring8 / grid25 the samples cover, and how many samples are good.

The convention of the mode-collapse papers (Srivastava et al. 2017, VEEGAN;
Lin et al. 2018, PacGAN, whose reference code this follows): each generated point
is assigned to its nearest mode; it is *high quality* if it lies within 3 standard
deviations of that mode; a mode is *covered* if at least one high-quality point is
assigned to it (``min_count``; raise it to ignore stray points). The modes are
known in closed form, so the real points handed to ``compute`` are not needed.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field, field_validator

from ganframe import ConfigError, DataError, DataSpec, Metric, Options

from ganframe_toy.data import DEFAULT_STD, mode_centres

MODE_LAYOUTS = ("ring8", "grid25")


class ModesOptions(Options):
    """Options of ``modes``."""

    layout: str = Field("ring8", description="whose modes to count: ring8 or grid25")
    std: float | None = Field(None, gt=0, description="the modes' std; default: the data set's (ring8 0.02, grid25 0.05)")
    threshold: float = Field(3.0, gt=0, description="a sample is high quality within this many std of its nearest mode")
    min_count: int = Field(1, ge=1, description="high-quality samples a mode needs to count as covered")

    @field_validator("layout")
    @classmethod
    def _has_modes(cls, layout: str) -> str:
        if layout == "swissroll":
            raise ValueError("swissroll is one continuous curve and has no modes to count; use ring8 or grid25")
        if layout not in MODE_LAYOUTS:
            raise ValueError("unknown layout; use ring8 or grid25")
        return layout


class ModeCoverage(Metric):
    """Modes covered and the fraction of high-quality samples; both higher is better."""

    higher_is_better = True

    def __init__(self, centres: np.ndarray, std: float, threshold: float = 3.0, min_count: int = 1) -> None:
        self.centres = np.asarray(centres, np.float64)
        self.radius = threshold * std
        self.min_count = min_count

    def compute(self, real: np.ndarray, fake: np.ndarray) -> dict[str, float]:
        """``{"modes_covered": k, "high_quality": fraction}`` for points (N, 1, 1, 2) or (N, 2)."""
        points = np.asarray(fake, np.float64)
        if points.ndim < 2 or points.shape[0] == 0 or points[0].size != 2:
            raise DataError(f"metric 'modes' scores 2-D points, shape (N, 1, 1, 2) or (N, 2); got {points.shape}")
        points = points.reshape(len(points), 2)
        squared = ((points[:, None, :] - self.centres[None, :, :]) ** 2).sum(axis=2)
        nearest = squared.argmin(axis=1)
        good = np.sqrt(squared[np.arange(len(points)), nearest]) <= self.radius  # NaN points are never good
        counts = np.bincount(nearest[good], minlength=len(self.centres))
        return {"modes_covered": float((counts >= self.min_count).sum()), "high_quality": float(good.mean())}


def build_modes(spec: DataSpec, options: ModesOptions) -> ModeCoverage:
    if spec.size != 2:
        raise ConfigError(
            f"metric 'modes' scores 2-D points (data of shape (1, 1, 2), e.g. ring8 or grid25); "
            f"the data is {spec.height}x{spec.width}x{spec.channels}"
        )
    std = DEFAULT_STD[options.layout] if options.std is None else options.std
    return ModeCoverage(mode_centres(options.layout), std, options.threshold, options.min_count)
