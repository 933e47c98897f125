"""The run configuration: pydantic models, TOML in, resolved TOML out.

Precedence is CLI flag > TOML file > default: :func:`resolve_config` lays the
flags that were actually given over the file. Component names and their
options are checked against the plugin registry by :func:`check_components`,
before any TensorFlow is imported, so a typo costs milliseconds.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import tomli_w
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ganframe.errors import ConfigError, describe_validation_error

#: Training length when neither steps, epochs nor max_time is given.
DEFAULT_STEPS = 10_000

#: Callbacks every run gets unless switched off with ``every = 0`` (tensorboard: and ``images_every = 0``).
DEFAULT_CALLBACKS = ("samples", "checkpoint", "metrics", "tensorboard")

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([hms])")


def parse_duration(value: Any) -> Any:
    """Seconds from ``90``, ``"90s"``, ``"15m"`` or ``"1h30m"``; other values pass to pydantic."""
    if not isinstance(value, str):
        return value
    text = value.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = _DURATION.findall(text)
    if not parts or "".join(f"{n}{u}" for n, u in parts) != text.replace(" ", ""):
        # PydanticCustomError (a ValueError) keeps pydantic's "Value error, " prefix out of the message.
        raise PydanticCustomError("duration", "a duration such as 90, '90s', '15m' or '1h30m' is expected")
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


Seconds = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]

#: The networks' arithmetic: Keras dtype policies (docs/performance.md, "Mixed precision").
Precision = Literal["float32", "mixed_float16", "mixed_bfloat16"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class OptimizerConfig(_Section):
    """One network's optimizer (the seed's Adam 2e-4, beta_1 0.5, by default)."""

    name: Literal["adam", "sgd", "rmsprop"] = "adam"
    learning_rate: float = Field(2e-4, gt=0)
    beta_1: float = Field(0.5, ge=0, lt=1)
    beta_2: float = Field(0.999, ge=0, lt=1)
    momentum: float = Field(0.0, ge=0, lt=1)
    schedule: Literal["constant", "cosine", "linear", "exponential"] = Field(
        "constant", description="how the learning rate changes over the train steps (docs/config.md)")
    warmup_steps: int = Field(0, ge=0, description="steps of linear warm-up from learning_rate / warmup_steps")
    decay_steps: int | None = Field(
        None, gt=0, description="steps the decay takes after the warm-up (exponential: steps per factor "
        "decay_rate); default the run's steps")
    final_learning_rate: float = Field(0.0, ge=0, description="cosine and linear: the rate the decay ends at")
    decay_rate: float = Field(0.5, gt=0, lt=1, description="exponential: the factor per decay_steps")

    @field_validator("final_learning_rate")
    @classmethod
    def _decays(cls, final: float, info: ValidationInfo) -> float:
        rate = info.data.get("learning_rate")
        if rate is not None and final > rate:
            raise PydanticCustomError("final_above_start", "must not exceed learning_rate ({rate}): a schedule decays",
                                      {"rate": rate})
        return final


class DivergenceConfig(_Section):
    """The divergence guard: skip non-finite updates, roll back when they pile up (docs/reliability.md).

    On by default: the skip is a select fused into each update, within the noise of
    ``benchmarks/step_speed.py`` (docs/reliability.md has the numbers).
    """

    enabled: bool = True
    max_skips: int = Field(10, ge=1)
    max_rollbacks: int = Field(3, ge=0)
    lr_factor: float = Field(0.5, gt=0, le=1)


class EvaluationConfig(_Section):
    """When the run scores its samples with the metrics under ``[metrics]`` (docs/config.md)."""

    every: int = Field(1000, ge=0, description="steps between evaluations; 0 evaluates only when training ends")
    samples: int = Field(1000, gt=0, le=100_000, description="generated (and real) samples per evaluation")
    best: str | None = Field(None, description="the score that picks checkpoints/best.npz, e.g. 'fid'")


class HealthConfig(_Section):
    """When the run probes its own health: D's accuracy, gradient norms, diversity, alarms (docs/health.md)."""

    every: int | None = Field(None, ge=0, description="steps between health probes; default: a tenth of the run, "
                              "at most 500; 0 switches them off")
    samples: int = Field(256, ge=2, le=10_000, description="real and generated images per probe")


