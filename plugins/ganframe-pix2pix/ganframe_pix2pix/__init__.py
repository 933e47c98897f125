"""pix2pix (Isola et al. 2017) for ganframe: U-Net G, PatchGAN D, the L1-only baseline and paired metrics."""

__version__ = "0.1.0"
