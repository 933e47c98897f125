"""Plugin loading and the component registry built from it.

Built-in components register through the very same hooks as third-party ones
(the modules in :data:`BUILTIN_PLUGINS`). Third-party plugins are the entry
points of group ``ganframe``; each is loaded, checked and called on its own,
so one broken plugin is reported by name and every other one still registers.

Environment:
  ``GANFRAME_STRICT_PLUGINS=1``   any plugin failure is fatal (:class:`PluginError`).
  ``GANFRAME_DISABLE_PLUGINS=a,b`` skip the plugins (entry points or built-ins) so named.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import os
import re
import traceback
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import pluggy
from pydantic import BaseModel, Field, ValidationError

from ganframe import hookspecs
from ganframe.contract import (KINDS, AdversarialLoss, Augmentation, Component, DataSource, DataStream, FeatureExtractor,
                               ImageData, InvalidImageData, Metric, Networks, NoOptions, Options, PENALTY_TARGETS, Penalty)
from ganframe.errors import (ConfigError, DataError, GanframeError, PluginError, RunError, UnknownComponentError,
                             describe_validation_error, did_you_mean)

ENTRY_POINT_GROUP = "ganframe"

BUILTIN_PLUGINS = (
    "ganframe.builtin.archs",
    "ganframe.builtin.datasets",
    "ganframe.builtin.folder",
    "ganframe.builtin.tfrecord",
    "ganframe.builtin.losses",
    "ganframe.builtin.terms",
    "ganframe.builtin.callbacks",
    "ganframe.builtin.features",
    "ganframe.builtin.metrics",
)

_NAME = re.compile(r"^[a-z][a-z0-9_.-]*$")

#: The keywords pydantic's ``Field`` takes; it keeps any other one as JSON-schema data, silently.
_FIELD_KEYWORDS = tuple(name for name in inspect.signature(Field).parameters if name != "extra")

#: What each kind's factory must return (docs/plugins.md); callbacks: see :func:`_factory_returns`.
_RETURNS: dict[str, tuple[type, ...]] = {
    "architecture": (Networks,),
    "dataset": (ImageData, DataSource, DataStream),
    "loss": (AdversarialLoss, Penalty),
    "augmentation": (Augmentation,),
    "metric": (Metric,),
    "feature_extractor": (FeatureExtractor,),
}


def _factory_returns(kind: str) -> tuple[type, ...]:
    """The types a factory of ``kind`` may return; Keras only for callbacks, which are built in a run."""
    if kind == "callback":
        import keras

        return (keras.callbacks.Callback,)
    return _RETURNS[kind]


@dataclass
class PluginRecord:
    """What ``ganframe plugins`` reports about one plugin."""

    name: str
    distribution: str
    version: str
    status: str = "loaded"  # "loaded", "failed" or "disabled"
    error: str | None = None
    components: list[tuple[str, str]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"plugin '{self.name}' ({self.distribution} {self.version})"


#: Names known from papers and other frameworks -> (what ganframe registers, what else they imply), by kind.
#: Suggested when a name is unknown, never accepted in its place.
ALIASES: dict[str, dict[str, tuple[str, str]]] = {
    "loss": {
        **dict.fromkeys(("gan", "vanilla", "bce", "ns", "non-saturating", "non_saturating"), ("nonsaturating", "")),
        "wgan": ("wasserstein", ""),
        **dict.fromkeys(("wgan-gp", "wgan_gp", "wgangp"), (
            "wasserstein", "WGAN-GP is the loss 'wasserstein' with the penalty 'gradient_penalty': "
                           "--loss wasserstein --penalty gradient_penalty")),
        **dict.fromkeys(("ls", "lsq", "least_squares", "least-squares", "mse"), ("lsgan", "")),
        "gp": ("gradient_penalty", ""),
        **dict.fromkeys(("ragan", "rasgan", "relativistic_average"), ("relativistic", "")),
        "ralsgan": ("relativistic", "RaLSGAN is the loss 'relativistic' with form least_squares: "
                                    "--loss relativistic --set loss_options.form=least_squares"),
    },
}


class Registry:
    """All registered components by kind and name, and the record of every plugin."""

    def __init__(self) -> None:
        self.components: dict[str, dict[str, Component]] = {kind: {} for kind in KINDS}
        self.plugins: list[PluginRecord] = []

    def names(self, kind: str) -> list[str]:
        return sorted(self.components[kind])

    def get(self, kind: str, name: str) -> Component:
        """The component, or an error listing the available names and the closest one."""
        found = self.components[kind].get(name)
        if found is not None:
            return found
        available = self.names(kind)
        message = f"unknown {kind} {name!r}; available: {', '.join(available) or '(none)'}"
        aliases = ALIASES.get(kind, {})
        close = did_you_mean(name, available, {alias: target for alias, (target, _) in aliases.items()})
        if close:
            also = aliases.get(name.lower(), ("", ""))[1]
            message += f" (did you mean {close!r}?)" + (f"; {also}" if also else "")
        failed = [record.label for record in self.plugins if record.status == "failed"]
        if failed:
            message += f"\nnote: these plugins failed to load (see `ganframe plugins`): {', '.join(failed)}"
        raise UnknownComponentError(message)

    def describe(self, kind: str, name: str) -> str:
        """How messages name a component: ``architecture 'dense' (plugin 'builtin.archs')``."""
        return f"{kind} {name!r} (plugin {self.get(kind, name).plugin!r})"

    def options(self, kind: str, name: str, options: dict[str, Any] | None) -> Options:
        """Validate user options with the component's own model; errors name component and plugin."""
        component = self.get(kind, name)
        try:
            return component.options.model_validate(options or {})
        except ValidationError as error:
            where = f"{kind} {name!r} (plugin {component.plugin!r}) option"
            raise ConfigError(describe_validation_error(error, where, component.options)) from None

    def build(self, kind: str, name: str, options: dict[str, Any] | None, *args: Any) -> Any:
        """Validate ``options``, call the factory as ``factory(*args, options)`` and check what it returns.

        A factory that raises something other than ganframe's own errors, or returns the wrong
        type, is a broken component: :class:`RunError` names it, its plugin and the error (the
        original stays chained for Python users), so the CLI shows a message, not a traceback.
        Its own errors pass as they are (a :class:`ConfigError` is the user's mistake, exit 2),
        except that :class:`ImageData` it refused is reported under the component's name.
        """
        validated = self.options(kind, name, options)
        component = self.get(kind, name)
        where = self.describe(kind, name)
        try:
            built = component.factory(*args, validated)
        except InvalidImageData as error:
            raise DataError(f"{where}: {error.problem}") from error
        except GanframeError:
            raise
        except Exception as error:  # noqa: BLE001 - any plugin bug becomes one message
            raise RunError(f"{where} failed to build: {_error_text(error)}") from error
        expected = _factory_returns(kind)
        if not isinstance(built, expected):
            raise RunError(
                f"{where}: its factory returned {type(built).__name__}, expected "
                f"{' or '.join(t.__name__ for t in expected)}; the plugin breaks the contract (docs/plugins.md), "
                f"update or disable it (GANFRAME_DISABLE_PLUGINS={component.plugin})"
            )
        if isinstance(built, Penalty) and built.applies_to not in PENALTY_TARGETS:
            raise RunError(f"{where}: applies_to is {built.applies_to!r}, expected one of "
                           f"{', '.join(map(repr, PENALTY_TARGETS))}; the plugin breaks the contract (docs/plugins.md)")
        return built

    def record(self, name: str) -> PluginRecord | None:
        return next((record for record in self.plugins if record.name == name), None)