#: What ``[pairs]`` makes each example's condition from its own image (ganframe.pairs).
Derivation = Literal["downscale", "mask", "edges", "grayscale"]

#: The ``[pairs]`` fields that apply to one derivation only: field -> that derivation.
PAIRS_FIELDS = {"factor": "downscale", "back_to_size": "downscale", "hole": "mask"}


class PairsConfig(_Section):
    """Paired data derived from any image data set: each image's condition made from the image (docs/datasets.md).

    The fields besides ``derive`` apply to one derivation each and default to None, so that a
    run's config.toml records only what the derivation uses.
    """

    derive: Derivation = Field(description="downscale, mask, edges or grayscale: what G starts from")
    factor: int | None = Field(None, ge=2, description="downscale: the image shrunk this many times (default 4)")
    back_to_size: bool | None = Field(
        None, description="downscale: the shrunk image brought back to full size, bilinear (default true)")
    hole: int | None = Field(None, gt=0, description="mask: side of the centred square hole (default half the image side)")

    @field_validator("factor", "back_to_size", "hole")
    @classmethod
    def _for_its_derivation(cls, value: Any, info: ValidationInfo) -> Any:
        derive, owner = info.data.get("derive"), PAIRS_FIELDS[info.field_name]
        if value is not None and derive is not None and derive != owner:
            raise PydanticCustomError(
                "pairs_field", "{field} applies to derive = '{owner}' only, and derive is '{derive}': remove it",
                {"field": info.field_name, "owner": owner, "derive": derive})
        return value


#: The Keras backends ganframe trains on.
Backend = Literal["tensorflow", "jax"]
BACKENDS: tuple[str, ...] = get_args(Backend)


