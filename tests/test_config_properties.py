"""Property tests of config parsing: any input gives a RunConfig or one ConfigError naming a field, never a crash.

Inputs are what TOML can hold: nested tables and arrays of random keys and values, and
near-valid configs built from RunConfig's real field names (nested models included) with
plausible, wrong-typed and out-of-range values. Also durations, ``--set``-style KEY=VALUE
items and raw text read as a config file. Examples are kept few: the suite runs on 2 cores.
"""

from __future__ import annotations

import copy
import re
import string
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from ganframe import ConfigError, RunConfig
from ganframe.cli import _key_values
from ganframe.config import config_to_toml, resolve_config, validate_config

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: Bare TOML keys: what a user types as a key.
KEYS = st.text(alphabet=string.ascii_lowercase + string.digits + "_-", min_size=1, max_size=10)
SCALARS = st.one_of(
    st.booleans(),
    st.integers(-3, 300),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["dense", "dcgan", "digits", "mnist", "minimax", "adam", "sgd", "15m", "1h30m", "0s", "-1", ""]),
    st.dates(),
)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
                      max_leaves=8)


def is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def near(default: Any) -> st.SearchStrategy[Any]:
    """Values of ``default``'s own type, in range and out of it; anything for a field without a default."""
    if isinstance(default, bool):
        return st.booleans()
    if isinstance(default, int):
        return st.integers(-2, 70_000)
    if isinstance(default, float):
        return st.floats(-0.5, 1.5)
    if isinstance(default, dict):
        return st.dictionaries(KEYS, VALUES, max_size=2)
    return SCALARS


def near_valid(model: type[BaseModel]) -> st.SearchStrategy[dict[str, Any]]:
    """A table of ``model``: some fields at their defaults and one changed, to a value of its type or anything.

    A nested model's field gets a near-valid table of its own, recursively; now and then an
    unknown key is added. So an example is valid, or wrong in one or two places.
    """
    fields = model.model_fields
    defaults = {name: info.default.model_dump() if isinstance(info.default, BaseModel) else info.default
                for name, info in fields.items() if info.default is not None}

    def changed(name: str) -> st.SearchStrategy[dict[str, Any]]:
        annotation = fields[name].annotation
        values = near_valid(annotation) if is_model(annotation) else near(defaults.get(name))
        return (values | VALUES).map(lambda value: {name: value})

    base = st.fixed_dictionaries({}, optional={name: st.just(value).map(copy.deepcopy) for name, value in defaults.items()})
    unknown = st.integers(0, 3).flatmap(  # an unknown key in one example of four
        lambda n: st.dictionaries(KEYS, VALUES, min_size=1, max_size=1) if n == 0 else st.just({}))
    return st.builds(lambda *tables: {key: value for table in tables for key, value in table.items()},
                     unknown, base, st.sampled_from(list(fields)).flatmap(changed))


CONFIGS = st.one_of(near_valid(RunConfig), st.dictionaries(KEYS, VALUES, max_size=4))


def dotted_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every field of ``model`` as a dotted key (``d_optimizer.beta_1``), nested models included."""
    paths = []
    for name, info in model.model_fields.items():
        paths.append(prefix + name)
        if is_model(info.annotation):
            paths += dotted_paths(info.annotation, f"{prefix}{name}.")
    return paths


DOTTED = st.one_of(st.sampled_from(dotted_paths(RunConfig) + ["arch_options.width", "callbacks.samples.every"]),
                   st.lists(KEYS, min_size=1, max_size=3).map(".".join))


def assert_names_a_field(error: ConfigError, flag: str | None = None) -> None:
    """Each line of the message names the field it is about: ``config 'field': ...``.

    An item of ``flag`` that is not KEY=VALUE is named by the item instead, on one line.
    """
    message = str(error)
    if flag is not None and message.startswith(f"{flag} "):
        assert "\n" not in message, message
        return
    for line in message.splitlines():
        field = re.match(r"^config '([^']+)'", line)
        assert field and field.group(1) != "(root)", message


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One file the examples overwrite (a function-scoped tmp_path would be shared by all examples anyway)."""
    return tmp_path_factory.mktemp("properties") / "run.toml"