class _Staging:
    """Collects one plugin's registrations so a failure can drop all of them."""

    def __init__(self, plugin: str) -> None:
        self.plugin = plugin
        self.components: list[Component] = []

    def register_for(self, kind: str) -> Callable[..., None]:
        def register(
            name: str,
            factory: Callable[..., Any],
            description: str,
            options: type[BaseModel] = NoOptions,
        ) -> None:
            if not isinstance(name, str) or not _NAME.match(name):
                raise PluginError(f"{kind} name {name!r} must be lower case letters, digits, '_', '.' or '-'")
            if not callable(factory):
                raise PluginError(f"{kind} {name!r}: factory {factory!r} is not callable")
            if not isinstance(description, str) or not description.strip() or "\n" in description.strip():
                raise PluginError(f"{kind} {name!r}: description must be one non-empty line")
            if not (isinstance(options, type) and issubclass(options, BaseModel)):
                raise PluginError(f"{kind} {name!r}: options must be a pydantic model class, got {options!r}")
            if options.model_config.get("extra") != "forbid":
                raise PluginError(f"{kind} {name!r}: options model {options.__name__} must forbid extra fields (derive from ganframe.Options)")
            _refuse_field_typos(kind, name, options)
            if any(c.kind == kind and c.name == name for c in self.components):
                raise PluginError(f"{kind} {name!r} is registered twice by this plugin")
            self.components.append(Component(kind, name, factory, description.strip(), options, self.plugin))

        return register


