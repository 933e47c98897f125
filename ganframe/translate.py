"""Applying a trained image-conditioned generator to your own images: ``ganframe translate``.

The inputs are condition images (what G starts from: a low-resolution image, a masked one, an
edge map), from a folder of images or an ``.npz``, read by the ``folder`` and ``npz`` data sets; with
``derive``, they are whole images and the run's own ``[pairs]`` derivation makes their conditions, so
the output can be set beside the image it should recover. The outputs go to a folder of PNGs (one per
input, at its path in the input folder), an ``.npz`` (array ``images``, in the run's value range, as
``ganframe sample`` writes) or one ``.png`` grid whose rows are input | output (| the original, with
``derive``), laid out as the run's sample grids are (:func:`ganframe.images.translation_grid`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ganframe.contract import DataSpec
from ganframe.errors import ConfigError
from ganframe.files import atomic_write
from ganframe.images import picture, read_images, rescale, save_image_grid, to_uint8, translation_grid
from ganframe.plugins import Registry, get_registry

#: Input | output pairs in a ``.png`` grid at most: a grid is for looking at, an .npz or a folder for all.
GRID_ROWS = 64


@dataclass(frozen=True)
class Inputs:
    """Images read for translation: float32 (N, H, W, C) in [0, 1], and a name for each (its output's)."""

    images: np.ndarray
    names: list[str]


def read_inputs(path: Path, registry: Registry | None = None) -> Inputs:
    """The images of a folder (searched recursively, sorted by path) or an ``.npz``/``.npy`` file (array ``x``,
    ``images``, ``x_train`` or its only one; uint8 or floats in [0, 1]), in [0, 1]: read as ``ganframe evaluate``
    reads samples (:func:`ganframe.images.read_images`), with the same checks."""
    if not path.is_dir() and path.suffix.lower() not in (".npz", ".npy"):
        raise ConfigError(f"--input {str(path)!r}: give a folder of images or an .npz/.npy file of them")
    return Inputs(*read_images(path, registry or get_registry()))


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
        count = min(len(outputs), GRID_ROWS)
        cells, columns = translation_grid(conditions[:count], outputs[:count],
                                          None if originals is None else originals[:count])
        save_image_grid(cells, out, value_range, columns=columns)
        return f"a grid of {count} rows ({' | '.join(['input', 'output', 'original'][:columns])}) to {out}"
    if out.suffix:
        raise ConfigError(f"--out {str(out)!r}: give a folder, an .npz file or a .png grid")
    out.mkdir(parents=True, exist_ok=True)
    for name, image in zip(names, to_uint8(outputs, value_range)):
        with atomic_write(out / f"{name}.png") as handle:
            picture(image).save(handle, format="PNG")
    return f"{len(outputs)} images to {out}/"

