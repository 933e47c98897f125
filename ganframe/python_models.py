"""Your own Keras generator and discriminator, trained without writing a plugin (docs/python.md).

``ganframe.train(config, generator=G, discriminator=D)`` wraps the two models in an in-process
plugin that registers them as architecture ``python``: they reach the engine through the registry
like any architecture, the run records where they came from, and checks on their shapes give a
message that says what to change before anything is written.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import keras
from pydantic import Field

from ganframe.config import RunConfig
from ganframe.contract import DataSpec, Networks, Options
from ganframe.errors import ConfigError, RunError
from ganframe.hookspecs import hookimpl
from ganframe.plugins import Registry, with_plugins

#: The architecture (and in-process plugin) name under which a run records models passed from Python.
PYTHON_ARCH = "python"

#: The interval a generator's last activation maps into, for the activations that fix one.
_ACTIVATION_RANGES = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0)}

#: Layers that only rearrange values: the activation before them still bounds the output.
_SHAPE_ONLY = (keras.layers.Reshape, keras.layers.Flatten, keras.layers.Permute)


class PythonArchOptions(Options):
    """What config.toml records of models passed from Python; models passed to resume or load must match it."""

    latent_dim: int = Field(gt=0, description="width of the noise the generator takes")
    output_range: tuple[float, float] = Field(description="the interval the generator's output lies in")
    conditional: bool = Field(False, description="both networks take [inputs, labels]")


def _shapes(model: keras.Model, role: str) -> tuple[list[tuple[Any, ...]], tuple[Any, ...]]:
    """The shapes of ``model``'s inputs and of its one output; the engine and these checks need them known."""
    try:
        inputs, outputs = model.inputs, model.outputs
    except AttributeError:  # a subclassed model, or a Sequential without keras.Input
        inputs = outputs = None
    if not inputs or not outputs:
        raise ConfigError(
            f"{role}= {model.name!r} has no known input shape; start it with keras.Input (a Sequential: "
            f"keras.Sequential([keras.Input(shape), ...])), or wrap it: x = keras.Input(shape); "
            f"{role} = keras.Model(x, model(x))"
        )
    if len(outputs) != 1:
        raise ConfigError(f"{role}= {model.name!r} has {len(outputs)} outputs; it must have one")
    return [tuple(tensor.shape) for tensor in inputs], tuple(outputs[0].shape)


def _activation_range(model: keras.Model) -> tuple[float, float] | None:
    """The interval of ``model``'s last activation (looking through reshapes) when it is sigmoid or tanh, else None."""
    layers = {}
    for layer in model.layers:
        with contextlib.suppress(AttributeError, ValueError):  # a layer called more than once has no single output
            layers[id(layer.output)] = layer
    layer = layers.get(id(model.outputs[0]))
    while isinstance(layer, _SHAPE_ONLY):
        layer = layers.get(id(layer.input))
    return _ACTIVATION_RANGES.get(getattr(getattr(layer, "activation", None), "__name__", ""))


def _inputs_text(latent_dim: int, conditional: bool) -> str:
    return f"noise of width {latent_dim}" + (" and class labels" if conditional else "")