def _refuse_field_typos(kind: str, name: str, options: type[BaseModel]) -> None:
    """Refuse ``Field(3, descripton="...")``: pydantic files an unknown keyword under
    ``json_schema_extra``, so the description or bound the author meant silently does not exist.

    ganframe never reads JSON-schema data; a plugin that wants some anyway passes
    ``json_schema_extra`` as a function, which is not checked.
    """
    for field_name, info in options.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        for key in extra:
            if key in _FIELD_KEYWORDS:
                continue
            close = did_you_mean(key, _FIELD_KEYWORDS)
            hint = f" (did you mean {close!r}?)" if close else ""
            raise PluginError(
                f"{kind} {name!r} option {field_name!r}: Field() has no keyword {key!r}{hint}; pydantic keeps "
                "it as JSON-schema data, which ganframe never reads, so it does nothing"
            )


def _env_list(value: str | None) -> set[str]:
    return {part.strip() for part in (value or "").split(",") if part.strip()}


def _strict_from_env() -> bool:
    return os.environ.get("GANFRAME_STRICT_PLUGINS", "").strip().lower() in {"1", "true", "yes", "on"}


def _error_text(error: BaseException) -> str:
    if isinstance(error, PluginError):
        return str(error)
    last = traceback.extract_tb(error.__traceback__)[-1:] if error.__traceback__ else []
    where = f" (at {last[0].filename}:{last[0].lineno})" if last else ""
    return f"{type(error).__name__}: {error}{where}"


@dataclass
class _Source:
    """Something that can become a plugin: a name, its provenance, and how to load it."""

    name: str
    distribution: str
    version: str
    load: Callable[[], Any]


def _builtin_sources() -> list[_Source]:
    from ganframe import __version__

    return [
        _Source(module, "ganframe", __version__, lambda module=module: importlib.import_module(module))
        for module in BUILTIN_PLUGINS
    ]


def _dist_location(dist: importlib.metadata.Distribution | None) -> str:
    try:
        return str(dist.locate_file("")) if dist is not None else ""
    except Exception:  # noqa: BLE001 - a custom Distribution need not implement locate_file
        return ""


def _ordered_entry_points() -> list[importlib.metadata.EntryPoint]:
    """Entry points in a stable order: by ``sys.path`` directory, then distribution and entry-point name.

    ``entry_points()`` walks ``sys.path`` in order but lists each directory in
    ``os.listdir`` order, which differs between file systems; since the first
    plugin to register a name keeps it, that order must not be left to chance.
    An earlier directory still comes first, as it does for imports.
    """
    directories: dict[str, int] = {}
    keyed = []
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = entry_point.dist
        rank = directories.setdefault(_dist_location(dist), len(directories))
        dist_name = (dist.metadata["Name"] or "") if dist is not None else ""
        keyed.append(((rank, dist_name.lower(), entry_point.name), entry_point))
    return [entry_point for _, entry_point in sorted(keyed, key=lambda item: item[0])]


def _entry_point_sources() -> list[_Source]:
    sources = []
    for entry_point in _ordered_entry_points():
        dist = entry_point.dist
        sources.append(
            _Source(
                entry_point.name,
                dist.metadata["Name"] if dist is not None else "?",
                dist.version if dist is not None else "?",
                entry_point.load,
            )
        )
    return sources


def load_plugins(
    *,
    strict: bool | None = None,
    disabled: Iterable[str] | None = None,
    extra: Iterable[tuple[str, Any]] = (),
    only: Iterable[str] | None = None,
) -> Registry:
    """Load built-ins, entry points and ``extra`` (name, plugin object) pairs into a new registry.

    ``strict`` and ``disabled`` default to ``GANFRAME_STRICT_PLUGINS`` and
    ``GANFRAME_DISABLE_PLUGINS``. ``only`` (entry-point names) loads just those
    entry points, for a registry that isolates the plugins under test
    (:mod:`ganframe.testing`); the others are not even imported.
    """
    strict = _strict_from_env() if strict is None else strict
    disabled = _env_list(os.environ.get("GANFRAME_DISABLE_PLUGINS")) if disabled is None else set(disabled)
    entry_points = _entry_point_sources()
    if only is not None:
        wanted = set(only)
        entry_points = [source for source in entry_points if source.name in wanted]
    sources = _builtin_sources() + entry_points
    sources += [_Source(name, "(in process)", "-", lambda obj=obj: obj) for name, obj in extra]

    registry = Registry()
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    for source in sources:
        record = PluginRecord(source.name, source.distribution, source.version)
        registry.plugins.append(record)
        if source.name in disabled:
            record.status = "disabled"
            continue
        try:
            staged = _register_one(manager, source)
            _commit(registry, staged, record)
        except Exception as error:  # noqa: BLE001 - any plugin error is reported, not raised
            record.status, record.error = "failed", _error_text(error)
            if strict:
                raise PluginError(f"{record.label} failed: {record.error}") from error
    return registry


