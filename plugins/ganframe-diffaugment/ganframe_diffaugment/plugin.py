"""The ganframe plugin of ganframe-diffaugment: registers the augmentation ``diffaugment``.

Plugins import only the public ganframe API, and Keras only inside factories.
"""

import ganframe
from ganframe import hookimpl

from ganframe_diffaugment.augmentations import DiffAugmentOptions, build_diffaugment

if ganframe.CONTRACT_VERSION.split(".")[0] != "1":
    raise ImportError(
        f"ganframe-diffaugment needs ganframe plugin contract 1.x, "
        f"but the installed ganframe has contract {ganframe.CONTRACT_VERSION}"
    )


@hookimpl
def ganframe_register_augmentations(register):
    register(
        "diffaugment",
        build_diffaugment,
        "DiffAugment (Zhao et al. 2020): differentiable color/translation/cutout for small data sets (ganframe-diffaugment).",
        DiffAugmentOptions,
    )
