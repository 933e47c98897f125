"""Applying a trained image-conditioned generator to your own images: ``ganframe translate``.

The inputs are condition images (what G starts from: a low-resolution image, a masked one, an
edge map), from a folder of images or an ``.npz``; with ``derive``, they are whole images and the
run's own ``[pairs]`` derivation makes their conditions, so the output can be set beside the image
it should recover. The outputs go to a folder of PNGs (one per input, named after it), an ``.npz``
(array ``images``, in the run's value range, as ``ganframe sample`` writes) or one ``.png`` grid
whose rows are input | output (| the original, with ``derive``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from ganframe.contract import DataSpec
from ganframe.errors import ConfigError, DataError
from ganframe.files import atomic_write
from ganframe.images import rescale, save_image_grid, to_uint8

#: Image files a folder of inputs may hold (what Pillow reads), by suffix.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
#: Input | output pairs in a ``.png`` grid at most: a grid is for looking at, an .npz or a folder for all.
GRID_ROWS = 64


@dataclass(frozen=True)
class Inputs:
    """Images read for translation: float32 (N, H, W, C) in [0, 1], and a name for each (its output's)."""

    images: np.ndarray
    names: list[str]


def read_inputs(path: Path) -> Inputs:
    """The images of a folder (sorted by name) or an ``.npz``/``.npy`` (array ``images``, or its only array;
    uint8 or floats in [0, 1]), in [0, 1]."""
    if path.is_dir():
        return _read_folder(path)
    if path.suffix.lower() not in (".npz", ".npy") or not path.is_file():
        raise ConfigError(f"--input {str(path)!r}: give a folder of images or an .npz/.npy file of them")
    return _read_array(path)


def _read_folder(folder: Path) -> Inputs:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise DataError(f"--input {str(folder)!r} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    images = []
    for file in files:
        try:
            with Image.open(file) as picture:
                array = np.asarray(picture.convert("L" if picture.mode in ("1", "L", "I", "I;16", "F") else "RGB"))
        except (OSError, UnidentifiedImageError) as error:
            raise DataError(f"{file}: cannot be read as an image ({error})") from None
        images.append(array[..., None] if array.ndim == 2 else array)
    shapes = sorted({image.shape for image in images})
    if len(shapes) > 1:
        raise DataError(f"--input {str(folder)!r}: the images have different shapes ({', '.join(map(str, shapes[:3]))}); "
                        "give images of one size, the size the run translates")
    return Inputs(np.stack(images).astype(np.float32) / 255.0, [file.stem for file in files])


def _read_array(file: Path) -> Inputs:
    try:
        loaded = np.load(file)
    except (OSError, ValueError) as error:
        raise DataError(f"{file}: cannot be read as a NumPy file ({error})") from None
    if isinstance(loaded, np.ndarray):
        array = loaded
    else:
        with loaded:
            names = list(loaded.files)
            if "images" not in names and len(names) != 1:
                raise DataError(f"{file} holds the arrays {', '.join(names)}; name the input images 'images'")
            array = loaded["images" if "images" in names else names[0]]
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4 or not len(array):
        raise DataError(f"{file}: expected images (N, H, W, C) or (N, H, W), got shape {array.shape}")
    if array.dtype == np.uint8:
        return Inputs(array.astype(np.float32) / 255.0, [f"{index:06d}" for index in range(len(array))])
    array = array.astype(np.float32)
    if not np.isfinite(array).all() or array.min() < 0.0 or array.max() > 1.0:
        raise DataError(f"{file}: float images must lie in [0, 1], these span [{np.nanmin(array):g}, {np.nanmax(array):g}]")
    return Inputs(array, [f"{index:06d}" for index in range(len(array))])


def check_shape(images: np.ndarray, expected: tuple[int, ...], what: str, hint: str) -> None:
    """Refuse inputs whose shape is not the one the run takes, saying which it takes."""
    if tuple(images.shape[1:]) != tuple(expected):
        shown = "x".join(map(str, images.shape[1:]))
        raise ConfigError(f"the input images are {shown}, but this run translates {what} of {'x'.join(map(str, expected))}: "
                          f"{hint}")


def translate(run: Any, inputs: Inputs, derive: bool = False, seed: int = 0) -> tuple[np.ndarray, np.ndarray | None,
                                                                                          np.ndarray]:
    """(conditions, originals or None, outputs) for ``inputs``, each in the run's value range.

    Without ``derive`` the inputs are the conditions; with it, they are whole images and the run's
    ``[pairs]`` derivation makes the conditions (the originals are then the inputs themselves).
    """
    spec: DataSpec = run.spec
    if not run.gan.sampler.takes_condition:
        raise ConfigError(f"run {str(run.path)!r} does not translate images: its generator takes no condition. "
                          "Train on paired data ([pairs] or a paired folder) with an architecture that takes "
                          "conditions (e.g. unet from ganframe-pix2pix); generate with `ganframe sample` instead")
    images = rescale(inputs.images, (0.0, 1.0), spec.value_range)
    if not derive:
        check_shape(images, spec.condition_shape, "conditions", "resize them, or with --derive give whole images "
                    "whose conditions the run's [pairs] makes")
        return images, None, run.generate(len(images), seed=seed, conditions=images)
    if run.config.pairs is None:
        raise ConfigError(f"--derive makes conditions as the run's [pairs] does, but run {str(run.path)!r} trained on "
                          "pairs of its own data set, not derived ones: give the condition images without --derive")
    check_shape(images, spec.shape, "images (to derive conditions from)", "resize them to the run's image size")
    from ganframe.pairs import derive_conditions  # TensorFlow: only once a run is loaded anyway

    conditions = derive_conditions(images, run.config.pairs, spec)
    return conditions, images, run.generate(len(images), seed=seed, conditions=conditions)


def write_outputs(out: Path, conditions: np.ndarray, originals: np.ndarray | None, outputs: np.ndarray,
                  names: list[str], value_range: tuple[float, float]) -> str:
    """Write ``outputs`` as ``out`` asks (folder, .npz or .png grid); what was written, for the user."""
    suffix = out.suffix.lower()
    if suffix == ".npz":
        with atomic_write(out) as handle:
            np.savez(handle, images=outputs)
        return f"{len(outputs)} images to {out}"
    if suffix == ".png":
        rows = [_display(conditions, outputs.shape[1:]), outputs]
        if originals is not None:
            rows.append(originals)
        count = min(len(outputs), GRID_ROWS)
        cells = np.stack([part[:count] for part in rows], axis=1).reshape(-1, *outputs.shape[1:])
        save_image_grid(cells, out, value_range, columns=len(rows))
        return f"a grid of {count} rows ({' | '.join(['input', 'output', 'original'][:len(rows)])}) to {out}"
    if out.suffix:
        raise ConfigError(f"--out {str(out)!r}: give a folder, an .npz file or a .png grid")
    out.mkdir(parents=True, exist_ok=True)
    for name, image in zip(names, to_uint8(outputs, value_range)):
        picture = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
        with atomic_write(out / f"{name}.png") as handle:
            picture.save(handle, format="PNG")
    return f"{len(outputs)} images to {out}/"


def _display(conditions: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Conditions shown beside outputs of ``shape``: enlarged (nearest) and given the outputs' channels."""
    height, width, channels = shape
    if conditions.shape[1:3] != (height, width):
        rows = np.arange(height) * conditions.shape[1] // height
        columns = np.arange(width) * conditions.shape[2] // width
        conditions = conditions[:, rows][:, :, columns]
    if conditions.shape[-1] != channels:
        conditions = np.repeat(conditions.mean(axis=-1, keepdims=True), channels, axis=-1)
    return conditions
