"""The toy distributions in the plane, in numpy only: shared by the data sets, the metric and the plots.

``ring8`` and ``grid25`` are the mixtures of the mode-collapse experiments of
Metz et al. 2017 (Unrolled GAN) and Srivastava et al. 2017 (VEEGAN): 8 Gaussians
on a circle of radius 2 (std 0.02) and 25 on the grid {-4, -2, 0, 2, 4}² (std 0.05),
mixed in equal shares. ``swissroll`` is the 2-D swiss roll of the WGAN-GP toy
experiments (Gulrajani et al. 2017): scikit-learn's ``make_swiss_roll(noise=0.25)``
seen along its axis, divided by 7.5.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

LAYOUTS = ("ring8", "grid25", "swissroll")

#: Each data set's noise: the standard deviation of every mode (of the roll's thickness).
DEFAULT_STD = {"ring8": 0.02, "grid25": 0.05, "swissroll": 0.25 / 7.5}

#: The swiss roll's parameter t runs over [1.5π, 4.5π]; points are (t cos t, t sin t) / 7.5.
_ROLL_T = (1.5 * math.pi, 4.5 * math.pi)
_ROLL_SCALE = 7.5


def mode_centres(layout: str) -> np.ndarray:
    """The (K, 2) centres of a mixture's modes; swissroll is one curve and has none."""
    if layout == "ring8":
        angles = 2 * np.pi * np.arange(8) / 8
        return 2.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    if layout == "grid25":
        return np.array(list(itertools.product((-4.0, -2.0, 0.0, 2.0, 4.0), repeat=2)))
    raise ValueError(f"{layout!r} has no modes; only ring8 and grid25 do")


def value_range(layout: str, std: float) -> tuple[float, float]:
    """A square range that bounds the data: its noiseless extent plus max(1, 10·std) on each side.

    Ten standard deviations leave nothing to clip in practice, and the margin of at
    least 1 keeps the modes away from where G's tanh output saturates.
    """
    extent = {"ring8": 2.0, "grid25": 4.0, "swissroll": _ROLL_T[1] / _ROLL_SCALE}[layout]
    bound = extent + max(1.0, 10.0 * std)
    return (-bound, bound)


def sample_points(layout: str, n: int, std: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` float32 points (n, 2) of a toy distribution, clipped into :func:`value_range`."""
    if layout == "swissroll":
        t = rng.uniform(*_ROLL_T, size=n)
        points = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) / _ROLL_SCALE
    else:
        centres = mode_centres(layout)
        points = centres[rng.integers(0, len(centres), size=n)]
    points = points + std * rng.standard_normal((n, 2))
    low, high = value_range(layout, std)
    return np.clip(points, low, high).astype(np.float32)
