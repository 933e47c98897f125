"""The run configuration: defaults, TOML, precedence, error messages, durations, TOML out, component checks."""

from __future__ import annotations

import tomllib
import types
from pathlib import Path

import pytest
from pydantic import Field

import ganframe
from ganframe import ConfigError, Options, RunConfig, hookimpl, load_plugins, resolve_config
from ganframe.config import DEFAULT_CALLBACKS, DEFAULT_STEPS, check_components, config_to_toml, validate_config
from ganframe.plugins import BUILTIN_PLUGINS


def _toml(tmp_path: Path, text: str, name: str = "run.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _error(data: dict) -> str:
    with pytest.raises(ConfigError) as raised:
        validate_config(data)
    return str(raised.value)


# -- defaults and TOML ---------------------------------------------------------------


def test_defaults():
    config = resolve_config()
    assert config == RunConfig() == ganframe.RunConfig()
    assert (config.arch, config.data, config.loss) == ("dense", "mnist", "nonsaturating")
    assert config.arch_options == config.data_options == config.loss_options == {}
    assert config.penalties == config.augmentations == {}
    assert config.callbacks == {"samples": {}, "checkpoint": {}, "metrics": {}, "tensorboard": {}}
    assert tuple(config.callbacks) == DEFAULT_CALLBACKS
    assert config.batch_size == 128
    assert (config.steps, config.epochs, config.max_time) == (None, None, None)
    for optimizer in (config.d_optimizer, config.g_optimizer):
        assert (optimizer.name, optimizer.learning_rate, optimizer.beta_1) == ("adam", 2e-4, 0.5)
    assert config.total_steps(60_000) == DEFAULT_STEPS


def test_defaults_are_not_shared_between_configs():
    first, second = RunConfig(), RunConfig()
    first.arch_options["width"] = 3
    first.callbacks["samples"]["every"] = 5
    first.d_optimizer.learning_rate = 1e-3
    assert second.arch_options == {} and second.callbacks["samples"] == {}
    assert second.d_optimizer.learning_rate == first.g_optimizer.learning_rate == 2e-4
    assert RunConfig().callbacks["samples"] == {}


def test_toml_is_loaded(tmp_path):
    path = _toml(
        tmp_path,
        """
arch = "dcgan"
data = "digits"
data_dir = "data/here"
batch_size = 64
steps = 500
max_time = "15m"

[arch_options]
width = 32

[d_optimizer]
learning_rate = 1e-3

[penalties.r1]
gamma = 10.0
""",
    )
    config = resolve_config(path)
    assert (config.arch, config.data, config.batch_size, config.steps, config.max_time) == ("dcgan", "digits", 64, 500, 900.0)
    assert config.data_dir == Path("data/here")
    assert config.arch_options == {"width": 32}
    assert config.d_optimizer.learning_rate == 1e-3
    assert config.g_optimizer.learning_rate == 2e-4
    assert config.penalties == {"r1": {"gamma": 10.0}}
    assert config.loss == "nonsaturating"  # not in the file: the default


def test_precedence_override_file_default(tmp_path):
    path = _toml(tmp_path, "batch_size = 64\nsteps = 100\nseed = 3\n")
    config = resolve_config(path, {"batch_size": None, "steps": 7, "n_critic": 2, "seed": None})
    assert config.batch_size == 64  # None: the file's value stays
    assert config.steps == 7  # the override wins over the file
    assert config.n_critic == 2  # the override wins over the default
    assert config.seed == 3
    assert config.jit_compile is True  # the default
    assert resolve_config(None, {"batch_size": 32, "steps": None}).batch_size == 32
    assert resolve_config(path, {"jit_compile": False}).jit_compile is False  # a false override is not "missing"


def test_a_length_override_replaces_the_files_other_length(tmp_path):
    path = _toml(tmp_path, "steps = 100\n")
    config = resolve_config(path, {"epochs": 2, "steps": None})
    assert (config.steps, config.epochs) == (None, 2)
    config = resolve_config(_toml(tmp_path, "epochs = 3\n", "epochs.toml"), {"steps": 50})
    assert (config.steps, config.epochs) == (50, None)
    with pytest.raises(ConfigError, match="not both"):
        resolve_config(path, {"epochs": 2, "steps": 9})


def test_dotted_overrides(tmp_path):
    path = _toml(tmp_path, "[callbacks.samples]\nn = 16\n\n[arch_options]\nwidth = 8\n")
    config = resolve_config(
        path,
        {
            "callbacks.samples.every": 100,
            "callbacks.metrics.every": None,
            "d_optimizer.learning_rate": 1e-3,
            "arch_options.depth": 2,
            "loss_options.label_smoothing": 0.1,
        },
    )
    assert config.callbacks["samples"] == {"n": 16, "every": 100}
    assert config.callbacks["metrics"] == {}
    assert config.d_optimizer.learning_rate == 1e-3 and config.g_optimizer.learning_rate == 2e-4
    assert config.arch_options == {"width": 8, "depth": 2}
    assert config.loss_options == {"label_smoothing": 0.1}


def test_dotted_override_through_a_value_is_an_error(tmp_path):
    path = _toml(tmp_path, "batch_size = 3\n")
    with pytest.raises(ConfigError, match="config 'batch_size.x': 'batch_size' is not a table"):
        resolve_config(path, {"batch_size.x": 1})


def test_toml_callbacks_merge_with_the_defaults(tmp_path):
    path = _toml(tmp_path, "[callbacks.samples]\nevery = 500\n\n[callbacks.early_stop]\npatience = 3\n")
    config = resolve_config(path)
    assert config.callbacks == {"samples": {"every": 500}, "checkpoint": {}, "metrics": {}, "tensorboard": {},
                                "early_stop": {"patience": 3}}
    off = resolve_config(_toml(tmp_path, "[callbacks.checkpoint]\nevery = 0\n", "off.toml"))
    assert off.callbacks["checkpoint"] == {"every": 0}
    assert set(off.callbacks) == set(DEFAULT_CALLBACKS)


# -- errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, expected",
    [
        ({"batch_size": 0}, ["config 'batch_size'", "got 0", "greater than 0"]),
        ({"batch_size": 100_000}, ["'batch_size'", "100000", "less than or equal to 65536"]),
        ({"batch_size": "many"}, ["'batch_size'", "'many'", "valid integer"]),
        ({"batchsize": 3}, ["'batchsize'", "unknown field", "did you mean 'batch_size'?"]),
        ({"beta1": 0.9}, ["'beta1'", "did you mean 'beta_1'?", "field of d_optimizer and g_optimizer"]),
        ({"zzz": 1}, ["'zzz'", "unknown field", "remove it or check its spelling"]),
        ({"n_critic": 0}, ["'n_critic'", "got 0", "greater than or equal to 1"]),
        ({"seed": -1}, ["'seed'", "got -1", "greater than or equal to 0"]),
        ({"steps": 0}, ["'steps'", "got 0", "greater than 0"]),
        ({"d_optimizer": {"beta_1": 1.5}}, ["'d_optimizer.beta_1'", "1.5", "less than 1"]),
        ({"g_optimizer": {"name": "adamw"}}, ["'g_optimizer.name'", "'adamw'", "'adam', 'sgd' or 'rmsprop'"]),
        ({"g_optimizer": {"lr": 1}}, ["'g_optimizer.lr'", "unknown field"]),
        ({"g_optimizer": {"beta1": 0.9}}, ["'g_optimizer.beta1'", "unknown field", "did you mean 'beta_1'?"]),
        ({"arch": 3}, ["'arch'", "got 3", "valid string"]),
        ({"callbacks": {"samples": 5}}, ["'callbacks.samples'", "got 5", "valid dictionary"]),
    ],
)
def test_error_names_field_value_and_whats_allowed(data, expected):
    message = _error(data)
    assert len(message.splitlines()) == 1
    for text in expected:
        assert text in message


