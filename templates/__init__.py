"""Templates of `ganframe new`: data files, read with importlib.resources (not imported code)."""
