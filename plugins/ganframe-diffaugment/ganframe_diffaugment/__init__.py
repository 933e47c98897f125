"""DiffAugment (Zhao et al. 2020) for ganframe: differentiable color, translation and cutout."""

__version__ = "0.1.0"