def with_plugins(registry: Registry, extra: Iterable[tuple[str, Any]]) -> Registry:
    """A copy of ``registry`` with in-process ``(name, plugin object)`` pairs added, checked as at loading.

    The original stays as it was, so plugins made for one call (models passed from Python) do not
    outlive it; a plugin that fails raises :class:`PluginError`.
    """
    copy = Registry()
    copy.components = {kind: dict(components) for kind, components in registry.components.items()}
    copy.plugins = list(registry.plugins)
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    for name, plugin in extra:
        source = _Source(name, "(in process)", "-", lambda plugin=plugin: plugin)
        record = PluginRecord(source.name, source.distribution, source.version)
        _commit(copy, _register_one(manager, source), record)
        copy.plugins.append(record)
    return copy


def _register_one(manager: pluggy.PluginManager, source: _Source) -> _Staging:
    """Load one plugin, check its hook names, and call each of its hooks with its own ``register``."""
    plugin = source.load()
    if manager.is_registered(plugin):
        raise PluginError("the same plugin object is already registered under another name")
    manager.register(plugin, name=source.name)
    try:
        staging = _Staging(source.name)
        for caller in manager.get_hookcallers(plugin) or []:
            if caller.name not in hookspecs.HOOK_KINDS:
                close = did_you_mean(caller.name, hookspecs.HOOK_KINDS)
                hint = f" (did you mean {close!r}?)" if close else ""
                raise PluginError(f"unknown hook {caller.name!r}{hint}")
        for caller in manager.get_hookcallers(plugin) or []:
            register = staging.register_for(hookspecs.HOOK_KINDS[caller.name])
            for impl in caller.get_hookimpls():
                if impl.plugin is plugin:
                    impl.function(**{name: register for name in impl.argnames})
        return staging
    finally:
        # The manager only served to validate and find hook implementations;
        # unregistering keeps a failed plugin from ever being called again.
        manager.unregister(plugin)


def _commit(registry: Registry, staging: _Staging, record: PluginRecord) -> None:
    for component in staging.components:
        holder = registry.components[component.kind].get(component.name)
        if holder is not None:
            other = registry.record(holder.plugin)
            other_label = other.label if other else repr(holder.plugin)
            raise PluginError(f"{component.kind} {component.name!r} is already registered by {other_label}")
    for component in staging.components:
        registry.components[component.kind][component.name] = component
        record.components.append((component.kind, component.name))


_REGISTRY: Registry | None = None


def get_registry(*, reload: bool = False) -> Registry:
    """The process-wide registry, loaded on first use."""
    global _REGISTRY
    if _REGISTRY is None or reload:
        _REGISTRY = load_plugins()
    return _REGISTRY


def reset_registry() -> None:
    """Forget the process-wide registry; the next :func:`get_registry` loads plugins anew."""
    global _REGISTRY
    _REGISTRY = None


def listed_kind(component: Component) -> str:
    """The kind ``ganframe plugins`` shows: ``penalty`` for a loss whose factory makes a :class:`Penalty`.

    Penalties register through the loss hook, so their kind is ``loss``; a listing tells them apart
    by the factory's return annotation (or the factory being a Penalty class), without building it.
    """
    if component.kind != "loss":
        return component.kind
    factory = component.factory
    if isinstance(factory, type):
        return "penalty" if issubclass(factory, Penalty) else "loss"
    try:
        returned = typing.get_type_hints(factory).get("return")
    except Exception:  # noqa: BLE001 - an annotation that does not resolve says nothing either way
        return "loss"
    return "penalty" if isinstance(returned, type) and issubclass(returned, Penalty) else "loss"


def _type_name(annotation: Any) -> str:
    """A readable type: ``tuple[int, ...]`` rather than the Annotated/FieldInfo repr pydantic keeps."""
    text = annotation.__name__ if isinstance(annotation, type) else str(annotation).replace("typing.", "")
    while (start := text.find("Annotated[")) >= 0:
        depth, end = 0, start + len("Annotated")
        for end in range(end, len(text)):
            depth += {"[": 1, "]": -1}.get(text[end], 0)
            if depth == 0:
                break
        inner = text[start + len("Annotated["):end].split(",")[0]
        text = text[:start] + inner + text[end + 1:]
    return text


def options_model_summary(options: type[Options]) -> dict[str, str]:
    """Field name -> "type = default  (description)" for listings and docs."""
    summary = {}
    for name, info in options.model_fields.items():
        text = _type_name(info.annotation)
        text += " (required)" if info.is_required() else f" = {info.default!r}"
        if info.description:
            text += f"  # {info.description}"
        summary[name] = text
    return summary
