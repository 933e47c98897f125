"""The hooks a plugin implements: one per component kind, in the register-callback style.

A plugin module (or object) defines any of these functions, decorated with
:data:`ganframe.hookimpl`, and calls ``register`` once per component::

    from ganframe import hookimpl, Options

    class WideOptions(Options):
        width: int = 512

    @hookimpl
    def ganframe_register_architectures(register):
        register("wide", build_wide, "A wider dense GAN.", WideOptions)

``register(name, factory, description, options=NoOptions)`` records the component
under the plugin's name; it refuses a name another plugin already holds. Hooks
return nothing and touch no global state. What each kind's factory receives and
returns is fixed in :mod:`ganframe.contract` (contract version
:data:`ganframe.CONTRACT_VERSION`).
"""

from __future__ import annotations

from typing import Callable

import pluggy

PROJECT = "ganframe"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

Register = Callable[..., None]


@hookspec
def ganframe_register_architectures(register: Register) -> None:
    """Register architectures: factory(spec, options) -> Networks."""


@hookspec
def ganframe_register_datasets(register: Register) -> None:
    """Register datasets: factory(context, options) -> ImageData (in memory), DataSource (read by index while
    training) or DataStream (read front to back while training)."""


@hookspec
def ganframe_register_losses(register: Register) -> None:
    """Register adversarial losses and penalties: factory(spec, options) -> AdversarialLoss | Penalty.

    A factory annotated to return a Penalty subclass is listed as a penalty by ``ganframe plugins``.
    """


@hookspec
def ganframe_register_callbacks(register: Register) -> None:
    """Register training callbacks: factory(context, options) -> keras.callbacks.Callback."""


@hookspec
def ganframe_register_augmentations(register: Register) -> None:
    """Register differentiable augmentations: factory(spec, options) -> Augmentation."""


@hookspec
def ganframe_register_metrics(register: Register) -> None:
    """Register sample-quality metrics: factory(spec, options) -> Metric."""


@hookspec
def ganframe_register_feature_extractors(register: Register) -> None:
    """Register feature extractors for metrics: factory(spec, options) -> FeatureExtractor."""


#: Which kind of component each hook registers.
HOOK_KINDS = {
    "ganframe_register_architectures": "architecture",
    "ganframe_register_datasets": "dataset",
    "ganframe_register_losses": "loss",
    "ganframe_register_callbacks": "callback",
    "ganframe_register_augmentations": "augmentation",
    "ganframe_register_metrics": "metric",
    "ganframe_register_feature_extractors": "feature_extractor",
}
