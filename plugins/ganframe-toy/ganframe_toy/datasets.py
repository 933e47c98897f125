"""Data sets ``ring8``, ``grid25`` and ``swissroll``: 2-D points as (1, 1, 2) "images".

The points are drawn once when the run starts, seeded by the run's seed, so a
seeded run is reproducible. Each point is an image of one pixel with two
channels, the shape every ganframe component understands.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from ganframe import DataContext, DataSpec, ImageData, Options

from ganframe_toy.data import DEFAULT_STD, sample_points, value_range

#: What a toy point looks like to ganframe: one pixel, two channels (x, y).
POINT_SHAPE = (1, 1, 2)


class _ToyOptions(Options):
    n: int = Field(10_000, gt=0, le=10_000_000, description="points drawn once, seeded by the run's seed")


class Ring8Options(_ToyOptions):
    std: float = Field(DEFAULT_STD["ring8"], gt=0, description="standard deviation of each of the 8 Gaussians")


class Grid25Options(_ToyOptions):
    std: float = Field(DEFAULT_STD["grid25"], gt=0, description="standard deviation of each of the 25 Gaussians")


class SwissRollOptions(_ToyOptions):
    std: float = Field(DEFAULT_STD["swissroll"], gt=0, description="Gaussian noise added to the roll (its thickness)")


def toy_data(layout: str, context: DataContext, n: int, std: float) -> ImageData:
    """``n`` points of ``layout`` as ImageData, with a value range wide enough to hold them."""
    points = sample_points(layout, n, std, np.random.default_rng(context.seed))
    spec = DataSpec(POINT_SHAPE, value_range(layout, std))
    return ImageData(points.reshape(n, *POINT_SHAPE), None, spec, name=layout)


def load_ring8(context: DataContext, options: Ring8Options) -> ImageData:
    return toy_data("ring8", context, options.n, options.std)


def load_grid25(context: DataContext, options: Grid25Options) -> ImageData:
    return toy_data("grid25", context, options.n, options.std)


def load_swissroll(context: DataContext, options: SwissRollOptions) -> ImageData:
    return toy_data("swissroll", context, options.n, options.std)
