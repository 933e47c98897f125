"""Images a practitioner looks at or hands over: PNG grids (through Pillow), and files of images read as data."""

from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ganframe.contract import DataContext, ImageData
from ganframe.errors import DataError
from ganframe.examples import take
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


def display_as(images: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``images`` made comparable to images of ``shape`` (height, width, channels), to be shown or scored beside
    them: resized by nearest neighbour (a small condition's pixels stay visible as blocks), gray repeated into
    colour channels and colour averaged into gray."""
    height, width, channels = shape
    if images.shape[1:3] != (height, width):
        rows = np.arange(height) * images.shape[1] // height
        columns = np.arange(width) * images.shape[2] // width
        images = images[:, rows][:, :, columns]
    if images.shape[-1] != channels:
        images = np.repeat(images.mean(axis=-1, keepdims=True), channels, axis=-1)
    return images


def translation_grid(conditions: np.ndarray, outputs: np.ndarray, targets: np.ndarray | None = None
                     ) -> tuple[np.ndarray, int]:
    """The cells of a grid whose rows are condition | output (| target), one example each, and its columns: an
    output is judged beside what it was made from (and what it should have been), not alone."""
    parts = [display_as(conditions, outputs.shape[1:]), outputs, *([] if targets is None else [targets])]
    return np.stack(parts, axis=1).reshape(-1, *outputs.shape[1:]), len(parts)


def picture(pixels: np.ndarray) -> Image.Image:
    """uint8 pixels (H, W, C) as a Pillow image, gray for one channel (Pillow takes gray without its channel axis)."""
    return Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)


def png(pixels: np.ndarray) -> bytes:
    """uint8 pixels (H, W, C) as the bytes of a PNG file."""
    buffer = io.BytesIO()
    picture(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def save_image_grid(images: np.ndarray, path: str | os.PathLike[str], value_range: tuple[float, float] = (0.0, 1.0),
                    columns: int | None = None, scale: int | None = None) -> None:
    """Save images as one PNG grid, atomically; small images are enlarged to stay legible."""
    grid = picture(image_grid(images, value_range, columns))
    scale = scale or max(1, 28 // images.shape[1])
    if scale > 1:
        grid = grid.resize((grid.width * scale, grid.height * scale), Image.NEAREST)
    with atomic_write(path) as handle:
        grid.save(handle, format="PNG")


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


def read_images(path: str | os.PathLike[str], registry: Any, *, limit: int | None = None,
                size: tuple[int, int] | None = None, channels: int | None = None) -> tuple[np.ndarray, list[str]]:
    """The images of a folder (searched recursively) or an ``.npz``/``.npy`` file as float32 (N, H, W, C) in
    [0, 1], and a name for each (its path in the folder without the suffix; its index in a file).

    The ``folder`` and ``npz`` datasets of ``registry`` read them, so that every command taking image files
    refuses a bad one as training does; a folder's images are resized to ``size`` and read with ``channels``
    where given. TensorFlow loads only to decode a folder's images, once their files' headers have passed.
    """
    path, context = Path(path).expanduser(), DataContext(None, 0)
    if path.is_dir():
        options = {"path": str(path), "limit": limit, "size": size, "channels": channels}
        data = registry.build("dataset", "folder", options, context)
        names = [os.path.splitext(os.path.relpath(file, path))[0] for file in data.paths]
    else:
        data = registry.build("dataset", "npz", {"path": str(path), "limit": limit}, context)
        names = [f"{index:06d}" for index in range(len(data))]
    if isinstance(data, ImageData):
        return data.float_images(), names
    return take(data, np.arange(len(data))).images, names
