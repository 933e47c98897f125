"""Dataset "old-gan-shapes": random bars on a small canvas, generated in memory (no files)."""

import numpy as np
from pydantic import Field

from ganframe import DataContext, DataSpec, ImageData, Options


class ShapesOptions(Options):
    count: int = Field(2048, gt=0, description="number of images")
    size: int = Field(8, ge=4, le=64, description="height and width in pixels")


def load_shapes(context: DataContext, options: ShapesOptions) -> ImageData:
    """Each image is one horizontal (label 0) or vertical (label 1) bar; replace this with your data."""
    rng = np.random.default_rng(context.seed)
    images = np.zeros((options.count, options.size, options.size, 1), np.float32)
    labels = rng.integers(0, 2, options.count).astype(np.int32)
    positions = rng.integers(0, options.size, options.count)
    for index, (label, position) in enumerate(zip(labels, positions)):
        if label == 0:
            images[index, position, :, 0] = 1.0
        else:
            images[index, :, position, 0] = 1.0
    spec = DataSpec((options.size, options.size, 1), (0.0, 1.0), num_classes=2)
    return ImageData(images, labels, spec, name="old-gan-shapes")
