"A ganframe plugin: old-plugin."

__version__ = "0.1.0"
