"""Feature extractor "old-plugin-pool": each image average-pooled to a small grid, flattened.

No learned weights: features that compare coarse layout rather than single pixels. For perceptual
metrics, replace it with a pretrained network and set ``weights_hash`` to name its weights.
"""

import numpy as np
from pydantic import Field

from ganframe import ConfigError, DataSpec, FeatureExtractor, Options


class PoolOptions(Options):
    grid: int = Field(4, gt=0, description="cells per side of the pooled grid")


class GridPool(FeatureExtractor):
    weights_hash = None  # no weights

    def __init__(self, spec: DataSpec, grid: int) -> None:
        # cell edges: cell (i, j) spans rows[i]:rows[i + 1] and cols[j]:cols[j + 1], at least one pixel each
        self.rows = np.linspace(0, spec.height, grid + 1).astype(int)
        self.cols = np.linspace(0, spec.width, grid + 1).astype(int)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images, np.float32)
        cells = [
            images[:, top:bottom, left:right].mean(axis=(1, 2))
            for top, bottom in zip(self.rows, self.rows[1:])
            for left, right in zip(self.cols, self.cols[1:])
        ]
        return np.stack(cells, axis=1).reshape(len(images), -1)  # (N, grid * grid * channels)


def build_pool(spec: DataSpec, options: PoolOptions) -> GridPool:
    if options.grid > min(spec.height, spec.width):
        raise ConfigError(
            f"old-plugin-pool: grid {options.grid} is larger than the images ({spec.height}x{spec.width})"
        )
    return GridPool(spec, options.grid)
