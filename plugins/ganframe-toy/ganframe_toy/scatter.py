"""Callback ``scatter``: generated points over the real ones, one PNG per interval (``scatter/``).

The callback context carries no data, so the reference points come from the
option ``data``, drawn by this package's own code. Drawn with Pillow and numpy;
Keras is only imported by the factory, through :mod:`ganframe_toy.scatter_callback`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from pydantic import Field, field_validator

from ganframe import CallbackContext, ConfigError, Options

from ganframe_toy.data import DEFAULT_STD, LAYOUTS, sample_points

BACKGROUND = (255, 255, 255)
AXES = (225, 225, 225)
REAL = (150, 170, 230)
FAKE = (200, 30, 30)
TEXT = (60, 60, 60)


class ScatterOptions(Options):
    """Options of ``scatter``."""

    every: int = Field(1000, ge=0, description="steps between plots (and at the end); 0 switches them off")
    n: int = Field(1000, ge=1, le=100_000, description="generated points per plot (and as many real ones)")
    data: str | None = Field(None, description="toy data set drawn underneath: ring8, grid25 or swissroll; unset: none")
    std: float | None = Field(None, gt=0, description="that data set's std; default: its default")
    seed: int | None = Field(None, ge=0, description="noise seed of the fixed points; default: the run's seed")
    size: int = Field(480, ge=64, le=4096, description="side of the square PNG in pixels")

    @field_validator("data")
    @classmethod
    def _known_data(cls, data: str | None) -> str | None:
        if data is not None and data not in LAYOUTS:
            raise ValueError(f"unknown toy data set; use one of {', '.join(LAYOUTS)}")
        return data


def draw_scatter(fake: np.ndarray, real: np.ndarray | None, value_range: tuple[float, float], size: int = 480,
                 title: str = "") -> Image.Image:
    """An RGB plot of the square ``value_range``: axes, real points (blue), generated points (red) on top.

    Real dots are larger, so a mode that G covers shows as a red core in a blue halo.
    """
    low, high = value_range
    pixels = np.full((size, size, 3), BACKGROUND, np.uint8)

    def to_pixels(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        xy = np.asarray(points, np.float64).reshape(len(points), 2)
        xy = xy[np.isfinite(xy).all(axis=1)]
        cols = np.round((xy[:, 0] - low) / (high - low) * (size - 1)).astype(int)
        rows = np.round((high - xy[:, 1]) / (high - low) * (size - 1)).astype(int)  # y grows upwards
        return rows, cols

    zero_row, zero_col = (int(v[0]) for v in to_pixels(np.zeros((1, 2))))
    if 0 <= zero_row < size:
        pixels[zero_row, :] = AXES
    if 0 <= zero_col < size:
        pixels[:, zero_col] = AXES
    for points, colour, radius in ((real, REAL, 2), (fake, FAKE, 1)):  # real 5x5 under generated 3x3 dots
        if points is None:
            continue
        rows, cols = to_pixels(points)
        for dr in range(-radius, radius + 1):
            for dc in range(-radius, radius + 1):
                r, c = rows + dr, cols + dc
                inside = (r >= 0) & (r < size) & (c >= 0) & (c < size)
                pixels[r[inside], c[inside]] = colour
    picture = Image.fromarray(pixels)
    if title:
        ImageDraw.Draw(picture).text((6, 4), title, fill=TEXT)
    return picture


def build_scatter(context: CallbackContext, options: ScatterOptions) -> Any:
    """The Keras callback; refuses data that are not 2-D points."""
    if context.spec.size != 2:
        raise ConfigError(
            f"callback 'scatter' plots 2-D points (data of shape (1, 1, 2)); the data is "
            f"{context.spec.height}x{context.spec.width}x{context.spec.channels}"
        )
    from ganframe_toy.scatter_callback import ScatterPlot

    seed = context.seed if options.seed is None else options.seed
    real = None
    if options.data is not None:
        std = DEFAULT_STD[options.data] if options.std is None else options.std
        real = sample_points(options.data, options.n, std, np.random.default_rng(seed))
    return ScatterPlot(context.run_dir / "scatter", options.every, options.n, seed, real,
                       context.spec.value_range, options.size)