def test_one_line_per_problem(tmp_path):
    path = _toml(tmp_path, "batch_size = 0\nbatchsize = 3\n[d_optimizer]\nlearning_rate = -1.0\n")
    with pytest.raises(ConfigError) as raised:
        resolve_config(path)
    lines = str(raised.value).splitlines()
    assert len(lines) == 3
    assert all(line.startswith("config '") for line in lines)
    assert {line.split("'")[1] for line in lines} == {"batch_size", "batchsize", "d_optimizer.learning_rate"}


def test_config_error_is_a_usage_error():
    with pytest.raises(ganframe.GanframeError) as raised:
        validate_config({"batch_size": 0})
    assert raised.value.exit_code == 2


def test_bad_toml_names_the_file(tmp_path):
    path = _toml(tmp_path, "batch_size = = 3\n", "broken.toml")
    with pytest.raises(ConfigError) as raised:
        resolve_config(path)
    assert f"config file {str(path)!r} is not valid TOML" in str(raised.value)
    assert "line 1" in str(raised.value)


def test_missing_file_names_the_file(tmp_path):
    path = tmp_path / "nowhere.toml"
    with pytest.raises(ConfigError, match="nowhere.toml") as raised:
        resolve_config(path)
    assert str(raised.value) == f"config file {str(path)!r} does not exist"


