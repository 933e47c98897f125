"""ganframe: a plugin-based GAN framework on Keras 3, training on TensorFlow or JAX.

This module is the public API: plugins, built-ins included, import only what
``__all__`` lists. Names that need Keras and its backend (training, the engine, runs) are
imported on first use, so listing plugins or validating a config stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from ganframe.checkpoints import latest_checkpoint, load_checkpoint, save_checkpoint
from ganframe.config import RunConfig, resolve_config
from ganframe.contract import (
    CONTRACT_VERSION,
    KINDS,
    AdversarialLoss,
    Augmentation,
    CallbackContext,
    Component,
    DataContext,
    DataSource,
    DataSpec,
    DataStream,
    FeatureExtractor,
    ImageData,
    Metric,
    Networks,
    NoOptions,
    Options,
    Penalty,
    Update,
    WeightOptions,
)
from ganframe.errors import ConfigError, DataError, GanframeError, PluginError, RunError
from ganframe.files import CsvLog, atomic_write
from ganframe.hookspecs import hookimpl, hookspec
from ganframe.images import display_as, save_image_grid
from ganframe.intervals import IntervalMeans
from ganframe.plugins import get_registry, load_plugins
from ganframe.quiet import install as _quiet_tensorflow

__version__ = "0.1.0"

_quiet_tensorflow()  # TensorFlow's C++ start-up lines, whoever imports it first (ganframe.quiet)

# name -> module that defines it; imported (with Keras and its backend) on first access.
_LAZY = {
    "GAN": "ganframe.engine",
    "distributed": "ganframe.distribute",
    "evaluate": "ganframe.evaluation",
    "write_report": "ganframe.report",
    "input_gradients": "ganframe.engine",
    "Run": "ganframe.run",
    "train": "ganframe.run",
    "load_run": "ganframe.run",
}

__all__ = [
    "CONTRACT_VERSION",
    "KINDS",
    "AdversarialLoss",
    "Augmentation",
    "CallbackContext",
    "Component",
    "ConfigError",
    "CsvLog",
    "DataContext",
    "DataError",
    "DataSource",
    "DataSpec",
    "DataStream",
    "FeatureExtractor",
    "GanframeError",
    "ImageData",
    "IntervalMeans",
    "Metric",
    "Networks",
    "NoOptions",
    "Options",
    "Penalty",
    "PluginError",
    "RunConfig",
    "RunError",
    "Update",
    "WeightOptions",
    "__version__",
    "atomic_write",
    "display_as",
    "get_registry",
    "hookimpl",
    "hookspec",
    "latest_checkpoint",
    "load_checkpoint",
    "load_plugins",
    "resolve_config",
    "save_checkpoint",
    "save_image_grid",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ganframe' has no attribute {name!r}")
