"""Image grids that a practitioner can look at (PNG through Pillow)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from PIL import Image

from ganframe.errors import DataError
from ganframe.files import atomic_write


def to_uint8(images: np.ndarray, value_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """Map images from ``value_range`` to 0..255, clipping what lies outside."""
    low, high = value_range
    scaled = (np.asarray(images, dtype=np.float32) - low) / (high - low)
    return np.clip(np.rint(scaled * 255.0), 0, 255).astype(np.uint8)


def rescale(images: np.ndarray, source: tuple[float, float], target: tuple[float, float]) -> np.ndarray:
    """Images mapped linearly from one value range to another (a run trained on [-1, 1] data against [0, 1] data)."""
    if tuple(map(float, source)) == tuple(map(float, target)):
        return images
    unit = (images - source[0]) / (source[1] - source[0])
    return (target[0] + unit * (target[1] - target[0])).astype(np.float32)


def image_grid(images: np.ndarray, value_range: tuple[float, float] = (0.0, 1.0), columns: int | None = None,
               padding: int = 2) -> np.ndarray:
    """Tile (N, H, W, C) images into one (rows, columns) uint8 picture with a dark border."""
    if images.ndim != 4:
        raise ValueError(f"images must be (N, H, W, C), got shape {images.shape}")
    count, height, width, channels = images.shape
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    grid = np.zeros((rows * (height + padding) + padding, columns * (width + padding) + padding, channels), np.uint8)
    for index, image in enumerate(to_uint8(images, value_range)):
        top = padding + (index // columns) * (height + padding)
        left = padding + (index % columns) * (width + padding)
        grid[top:top + height, left:left + width] = image
    return grid


def save_image_grid(images: np.ndarray, path: str | os.PathLike[str], value_range: tuple[float, float] = (0.0, 1.0),
                    columns: int | None = None, scale: int | None = None) -> None:
    """Save images as one PNG grid, atomically; small images are enlarged to stay legible."""
    grid = image_grid(images, value_range, columns)
    picture = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
    scale = scale or max(1, 28 // images.shape[1])
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    with atomic_write(path) as handle:
        picture.save(handle, format="PNG")


def samples_kind(samples: str | Path | np.ndarray) -> str:
    """``"array"``, ``"run"``, ``"folder"`` or ``"file"``; a path that is none of them is refused before any work
    (here, without TensorFlow, so that the CLI refuses it before loading TensorFlow)."""
    if isinstance(samples, np.ndarray):
        return "array"
    path = Path(samples)
    if not path.exists():
        raise DataError(f"samples {str(path)!r} do not exist; give a run directory, an .npz/.npy file or a folder of images")
    if path.is_dir():
        return "run" if (path / "config.toml").is_file() else "folder"
    if path.suffix.lower() in (".npz", ".npy"):
        return "file"
    raise DataError(f"samples {str(path)!r}: expected a run directory, an .npz/.npy file or a folder of PNG/JPEG images")
