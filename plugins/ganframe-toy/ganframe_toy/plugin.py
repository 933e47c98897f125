"""The ganframe plugin of ganframe-toy: registers the toy data sets, ``mlp``, ``modes`` and ``scatter``.

Plugins import only the public ganframe API; nothing imported here loads
TensorFlow or Keras, so listing plugins stays fast.
"""

from typing import Any

import ganframe
from ganframe import hookimpl

from ganframe_toy.archs import MLPOptions, build_mlp
from ganframe_toy.datasets import (
    Grid25Options,
    Ring8Options,
    SwissRollOptions,
    load_grid25,
    load_ring8,
    load_swissroll,
)
from ganframe_toy.metrics import ModesOptions, build_modes
from ganframe_toy.scatter import ScatterOptions, build_scatter

if ganframe.CONTRACT_VERSION.split(".")[0] != "1":
    raise ImportError(
        f"ganframe-toy needs ganframe plugin contract 1.x, "
        f"but the installed ganframe has contract {ganframe.CONTRACT_VERSION}"
    )


@hookimpl
def ganframe_register_datasets(register: Any) -> None:
    register("ring8", load_ring8, "8 Gaussians on a circle of radius 2, std 0.02: 2-D points (ganframe-toy).",
             Ring8Options)
    register("grid25", load_grid25, "25 Gaussians on a 5x5 grid at -4..4, std 0.05: 2-D points (ganframe-toy).",
             Grid25Options)
    register("swissroll", load_swissroll, "The 2-D swiss roll of the WGAN-GP toy experiments (ganframe-toy).",
             SwissRollOptions)


@hookimpl
def ganframe_register_architectures(register: Any) -> None:
    register("mlp", build_mlp, "Small MLP G and D for 2-D points such as ring8 (ganframe-toy).", MLPOptions)


@hookimpl
def ganframe_register_metrics(register: Any) -> None:
    register("modes", build_modes, "Modes of ring8/grid25 covered, share of high-quality samples (ganframe-toy).",
             ModesOptions)


@hookimpl
def ganframe_register_callbacks(register: Any) -> None:
    register("scatter", build_scatter, "Generated over real 2-D points as a PNG every N steps (scatter/) (ganframe-toy).",
             ScatterOptions)