@SETTINGS
@given(data=CONFIGS)
def test_any_config_validates_or_names_a_field(data: dict[str, Any]) -> None:
    try:
        config = validate_config(data)
    except ConfigError as error:
        assert_names_a_field(error)
        return
    assert isinstance(config, RunConfig)
    # what the run directory records reads back as the same config (NaN-safe: compare the text)
    text = config_to_toml(config)
    assert config_to_toml(validate_config(tomllib.loads(text))) == text


@SETTINGS
@given(data=CONFIGS, overrides=st.dictionaries(DOTTED, VALUES | st.none(), max_size=3))
def test_a_toml_file_with_overrides_validates_or_names_a_field(config_file: Path, data: dict[str, Any],
                                                               overrides: dict[str, Any]) -> None:
    try:
        text = tomli_w.dumps(data)
    except (TypeError, ValueError):  # not every generated value is TOML (e.g. nested arrays of tables)
        assume(False)
    config_file.write_text(text, encoding="utf-8")
    try:
        assert isinstance(resolve_config(config_file, overrides), RunConfig)
    except ConfigError as error:
        assert_names_a_field(error)


@SETTINGS
@given(text=st.text(max_size=60) | st.sampled_from(["steps = = 3", "[arch_options\n", 'arch = "dense"\n[arch]\nx=1\n']))
def test_any_file_content_is_read_or_refused_by_name(config_file: Path, text: str) -> None:
    config_file.write_text(text, encoding="utf-8")
    try:
        assert isinstance(resolve_config(config_file), RunConfig)
    except ConfigError as error:
        assert str(error).startswith(f"config file {str(config_file)!r}") or str(error).startswith("config '"), str(error)


def test_a_deeply_nested_file_is_refused_by_name(config_file: Path) -> None:
    config_file.write_text("steps = " + "[" * 5000, encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        resolve_config(config_file)


ITEMS = st.one_of(
    st.text(max_size=30),
    st.builds(lambda key, value: f"{key}={value}", DOTTED, SCALARS.map(repr) | st.text(max_size=12)),
    st.builds(lambda key, value: f"{key}={tomli_w.dumps({'v': value})[4:].strip()}", DOTTED, SCALARS),
)


@SETTINGS
@given(items=st.lists(ITEMS, max_size=4))
def test_set_items_parse_and_validate_or_name_the_item(items: list[str]) -> None:
    try:
        overrides = _key_values(items, "--set")
        assert isinstance(resolve_config(None, overrides), RunConfig)
    except ConfigError as error:
        assert_names_a_field(error, "--set")


def test_a_deeply_nested_set_value_is_kept_as_text() -> None:
    deep = "[" * (sys.getrecursionlimit() * 2)
    assert _key_values([f"steps={deep}"], "--set") == {"steps": deep}


@SETTINGS
@given(text=st.text(max_size=20) | st.from_regex(r"\s*\d{0,4}(\.\d{1,2})?\s*[hmsHMS]?\s*", fullmatch=True))
def test_any_max_time_is_a_positive_duration_or_named(text: str) -> None:
    try:
        assert validate_config({"max_time": text}).max_time > 0
    except ConfigError as error:
        assert str(error).startswith("config 'max_time': got "), str(error)


@SETTINGS
@given(hours=st.integers(0, 99), minutes=st.integers(0, 999), seconds=st.integers(0, 999),
       parts=st.sets(st.sampled_from("hms"), min_size=1), spaced=st.booleans(), upper=st.booleans())
def test_composed_durations_add_up(hours: int, minutes: int, seconds: int, parts: set[str], spaced: bool,
                                   upper: bool) -> None:
    values = {"h": hours, "m": minutes, "s": seconds}
    text = (" " if spaced else "").join(f"{values[unit]}{unit}" for unit in "hms" if unit in parts)
    expected = sum(values[unit] * {"h": 3600, "m": 60, "s": 1}[unit] for unit in parts)
    assume(expected > 0)
    assert validate_config({"max_time": text.upper() if upper else text}).max_time == expected