class PythonModels:
    """An in-process plugin registering a user's generator and discriminator as architecture ``python``.

    Going through the registry like any plugin keeps one path into the engine, and records in
    run.json and config.toml where the networks came from.
    """

    def __init__(self, generator: keras.Model, discriminator: keras.Model) -> None:
        self.generator = generator
        self.discriminator = discriminator

    @hookimpl
    def ganframe_register_architectures(self, register: Any) -> None:
        register(PYTHON_ARCH, self.build, "A generator and discriminator passed from Python.", PythonArchOptions)

    def generator_inputs(self) -> tuple[int, bool]:
        """latent_dim and whether G is conditional: noise ``(latent_dim,)``, then int labels ``()`` if it is."""
        inputs, _ = _shapes(self.generator, "generator")
        if len(inputs) > 2 or len(inputs[0]) != 2 or inputs[0][1] is None or inputs[1:] not in ([], [(None,)]):
            raise ConfigError(
                f"generator= takes inputs of shapes {[shape[1:] for shape in inputs]}; it must take noise "
                "keras.Input((latent_dim,)), and for a conditional GAN then class labels keras.Input((), dtype='int32')"
            )
        return int(inputs[0][1]), len(inputs) == 2

    def arch_options(self, output_range: tuple[float, float] | None) -> dict[str, Any]:
        """The options a new run records: ``output_range`` as given, else read from G's last activation."""
        latent_dim, conditional = self.generator_inputs()
        _shapes(self.discriminator, "discriminator")
        inferred = _activation_range(self.generator)
        if output_range is None and inferred is None:
            raise ConfigError(
                "cannot tell which values the generator outputs (its last activation is neither sigmoid nor tanh): "
                "pass output_range=(low, high), the interval they lie in, which must be the data's, e.g. (0, 1)"
            )
        if output_range is not None and inferred is not None and tuple(map(float, output_range)) != inferred:
            raise ConfigError(f"output_range={tuple(output_range)}, but the generator's last activation maps into "
                              f"{inferred}; pass the range it really outputs, or leave output_range out")
        low, high = output_range if output_range is not None else inferred
        return {"latent_dim": latent_dim, "output_range": [float(low), float(high)], "conditional": conditional}

    def build(self, spec: DataSpec, options: PythonArchOptions) -> Networks:
        """The models as :class:`Networks`, once they agree with the data and with what the run recorded."""
        latent_dim, conditional = self.generator_inputs()
        if (latent_dim, conditional) != (options.latent_dim, options.conditional):
            raise ConfigError(
                f"the generator passed takes {_inputs_text(latent_dim, conditional)}, but the run's took "
                f"{_inputs_text(options.latent_dim, options.conditional)}: pass models built as for that run"
            )
        if conditional and not spec.num_classes:
            raise ConfigError("the generator takes class labels, but the data have none: use a labelled data set, "
                              "or a generator and discriminator without a labels input")
        shape = tuple(spec.shape)
        _, produced = _shapes(self.generator, "generator")
        if produced[1:] != shape:
            raise ConfigError(f"the generator outputs images of shape {produced[1:]}, but the data's are {shape}: "
                              f"end it with layers that give {shape}, e.g. keras.layers.Reshape({shape})")
        inputs, logits = _shapes(self.discriminator, "discriminator")
        expected = [shape, *([()] if conditional else [])]
        if [input_shape[1:] for input_shape in inputs] != expected:
            raise ConfigError(
                f"the discriminator takes inputs of shapes {[input_shape[1:] for input_shape in inputs]}, but must "
                f"take the data's images {shape}" + (" and then class labels ()" if conditional else "")
            )
        if logits[1:] not in ((), (1,)):
            raise ConfigError(f"the discriminator outputs shape {logits[1:]} per image; it must give one raw logit "
                              "(no activation), e.g. end it with keras.layers.Dense(1)")
        if tuple(options.output_range) != tuple(map(float, spec.value_range)):
            low, high = spec.value_range
            raise ConfigError(
                f"the generator outputs values in {list(options.output_range)} but the data lie in [{low:g}, {high:g}]: "
                "end it with sigmoid for [0, 1] or tanh for [-1, 1] (or pass that output_range=), or set the data "
                "option value_range"
            )
        return Networks(self.generator, self.discriminator, latent_dim, tuple(options.output_range), conditional)


def python_models(generator: Any, discriminator: Any) -> PythonModels | None:
    """The plugin for models passed from Python, or None when neither is; one alone, or a non-model, is refused."""
    if generator is None and discriminator is None:
        return None
    for role, model in (("generator", generator), ("discriminator", discriminator)):
        if model is None:
            raise ConfigError(f"{role}= is missing: pass both generator= and discriminator=, or neither to use "
                              "the config's arch")
        if not isinstance(model, keras.Model):
            raise ConfigError(f"{role}= must be a keras.Model, got {type(model).__name__}: build it with "
                              "keras.Sequential or the functional API, keras.Model(inputs, outputs)")
    return PythonModels(generator, discriminator)


def with_models(registry: Registry, models: PythonModels | None) -> Registry:
    return registry if models is None else with_plugins(registry, [(PYTHON_ARCH, models)])


def check_models_for(run_dir: Path, saved: RunConfig, models: PythonModels | None) -> None:
    """A run trained on models from Python needs them again (the CLI has no way to build them); others must not get them."""
    if saved.arch == PYTHON_ARCH and models is None:
        raise RunError(
            f"run {str(run_dir)!r} was trained on a generator and discriminator passed from Python, which it cannot "
            "rebuild: from Python, pass freshly built models of the same architecture, "
            f"ganframe.load_run({str(run_dir)!r}, generator=G, discriminator=D) (or to train on: "
            f"ganframe.train(resume={str(run_dir)!r}, generator=G, discriminator=D))"
        )
    if saved.arch != PYTHON_ARCH and models is not None:
        raise ConfigError(f"run {str(run_dir)!r} builds its networks from arch {saved.arch!r}; generator= and "
                          "discriminator= are for runs trained on models from Python: leave them out")


def check_python_settings(config: RunConfig) -> None:
    """Refuse settings that apply only to networks ganframe builds itself."""
    if config.strategy != "default":
        raise ConfigError(f"strategy = {config.strategy!r} needs the networks created in its scope, which models "
                          "passed from Python are not; train them with the default strategy")
    if config.precision != "float32":
        raise ConfigError(f"precision = {config.precision!r} applies to the architectures ganframe builds; with "
                          "models passed from Python leave it at float32")