def test_unreadable_file_names_the_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot be read"):
        resolve_config(tmp_path)  # a directory
    path = tmp_path / "latin1.toml"
    path.write_bytes('arch = "d\xe9nse"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match="latin1.toml.*not UTF-8"):
        resolve_config(path)


def test_steps_and_epochs_together_are_refused(tmp_path):
    path = _toml(tmp_path, 'arch = "dense"\nsteps = 5\nepochs = 2\n')
    with pytest.raises(ConfigError) as raised:
        resolve_config(path)
    message = str(raised.value)
    assert message == "config 'epochs': got 2; give steps (5) or epochs (2), not both"
    config = RunConfig(steps=5)
    with pytest.raises(ValueError, match="not both"):
        config.epochs = 3  # assignment is validated too


# -- durations -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, seconds",
    [("15m", 900), ("1h30m", 5400), ("90", 90), (90, 90), (2.5, 2.5), ("90s", 90), ("1.5h", 5400), ("1h 5m 3s", 3903), (" 2M ", 120)],
)
def test_max_time_parsing(value, seconds):
    assert validate_config({"max_time": value}).max_time == seconds


@pytest.mark.parametrize("value", ["soon", "15x", "m", "-5", "", "1h30", "h1", "0", "0s", 0, -3])
def test_max_time_refuses(value):
    message = _error({"max_time": value})
    assert message.startswith("config 'max_time': got ")
    assert "duration such as" in message or "greater than 0" in message


def test_max_time_message_says_what_is_allowed():
    assert _error({"max_time": "soon"}) == (
        "config 'max_time': got 'soon'; a duration such as 90, '90s', '15m' or '1h30m' is expected"
    )


# -- total_steps ------------------------------------------------------------------------


def test_total_steps():
    assert RunConfig(steps=7).total_steps(1000) == 7
    assert RunConfig(steps=7, max_time=60).total_steps(1000) == 7
    assert RunConfig(epochs=2, batch_size=10).total_steps(105) == 20
    assert RunConfig(epochs=2, batch_size=10, n_critic=2).total_steps(105) == 10
    assert RunConfig(epochs=3, batch_size=128).total_steps(5) == 3  # a data set smaller than a batch: one step per epoch
    assert RunConfig(max_time="1m").total_steps(1000) is None
    assert RunConfig().total_steps(1000) == DEFAULT_STEPS


# -- TOML out -------------------------------------------------------------------------


def test_config_to_toml_round_trip(tmp_path):
    config = resolve_config(
        None,
        {
            "arch": "dcgan",
            "arch_options": {"width": 8, "name": "x", "sizes": [1, 2]},
            "data": "folder",
            "data_dir": "images/faces",
            "out": "runs/faces",
            "loss": "hinge",
            "penalties": {"r1": {"weight": 10.0}},
            "augmentations": {"flip": {}},
            "callbacks.samples.every": 250,
            "epochs": 4,
            "max_time": "1h30m",
            "g_optimizer.name": "rmsprop",
            "jit_compile": False,
            "seed": 42,
        },
    )
    text = config_to_toml(config)
    path = tmp_path / "resolved.toml"
    path.write_text(text, encoding="utf-8")
    assert resolve_config(path) == config
    assert resolve_config(path).data_dir == Path("images/faces")
    assert "steps" not in tomllib.loads(text)  # None is dropped
    assert config_to_toml(resolve_config(path)) == text


def test_config_to_toml_drops_none(tmp_path):
    config = validate_config({"arch_options": {"width": None, "depth": 2}, "callbacks": {"samples": {"every": None}}})
    data = tomllib.loads(config_to_toml(config))
    assert data["arch_options"] == {"depth": 2}
    assert data["callbacks"]["samples"] == {}
    assert not {"steps", "epochs", "max_time", "data_dir", "out"} & set(data)
    path = tmp_path / "resolved.toml"
    path.write_text(config_to_toml(config), encoding="utf-8")
    assert resolve_config(path).arch_options == {"depth": 2}


def test_default_config_round_trips(tmp_path):
    path = tmp_path / "default.toml"
    path.write_text(config_to_toml(RunConfig()), encoding="utf-8")
    assert resolve_config(path) == RunConfig()


# -- check_components -------------------------------------------------------------------


class _WidthOptions(Options):
    width: int = Field(4, gt=0)


