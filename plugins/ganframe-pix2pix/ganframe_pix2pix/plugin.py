"""The ganframe plugin of ganframe-pix2pix: registers ``unet``, the losses ``l1_only`` and ``patchgan``, and the
paired metrics ``l1``, ``psnr`` and ``ssim``.

Plugins import only the public ganframe API; nothing imported here loads TensorFlow or Keras,
so listing plugins stays fast.
"""

from typing import Any

import ganframe
from ganframe import NoOptions, hookimpl

from ganframe_pix2pix.archs import UNetOptions, build_unet
from ganframe_pix2pix.losses import build_l1_only, build_patchgan
from ganframe_pix2pix.metrics import PSNROptions, SSIMOptions, build_l1, build_psnr, build_ssim

if ganframe.CONTRACT_VERSION.split(".")[0] != "1":
    raise ImportError(
        f"ganframe-pix2pix needs ganframe plugin contract 1.x, "
        f"but the installed ganframe has contract {ganframe.CONTRACT_VERSION}"
    )


@hookimpl
def ganframe_register_architectures(register: Any) -> None:
    register("unet", build_unet, "pix2pix: U-Net G from the condition, PatchGAN D on image and condition; needs "
             "paired data (ganframe-pix2pix).", UNetOptions)


@hookimpl
def ganframe_register_losses(register: Any) -> None:
    register("l1_only", build_l1_only, "No adversarial loss (0 for G and D): with the reconstruction term, pix2pix's "
             "L1-only baseline (ganframe-pix2pix).", NoOptions)
    register("patchgan", build_patchgan, "Non-saturating cross-entropy on each PatchGAN patch logit, averaged, as "
             "pix2pix's code trains D (ganframe-pix2pix).", NoOptions)


@hookimpl
def ganframe_register_metrics(register: Any) -> None:
    register("l1", build_l1, "Mean |output - target| over paired images, in the data's units (ganframe-pix2pix).",
             NoOptions)
    register("psnr", build_psnr, "PSNR in dB of each output against its target, averaged (ganframe-pix2pix).",
             PSNROptions)
    register("ssim", build_ssim, "SSIM of each output against its target, averaged (ganframe-pix2pix).", SSIMOptions)
