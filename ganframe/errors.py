"""Errors that reach the user as one clear message, never a traceback.

Every error ganframe raises on purpose derives from :class:`GanframeError` and
carries the exit code the CLI uses: 2 for bad input or usage, 1 for a failure
at run time (130, interrupted, is the CLI's own).
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Iterable, Mapping

if TYPE_CHECKING:
    import pydantic


class GanframeError(Exception):
    """Base of ganframe's deliberate errors; ``str(err)`` is the whole message."""

    exit_code = 1


class ConfigError(GanframeError):
    """A run configuration or a component's options are invalid."""

    exit_code = 2


class PluginError(GanframeError):
    """A plugin failed to load or register (fatal only in strict mode)."""

    exit_code = 2


class UnknownComponentError(ConfigError):
    """A name that no loaded plugin registered."""


class DataError(GanframeError):
    """A data set is missing, malformed or incompatible with the run."""

    exit_code = 2


class RunError(GanframeError):
    """A run directory or checkpoint cannot be used, or training failed."""

    exit_code = 1


class Interrupted(GanframeError):
    """Training was stopped by the user (Ctrl-C / SIGTERM) after a checkpoint was written."""

    exit_code = 130


def did_you_mean(name: str, candidates: Iterable[str], aliases: Mapping[str, str] | None = None) -> str | None:
    """The candidate ``name`` was most likely meant as, or None: the one place every "did you mean" comes from.

    ``aliases`` maps names people know from elsewhere (papers, other frameworks) to a candidate; they
    are only ever suggested, so a run's config always names what it really uses.
    """
    candidates = list(candidates)
    aliases = {alias: target for alias, target in (aliases or {}).items() if target in candidates}
    if name.lower() in aliases:
        return aliases[name.lower()]
    close = difflib.get_close_matches(name, [*candidates, *aliases], n=1)
    return aliases.get(close[0], close[0]) if close else None


def _fields_at(model: "type[pydantic.BaseModel] | None", path: tuple) -> list[str]:
    """The field names of the (nested) model at ``path`` below ``model``; none where no model is."""
    for part in path:
        field = model.model_fields.get(str(part)) if model is not None else None
        model = field.annotation if field is not None else None
        if not (isinstance(model, type) and hasattr(model, "model_fields")):
            return []
    return list(model.model_fields) if model is not None else []


def describe_validation_error(error: "pydantic.ValidationError", where: str,
                              model: "type[pydantic.BaseModel] | None" = None,
                              elsewhere: Mapping[str, str] | None = None) -> str:
    """Turn a pydantic error into lines naming the field, the bad value and what is allowed.

    ``where`` prefixes the field path, e.g. ``"config"`` or ``"architecture 'dense' option"``. An
    unknown field gets the closest of ``model``'s field names at its place; at the top level also
    of ``elsewhere``, names that belong in another place mapped to a sentence saying where.
    """
    lines = []
    for item in error.errors(include_url=False):
        field = ".".join(str(part) for part in item["loc"]) or "(root)"
        if item["type"] == "extra_forbidden":
            *parents, key = item["loc"] or ("",)
            fields, others = _fields_at(model, tuple(parents)), elsewhere if not parents and elsewhere else {}
            close = did_you_mean(str(key), [*fields, *others])
            hint = "remove it or check its spelling"
            if close in fields:
                hint = f"did you mean {close!r}?"
            elif close is not None:
                hint = others[close] if close == key else f"did you mean {close!r}? {others[close]}"
            lines.append(f"{where} '{field}': unknown field (value {item['input']!r}); {hint}")
            continue
        if item["type"] == "missing":
            lines.append(f"{where} '{field}': required, but not given")
            continue
        message = str(item["ctx"]["error"]) if item["type"] == "value_error" else item["msg"]
        message = message[0].lower() + message[1:]
        got = f"got {item['input']!r}; " if item["loc"] else ""
        lines.append(f"{where} '{field}': {got}{message}")
    return "\n".join(lines)
