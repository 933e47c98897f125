"""Errors that reach the user as one clear message, never a traceback.

Every error ganframe raises on purpose derives from :class:`GanframeError` and
carries the exit code the CLI uses: 2 for bad input or usage, 1 for a failure
at run time (130, interrupted, is the CLI's own).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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


def describe_validation_error(error: "pydantic.ValidationError", where: str) -> str:
    """Turn a pydantic error into lines naming the field, the bad value and what is allowed.

    ``where`` prefixes the field path, e.g. ``"config"`` or ``"architecture 'dense' option"``.
    """
    lines = []
    for item in error.errors(include_url=False):
        field = ".".join(str(part) for part in item["loc"]) or "(root)"
        if item["type"] == "extra_forbidden":
            lines.append(f"{where} '{field}': unknown field (value {item['input']!r}); remove it or check its spelling")
            continue
        if item["type"] == "missing":
            lines.append(f"{where} '{field}': required, but not given")
            continue
        message = str(item["ctx"]["error"]) if item["type"] == "value_error" else item["msg"]
        message = message[0].lower() + message[1:]
        got = f"got {item['input']!r}; " if item["loc"] else ""
        lines.append(f"{where} '{field}': {got}{message}")
    return "\n".join(lines)
