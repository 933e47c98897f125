"""The ganframe plugin of old-plugin: registers its components (entry point group `ganframe`).

Plugins import only the public ganframe API, and Keras only inside factories.
"""

import ganframe
from ganframe import hookimpl

from old_plugin.archs import MlpOptions, build_mlp
from old_plugin.datasets import ShapesOptions, load_shapes
from old_plugin.losses import build_lsq
from old_plugin.callbacks import LogOptions, build_log
from old_plugin.augmentations import build_flip
from old_plugin.metrics import build_pixel_gap
from old_plugin.features import PoolOptions, build_pool

if ganframe.CONTRACT_VERSION.split(".")[0] != "1":
    raise ImportError(
        f"old-plugin needs ganframe plugin contract 1.x, "
        f"but the installed ganframe has contract {ganframe.CONTRACT_VERSION}"
    )


@hookimpl
def ganframe_register_architectures(register):
    register("old-plugin-mlp", build_mlp, "A small dense GAN for any image shape (old-plugin).", MlpOptions)


@hookimpl
def ganframe_register_datasets(register):
    register("old-plugin-shapes", load_shapes, "Random horizontal and vertical bars, made in memory (old-plugin).", ShapesOptions)


@hookimpl
def ganframe_register_losses(register):
    register("old-plugin-lsq", build_lsq, "Least squares on the discriminator's logits (old-plugin).")


@hookimpl
def ganframe_register_callbacks(register):
    register("old-plugin-log", build_log, "Appends losses to old_plugin.log every N steps (old-plugin).", LogOptions)


@hookimpl
def ganframe_register_augmentations(register):
    register("old-plugin-flip", build_flip, "Flips half the images left to right (old-plugin).")


@hookimpl
def ganframe_register_metrics(register):
    register("old-plugin-pixel-gap", build_pixel_gap, "Gap between real and generated per-pixel mean and spread (old-plugin).")


@hookimpl
def ganframe_register_feature_extractors(register):
    register("old-plugin-pool", build_pool, "Images average-pooled to a small grid (old-plugin).", PoolOptions)
