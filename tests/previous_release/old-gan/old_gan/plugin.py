"""The ganframe plugin of old-gan: registers its components (entry point group `ganframe`).

Plugins import only the public ganframe API, and Keras only inside factories.
"""

import ganframe
from ganframe import hookimpl

from old_gan.archs import MlpOptions, build_mlp
from old_gan.datasets import ShapesOptions, load_shapes

if ganframe.CONTRACT_VERSION.split(".")[0] != "1":
    raise ImportError(
        f"old-gan needs ganframe plugin contract 1.x, "
        f"but the installed ganframe has contract {ganframe.CONTRACT_VERSION}"
    )


@hookimpl
def ganframe_register_architectures(register):
    register("old-gan-mlp", build_mlp, "A small dense GAN for any image shape (old-gan).", MlpOptions)


@hookimpl
def ganframe_register_datasets(register):
    register("old-gan-shapes", load_shapes, "Random horizontal and vertical bars, made in memory (old-gan).", ShapesOptions)
