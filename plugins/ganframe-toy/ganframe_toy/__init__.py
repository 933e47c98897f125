"""2-D toy data sets, small MLP GANs, a mode-coverage metric and scatter plots for ganframe."""

__version__ = "0.1.0"