def _components_plugin():
    def archs(register):
        register("inproc-arch", lambda spec, options: None, "An architecture.", _WidthOptions)

    def datasets(register):
        register("inproc-data", lambda context, options: None, "A dataset.")

    def losses(register):
        register("inproc-loss", lambda spec, options: None, "A loss.")
        register("inproc-penalty", lambda spec, options: None, "A penalty.", _WidthOptions)

    def callbacks(register):
        for name in DEFAULT_CALLBACKS:
            register(name, lambda context, options: None, f"The {name} callback.")

    return types.SimpleNamespace(
        ganframe_register_architectures=hookimpl(archs),
        ganframe_register_datasets=hookimpl(datasets),
        ganframe_register_losses=hookimpl(losses),
        ganframe_register_callbacks=hookimpl(callbacks),
    )


@pytest.fixture
def registry():
    """Only the in-process components above: independent of which built-ins exist."""
    return load_plugins(strict=True, disabled=BUILTIN_PLUGINS, extra=[("inproc", _components_plugin())])


def _config(**fields) -> RunConfig:
    return validate_config({"arch": "inproc-arch", "data": "inproc-data", "loss": "inproc-loss", **fields})


def test_check_components_returns_validated_options(registry):
    checked = check_components(_config(arch_options={"width": 9}, penalties={"inproc-penalty": {}}), registry)
    assert checked["arch"].width == 9
    assert checked["penalties"]["inproc-penalty"].width == 4
    assert checked["augmentations"] == {}
    assert set(checked["callbacks"]) == set(DEFAULT_CALLBACKS)


def test_check_components_unknown_arch_lists_the_available_names(registry):
    with pytest.raises(ConfigError) as raised:
        check_components(_config(arch="inproc-arhc"), registry)
    message = str(raised.value)
    assert message.startswith("unknown architecture 'inproc-arhc'; available: ")
    available = message.split("available: ")[1].split(" (did you mean")[0].split(", ")
    assert "inproc-arch" in available and available == sorted(available)  # installed plugins may add names
    assert "did you mean 'inproc-arch'?" in message


def test_check_components_unknown_default_arch_with_builtins():
    registry = load_plugins()
    with pytest.raises(ConfigError) as raised:
        check_components(validate_config({"arch": "nosuch"}), registry)
    assert "unknown architecture 'nosuch'; available: " in str(raised.value)
    assert "dense" in str(raised.value)


@pytest.mark.parametrize(
    "fields, expected",
    [
        ({"arch_options": {"width": 0}}, "architecture 'inproc-arch' (plugin 'inproc') option 'width': got 0; input should be greater than 0"),
        ({"data_options": {"size": 3}}, "dataset 'inproc-data' (plugin 'inproc') option 'size': unknown field"),
        ({"penalties": {"inproc-penalty": {"width": -1}}}, "loss 'inproc-penalty' (plugin 'inproc') option 'width': got -1"),
        ({"augmentations": {"flip": {}}}, "unknown augmentation 'flip'; available: {augmentations}"),
        ({"callbacks": {"early_stop": {}}}, "unknown callback 'early_stop'; available: {callbacks}"),
    ],
)
def test_check_components_errors(registry, fields, expected):
    with pytest.raises(ConfigError) as raised:
        check_components(_config(**fields), registry)
    # Installed plugin distributions (plugins/*, a user's own) may add augmentations and callbacks: the
    # message must name exactly those registered, and the built-in callbacks are always among them.
    assert {"checkpoint", "metrics", "samples"} <= set(registry.names("callback"))
    for kind in ("augmentation", "callback"):
        expected = expected.replace(f"{{{kind}s}}", ", ".join(registry.names(kind)) or "(none)")
    assert expected in str(raised.value)


def test_steps_per_execution_must_divide_steps_and_rounds_derived_lengths():
    with pytest.raises(ConfigError, match=r"'steps_per_execution': got 10; must divide steps \(25\).*would train 30"):
        validate_config({"steps": 25, "steps_per_execution": 10})
    assert validate_config({"steps": 30, "steps_per_execution": 10}).total_steps(1000) == 30
    assert validate_config({"epochs": 1, "batch_size": 10, "steps_per_execution": 7}).total_steps(100) == 7
    assert validate_config({"steps_per_execution": 3}).total_steps(100) == 9999


# -- the recipes in docs/ ------------------------------------------------------------------

RECIPES = sorted((Path(__file__).resolve().parent.parent / "docs" / "recipes").glob("*.toml"))


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda path: path.stem)
def test_every_recipe_is_a_valid_config_of_built_in_components(recipe):
    """A recipe users copy must load as written: its fields and every component's options validate."""
    checked = check_components(resolve_config(recipe), load_plugins(strict=True))
    assert checked["arch"] is not None


def test_the_recipes_are_there():
    assert {path.stem for path in RECIPES} >= {"dense-mnist", "dcgan-mnist", "wgan-gp-mnist", "hinge-sn-resnet-mnist",
                                               "cgan-mnist", "dcgan-fashion", "hinge-sn-resnet-cifar10"}
