"A ganframe project: old-gan."

__version__ = "0.1.0"