class RunConfig(_Section):
    """Everything that defines a run. Component options are validated by the components' own models."""

    arch: str = "dense"
    arch_options: dict[str, Any] = {}
    data: str = "mnist"
    data_options: dict[str, Any] = {}
    data_dir: Path | None = None
    loss: str = "nonsaturating"
    loss_options: dict[str, Any] = {}
    penalties: dict[str, dict[str, Any]] = {}
    augmentations: dict[str, dict[str, Any]] = {}
    callbacks: dict[str, dict[str, Any]] = {name: {} for name in DEFAULT_CALLBACKS}
    pairs: PairsConfig | None = Field(
        None, description="pair each image with a condition derived from it (super-resolution, inpainting, ...)")
    metrics: dict[str, dict[str, Any]] = {}
    evaluation: EvaluationConfig = EvaluationConfig()
    health: HealthConfig = HealthConfig()

    batch_size: int = Field(128, gt=0, le=65536)
    n_critic: int = Field(1, ge=1, le=100)
    steps: int | None = Field(None, gt=0)
    epochs: int | None = Field(None, gt=0)
    max_time: Seconds | None = None
    d_optimizer: OptimizerConfig = OptimizerConfig()
    g_optimizer: OptimizerConfig = OptimizerConfig()
    ema: float | None = Field(
        None, gt=0, lt=1,
        description="decay of an exponential moving average of G's weights (e.g. 0.999), which sampling, "
        "evaluation and export then use; none by default",
    )

    seed: int = Field(0, ge=0, lt=2**31)
    jit_compile: bool = True
    steps_per_execution: int = Field(1, ge=1)
    out: Path | None = None
    strategy: Literal["default", "mirrored", "multiworker"] = "default"
    backend: Backend | None = Field(
        None, description="the Keras backend that trains: tensorflow or jax; default: KERAS_BACKEND, else tensorflow. "
        "Keras fixes it when first imported: the ganframe command's --backend sets it"
    )
    precision: Precision = Field(
        "float32", description="the networks compute in float32, or in 16 bits on float32 weights: mixed_float16 "
        "(with loss scaling), mixed_bfloat16"
    )
    divergence: DivergenceConfig = DivergenceConfig()

    @model_validator(mode="before")
    @classmethod
    def _merge_default_callbacks(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("callbacks"), dict):
            data = {**data, "callbacks": {**{name: {} for name in DEFAULT_CALLBACKS}, **data["callbacks"]}}
        return data

    @field_validator("epochs")
    @classmethod
    def _not_with_steps(cls, epochs: int | None, info: ValidationInfo) -> int | None:
        # A field validator, so that the error names 'epochs' rather than the whole config.
        if epochs is not None and info.data.get("steps") is not None:
            raise PydanticCustomError(
                "steps_and_epochs", "give steps ({steps}) or epochs ({epochs}), not both", {"steps": info.data["steps"], "epochs": epochs}
            )
        return epochs

    @field_validator("d_optimizer", "g_optimizer")
    @classmethod
    def _decay_over_the_run(cls, optimizer: OptimizerConfig, info: ValidationInfo) -> OptimizerConfig:
        # The decay's length is fixed when the run starts and stored in its config, so a resumed or
        # extended run keeps the curve it started on.
        if optimizer.schedule == "constant" or optimizer.decay_steps is not None:
            return optimizer
        if info.data.get("epochs") is not None or info.data.get("max_time") is not None:
            raise PydanticCustomError(
                "decay_steps", "schedule '{schedule}' needs decay_steps when the run's length is given by epochs or "
                "max_time (set {field}.decay_steps)", {"schedule": optimizer.schedule, "field": info.field_name})
        steps = info.data.get("steps") or DEFAULT_STEPS
        return optimizer.model_copy(update={"decay_steps": steps})

    @field_validator("steps_per_execution")
    @classmethod
    def _divides_steps(cls, per_execution: int, info: ValidationInfo) -> int:
        steps = info.data.get("steps")
        if steps is not None and steps % per_execution:
            raise PydanticCustomError(
                "steps_per_execution",
                "must divide steps ({steps}): Keras runs whole executions, so {steps} steps would train {over}",
                {"steps": steps, "over": -(-steps // per_execution) * per_execution},
            )
        return per_execution

    def total_steps(self, dataset_size: int | None) -> int | None:
        """Steps the run is asked for, or None when only ``max_time`` bounds it.

        A length derived from epochs (or the default) is rounded down to whole executions; epochs need
        ``dataset_size`` (a stream of unknown size has none).
        """
        if self.steps is not None:
            return self.steps
        if self.epochs is not None:
            derived = self.epochs * max(1, dataset_size // (self.batch_size * self.n_critic))
        elif self.max_time is not None:
            return None
        else:
            derived = DEFAULT_STEPS
        return max(self.steps_per_execution, derived - derived % self.steps_per_execution)


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file as a dict; a missing or malformed file is a :class:`ConfigError` naming it."""
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {error}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: it is not UTF-8 text") from None
    except RecursionError:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: it is nested too deeply") from None
    except OSError as error:  # a directory, no permission, ...
        raise ConfigError(f"config file {str(path)!r} cannot be read: {error.strerror or error}") from None


def check_run_dir(path: Path) -> None:
    """Refuse a path that is not a run directory, before anything heavy loads; every command says it alike."""
    if not path.exists():
        raise ConfigError(f"run directory {str(path)!r} does not exist; check the path")
    if not path.is_dir():
        raise ConfigError(f"{str(path)!r} is not a ganframe run directory (it is a file)")
    if not (path / "config.toml").is_file():
        raise ConfigError(f"{str(path)!r} is not a ganframe run directory (it has no config.toml)")


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """``set_dotted(d, "callbacks.samples.every", 100)`` sets ``d["callbacks"]["samples"]["every"]``."""
    *parents, last = key.split(".")
    for part in parents:
        data = data.setdefault(part, {})
        if not isinstance(data, dict):
            raise ConfigError(f"config '{key}': '{part}' is not a table")
    data[last] = value


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Lay every override that is not None over ``data`` (keys may be dotted); returns ``data``."""
    given = {key: value for key, value in overrides.items() if value is not None}
    # steps and epochs are one setting (the run's length): an override of one replaces the other.
    for length, other in (("steps", "epochs"), ("epochs", "steps")):
        if length in given and other not in given:
            data.pop(other, None)
    for key, value in given.items():
        set_dotted(data, key, value)
    return data


def resolve_config(path: Path | None = None, overrides: dict[str, Any] | None = None, registry: Any = None) -> RunConfig:
    """Defaults, then the TOML file, then every override that is not None (keys may be dotted).

    An unknown top-level field that belongs in a section (``beta_1``) or, given the plugin ``registry``,
    among the options of a component the config names (``latent_dim``) is pointed to its place.
    """
    return validate_config(apply_overrides(read_toml(path) if path is not None else {}, overrides or {}), registry)


#: Config fields naming a component: its kind, the field of its options and their flag.
_COMPONENT_FIELDS = (("arch", "architecture", "arch_options", "--arch-option"),
                     ("data", "dataset", "data_options", "--data-option"),
                     ("loss", "loss", "loss_options", "--loss-option"))


def _homes(data: dict[str, Any], registry: Any) -> dict[str, str]:
    """Names that belong below the top level -> where they go: a field of a section (``beta_1``), or an
    option of a component ``data`` names (``latent_dim``), so that a misplaced one is pointed home."""
    sections: dict[str, list[str]] = {}
    for section, info in RunConfig.model_fields.items():
        for name in getattr(info.annotation, "model_fields", ()):
            sections.setdefault(name, []).append(section)
    homes = {name: f"{name!r} is a field of {' and '.join(owners)}: set it there, e.g. --set {owners[0]}.{name}=VALUE"
             for name, owners in sections.items()}
    for field, kind, options, flag in reversed(_COMPONENT_FIELDS):  # the architecture's wins a name they share
        name = data.get(field, RunConfig.model_fields[field].default)
        component = registry.components[kind].get(name) if registry is not None and isinstance(name, str) else None
        for option in component.options.model_fields if component is not None else ():
            homes[option] = f"{option!r} is an option of {kind} {name!r}: set {options}.{option}, e.g. {flag} {option}=VALUE"
    return homes


def validate_config(data: dict[str, Any] | RunConfig, registry: Any = None) -> RunConfig:
    """``data`` as a :class:`RunConfig`; every invalid field in one :class:`ConfigError` (see :func:`resolve_config`)."""
    if isinstance(data, RunConfig):
        return data
    try:
        return RunConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(describe_validation_error(error, "config", RunConfig, _homes(data, registry))) from None


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value if v is not None]
    if isinstance(value, Path):
        return str(value)
    return value


def config_to_toml(config: RunConfig) -> str:
    """The resolved config as TOML (None values dropped): what a run directory records."""
    return tomli_w.dumps(_plain(config.model_dump(mode="python")))


def check_components(config: RunConfig, registry: Any) -> dict[str, Any]:
    """Check every named component exists and its options validate; return the validated options."""
    checked: dict[str, Any] = {
        "arch": registry.options("architecture", config.arch, config.arch_options),
        "data": registry.options("dataset", config.data, config.data_options),
        "loss": registry.options("loss", config.loss, config.loss_options),
    }
    for field, kind in (("penalties", "loss"), ("augmentations", "augmentation"), ("callbacks", "callback"), ("metrics", "metric")):
        checked[field] = {name: registry.options(kind, name, opts) for name, opts in getattr(config, field).items()}
    return checked
