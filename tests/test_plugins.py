"""Plugin loading through the public API: built-ins, real installed plugins, broken ones, the registry."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import types

import numpy as np
import pytest
from pydantic import BaseModel, Field

import ganframe
from ganframe import ConfigError, DataSpec, NoOptions, Options, PluginError, hookimpl, load_plugins

BROKEN = {
    # entry point name: distribution
    "brokenimport": "ganframe-brokenimport",
    "misspelt": "ganframe-misspelt",
    "raising": "ganframe-raising",
    "duplicate": "ganframe-duplicate",
}
TESTPLUGIN_VERSION = "0.3.1"


@pytest.fixture(autouse=True)
def _no_plugin_env(monkeypatch):
    monkeypatch.delenv("GANFRAME_STRICT_PLUGINS", raising=False)
    monkeypatch.delenv("GANFRAME_DISABLE_PLUGINS", raising=False)


def _failed_except(registry, keep: str) -> list[str]:
    """Names of the plugins that failed in ``registry``, but ``keep``: disable these to isolate ``keep``."""
    return [record.name for record in registry.plugins if record.status == "failed" and record.name != keep]


def _plugin(**hooks):
    """An in-process plugin object from hook functions (decorated here)."""
    return types.SimpleNamespace(**{name: hookimpl(function) for name, function in hooks.items()})


def _factory(*args):
    return None


# -- the installed distributions --------------------------------------------------


def test_fixture_makes_the_distributions_visible(installed_plugins):
    found = {ep.name: ep for ep in importlib.metadata.entry_points(group="ganframe")}
    assert {"testplugin", *BROKEN} <= set(found)
    assert found["testplugin"].dist.metadata["Name"] == "ganframe-testplugin"
    assert importlib.metadata.version("ganframe-testplugin") == TESTPLUGIN_VERSION
    assert installed_plugins.env["PYTHONPATH"].startswith(installed_plugins.path)


def test_distributions_are_invisible_without_the_fixture():
    names = {ep.name for ep in importlib.metadata.entry_points(group="ganframe")}
    assert not names & {"testplugin", *BROKEN}
    assert "ganframe_testplugin" not in sys.modules
    registry = load_plugins()
    assert registry.record("testplugin") is None
    assert "tiny" not in registry.names("architecture")


# -- built-ins ----------------------------------------------------------------------


def test_builtins_register_as_plugins_of_distribution_ganframe():
    registry = load_plugins()
    builtins = [record for record in registry.plugins if record.distribution == "ganframe"]
    assert builtins, "no built-in plugin records"
    for record in builtins:
        assert record.name.startswith("ganframe.builtin"), record
        assert record.version == ganframe.__version__
    for kind, name in [("architecture", "dense"), ("dataset", "digits"), ("loss", "nonsaturating")]:
        component = registry.get(kind, name)
        assert component.plugin.startswith("ganframe.builtin")
        assert (kind, name) in registry.record(component.plugin).components


# -- the good plugin ------------------------------------------------------------------


def test_testplugin_registers_tiny_and_lsq(installed_plugins):
    registry = load_plugins()
    record = registry.record("testplugin")
    assert (record.status, record.error) == ("loaded", None)
    assert record.distribution == "ganframe-testplugin"
    assert record.version == TESTPLUGIN_VERSION == importlib.metadata.version("ganframe-testplugin")
    assert sorted(record.components) == [("architecture", "tiny"), ("loss", "lsq")]
    tiny = registry.get("architecture", "tiny")
    assert tiny.plugin == "testplugin"
    assert set(tiny.options.model_fields) == {"latent_dim", "width"}
    assert registry.get("loss", "lsq").plugin == "testplugin"
    assert registry.get("loss", "lsq").options is NoOptions


def test_tiny_builds_through_the_registry(installed_plugins):
    registry = load_plugins()
    spec = DataSpec((8, 8, 1))
    networks = registry.build("architecture", "tiny", {"latent_dim": 4}, spec)
    assert isinstance(networks, ganframe.Networks)
    assert (networks.latent_dim, networks.output_range, networks.conditional) == (4, (0.0, 1.0), False)
    images = np.asarray(networks.generator(np.random.default_rng(0).normal(size=(3, 4)).astype("float32")))
    assert images.shape == (3, 8, 8, 1)
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert tuple(networks.discriminator(images).shape) == (3, 1)

    loss = registry.build("loss", "lsq", None, spec)
    assert isinstance(loss, ganframe.AdversarialLoss)
    ones, zeros = np.ones((3, 1), "float32"), np.zeros((3, 1), "float32")
    assert float(loss.discriminator_loss(ones, zeros)) == pytest.approx(0.0)
    assert float(loss.discriminator_loss(zeros, ones)) == pytest.approx(1.0)
    assert float(loss.generator_loss(zeros)) == pytest.approx(0.5)


# -- broken plugins -----------------------------------------------------------------


@pytest.mark.parametrize(
    "name, expected",
    [
        ("brokenimport", ["ModuleNotFoundError", "ganframe_no_such_module"]),
        ("misspelt", ["unknown hook 'ganframe_register_architecture'", "did you mean 'ganframe_register_architectures'"]),
        ("raising", ["RuntimeError: boom"]),
        ("duplicate", ["architecture 'tiny' is already registered by plugin 'testplugin' (ganframe-testplugin 0.3.1)"]),
    ],
)
def test_broken_plugin_is_recorded_and_the_others_still_load(installed_plugins, name, expected):
    registry = load_plugins()
    record = registry.record(name)
    assert record.status == "failed"
    assert (record.distribution, record.version) == (BROKEN[name], "0.1.0")
    assert record.label == f"plugin '{name}' ({BROKEN[name]} 0.1.0)"
    for text in expected:
        assert text in record.error
    assert record.components == []
    assert registry.record("testplugin").status == "loaded"
    assert registry.get("architecture", "tiny").plugin == "testplugin"
    assert "dense" in registry.names("architecture")
    assert not {"misspelt", "halfmade"} & set(registry.names("architecture"))
    assert "dupdata" not in registry.names("dataset")


def test_strict_raises_for_the_first_failing_plugin(installed_plugins):
    lenient = load_plugins(strict=False)
    first = next(record for record in lenient.plugins if record.status == "failed")
    with pytest.raises(PluginError) as raised:
        load_plugins(strict=True)
    assert str(raised.value).startswith(f"{first.label} failed: ")


@pytest.mark.parametrize(
    "name, expected",
    [
        ("brokenimport", "plugin 'brokenimport' (ganframe-brokenimport 0.1.0) failed: ModuleNotFoundError"),
        ("raising", "plugin 'raising' (ganframe-raising 0.1.0) failed: RuntimeError: boom"),
        (
            "duplicate",
            "plugin 'duplicate' (ganframe-duplicate 0.1.0) failed: architecture 'tiny' is already registered by "
            "plugin 'testplugin' (ganframe-testplugin 0.3.1)",
        ),
    ],
)
def test_strict_error_names_the_plugin(installed_plugins, name, expected):
    others = _failed_except(load_plugins(strict=False), keep=name)
    with pytest.raises(PluginError) as raised:
        load_plugins(strict=True, disabled=others)
    assert expected in str(raised.value)


def test_strict_from_environment(installed_plugins, monkeypatch):
    monkeypatch.setenv("GANFRAME_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="failed"):
        load_plugins()
    assert load_plugins(strict=False).record("brokenimport").status == "failed"  # the argument wins
    monkeypatch.setenv("GANFRAME_STRICT_PLUGINS", "0")
    assert load_plugins().record("brokenimport").status == "failed"


def test_disabled_plugins_are_skipped(installed_plugins):
    registry = load_plugins(strict=True, disabled=list(BROKEN))
    for name in BROKEN:
        record = registry.record(name)
        assert (record.status, record.error, record.components) == ("disabled", None, [])
        assert record.distribution == BROKEN[name]
    assert registry.record("testplugin").status == "loaded"


def test_a_builtin_can_be_disabled():
    registry = load_plugins(disabled=["ganframe.builtin.losses"])
    assert registry.record("ganframe.builtin.losses").status == "disabled"
    assert "nonsaturating" not in registry.names("loss")
    assert "dense" in registry.names("architecture")


def test_disabled_from_environment(installed_plugins, monkeypatch):
    monkeypatch.setenv("GANFRAME_DISABLE_PLUGINS", " brokenimport, misspelt ,")
    registry = load_plugins()
    assert registry.record("brokenimport").status == "disabled"
    assert registry.record("misspelt").status == "disabled"
    assert registry.record("raising").status == "failed"
    assert load_plugins(disabled=[]).record("brokenimport").status == "failed"  # the argument wins


# -- the registry -------------------------------------------------------------------


def test_unknown_name_lists_the_available_ones_and_the_closest(installed_plugins):
    registry = load_plugins()
    with pytest.raises(ConfigError) as raised:
        registry.get("architecture", "tinny")
    message = str(raised.value)
    assert message.startswith("unknown architecture 'tinny'; available: ")
    available = message.splitlines()[0].split("available: ")[1].split(" (did you mean")[0].split(", ")
    assert {"tiny", "dense"} <= set(available)
    assert "did you mean 'tiny'?" in message
    assert "plugin 'brokenimport' (ganframe-brokenimport 0.1.0)" in message  # failed plugins are mentioned


def test_unknown_name_without_close_match():
    registry = load_plugins(disabled=["ganframe.builtin.archs", *(record.name for record in load_plugins().plugins)])
    with pytest.raises(ConfigError, match=r"unknown architecture 'zzz'; available: \(none\)$"):
        registry.get("architecture", "zzz")


def test_bad_options_name_component_plugin_and_field(installed_plugins):
    registry = load_plugins()
    with pytest.raises(ConfigError) as raised:
        registry.options("architecture", "tiny", {"latent_dim": 0})
    assert str(raised.value) == "architecture 'tiny' (plugin 'testplugin') option 'latent_dim': got 0; input should be greater than 0"
    with pytest.raises(ConfigError) as raised:
        registry.options("architecture", "tiny", {"widht": 3, "latent_dim": -1})
    lines = str(raised.value).splitlines()
    assert len(lines) == 2
    assert any("'widht': unknown field" in line for line in lines)
    assert any("'latent_dim': got -1" in line for line in lines)
    options = registry.options("architecture", "tiny", {"latent_dim": 4})
    assert (options.latent_dim, options.width) == (4, 16)
    assert registry.options("architecture", "tiny", None).latent_dim == 8


def test_in_process_plugin_registers_every_kind():
    class WidthOptions(Options):
        width: int = Field(3, gt=0)

    plugin = _plugin(
        ganframe_register_architectures=lambda register: register("inproc-arch", _factory, "An architecture.", WidthOptions),
        ganframe_register_metrics=lambda register: register("inproc.metric", _factory, "  A metric.  "),
    )
    registry = load_plugins(strict=True, extra=[("inproc", plugin)])
    record = registry.record("inproc")
    assert (record.status, record.distribution, record.version) == ("loaded", "(in process)", "-")
    assert sorted(record.components) == [("architecture", "inproc-arch"), ("metric", "inproc.metric")]
    assert registry.get("metric", "inproc.metric").description == "A metric."
    assert registry.options("architecture", "inproc-arch", {"width": 5}).width == 5


def test_a_misspelt_field_keyword_fails_the_plugin_naming_field_and_keyword():
    with pytest.warns(DeprecationWarning):  # pydantic's own warning: easy to miss among a test run's others
        class TypoOptions(Options):
            width: int = Field(3, gt=0)
            depth: int = Field(2, descripton="layers")  # pydantic files it as JSON-schema data

    plugin = _plugin(ganframe_register_architectures=lambda register: register("inproc-typo", _factory, "Typo.", TypoOptions))
    registry = load_plugins(extra=[("typo", plugin)])
    record = registry.record("typo")
    assert record.status == "failed"
    assert "architecture 'inproc-typo' option 'depth': Field() has no keyword 'descripton' (did you mean 'description'?)" \
        in record.error
    assert "inproc-typo" not in registry.names("architecture")
    with pytest.raises(PluginError, match=r"^plugin 'typo' .* option 'depth': Field\(\) has no keyword 'descripton'"):
        load_plugins(strict=True, extra=[("typo", plugin)])


def test_options_with_valid_field_keywords_and_schema_functions_register():
    class FineOptions(Options):
        width: int = Field(3, gt=0, description="units", examples=[3], json_schema_extra=lambda schema: None)

    plugin = _plugin(ganframe_register_architectures=lambda register: register("inproc-fine", _factory, "Fine.", FineOptions))
    assert load_plugins(strict=True, extra=[("fine", plugin)]).get("architecture", "inproc-fine").options is FineOptions


class _Shift(ganframe.Penalty):
    def __init__(self, applies_to: str = "generator") -> None:
        self.applies_to = applies_to

    def __call__(self, critic, real, fake):
        return 0.0


def _shift(spec: DataSpec, options: NoOptions) -> _Shift:
    return _Shift()


def test_the_listing_shows_penalties_as_penalties():
    plugin = _plugin(ganframe_register_losses=lambda register: (
        register("inproc-annotated", _shift, "A penalty by its factory's return type."),
        register("inproc-class", _Shift, "A penalty class as its own factory."),
        register("inproc-unknown", _factory, "No annotation: listed as a loss."),
    ))
    registry = load_plugins(strict=True, extra=[("penalties", plugin)])
    kinds = {name: ganframe.plugins.listed_kind(registry.get("loss", name))
             for name in ("inproc-annotated", "inproc-class", "inproc-unknown", "gradient_penalty", "r1", "hinge")}
    assert kinds == {"inproc-annotated": "penalty", "inproc-class": "penalty", "inproc-unknown": "loss",
                     "gradient_penalty": "penalty", "r1": "penalty", "hinge": "loss"}
    assert registry.get("loss", "inproc-annotated").kind == "loss"  # still built and configured as a loss
    assert ganframe.plugins.listed_kind(registry.get("architecture", "dense")) == "architecture"


def test_a_penalty_for_no_known_network_is_refused_when_built():
    plugin = _plugin(ganframe_register_losses=lambda register: (
        register("inproc-nowhere", lambda spec, options: _Shift("Generator"), "Applies to nothing the engine knows."),
        register("inproc-generator", _shift, "Applies to the generator."),
    ))
    registry = load_plugins(strict=True, extra=[("nowhere", plugin)])
    with pytest.raises(ganframe.RunError, match=r"^loss 'inproc-nowhere' \(plugin 'nowhere'\): applies_to is 'Generator', "
                                                r"expected one of 'discriminator', 'generator'"):
        registry.build("loss", "inproc-nowhere", None, DataSpec((8, 8, 1)))
    assert registry.build("loss", "inproc-generator", None, DataSpec((8, 8, 1))).applies_to == "generator"


def _raising(error: Exception):
    def factory(spec, options):
        raise error

    return factory


def test_a_factory_s_config_error_is_the_user_s_and_any_other_error_a_failed_build():
    plugin = _plugin(ganframe_register_architectures=lambda register: (
        register("inproc-refuses", _raising(ConfigError("needs images of 16x16 or more")), "Refuses small images."),
        register("inproc-bug", _raising(ValueError("shapes do not match")), "Has a bug."),
    ))
    registry = load_plugins(strict=True, extra=[("raisers", plugin)])
    spec = DataSpec((8, 8, 1))
    with pytest.raises(ConfigError) as refused:
        registry.build("architecture", "inproc-refuses", None, spec)
    assert (str(refused.value), refused.value.exit_code) == ("needs images of 16x16 or more", 2)
    with pytest.raises(ganframe.RunError) as failed:
        registry.build("architecture", "inproc-bug", None, spec)
    assert failed.value.exit_code == 1
    assert str(failed.value).startswith(
        "architecture 'inproc-bug' (plugin 'raisers') failed to build: ValueError: shapes do not match (at ")


def _dataset_plugin(labels, num_classes=2):
    """A plugin whose dataset 'inproc-data' hands over 4 images with ``labels``."""
    def load(context, options):
        images = np.zeros((4, 8, 8, 1), np.float32)
        return ganframe.ImageData(images, labels, DataSpec((8, 8, 1), num_classes=num_classes), name="my_arrays")

    return _plugin(ganframe_register_datasets=lambda register: register("inproc-data", load, "Four images."))


@pytest.mark.parametrize("dtype", ["int64", "int8", "uint16", "int32"])
def test_labels_of_any_integer_dtype_become_int32(dtype):
    registry = load_plugins(strict=True, extra=[("data", _dataset_plugin(np.array([0, 1, 1, 0], dtype)))])
    data = registry.build("dataset", "inproc-data", None, ganframe.DataContext(None))
    assert data.labels.dtype == np.int32
    assert data.labels.tolist() == [0, 1, 1, 0]


@pytest.mark.parametrize(("labels", "problem"), [
    ([0, 1, 2, 0], "labels span [0, 2], but class ids must lie in [0, 1] (spec.num_classes = 2)"),
    ([0, -1, 1, 0], "labels span [-1, 1], but class ids must lie in [0, 1] (spec.num_classes = 2)"),
    ([0.0, 1.0, 1.0, 0.0], "labels must be integer class ids, got dtype float64"),
    ([0, 1, 1], "labels have shape (3,), expected (4,): one class id per image"),
], ids=["too-large", "negative", "float", "too-few"])
def test_bad_labels_are_reported_under_the_dataset_and_its_plugin(labels, problem):
    registry = load_plugins(strict=True, extra=[("data", _dataset_plugin(np.array(labels)))])
    with pytest.raises(ganframe.DataError) as raised:
        registry.build("dataset", "inproc-data", None, ganframe.DataContext(None))
    assert str(raised.value) == f"dataset 'inproc-data' (plugin 'data'): {problem}"
    assert raised.value.exit_code == 2


def test_image_data_built_directly_names_itself():
    with pytest.raises(ganframe.DataError, match=r"^my_arrays: labels span \[0, 5\]"):
        ganframe.ImageData(np.zeros((2, 8, 8, 1), np.float32), np.array([0, 5]), DataSpec((8, 8, 1), num_classes=2),
                           name="my_arrays")


class _Loose(BaseModel):
    width: int = 3


class _Forbidding(BaseModel):  # forbids extras without deriving from ganframe.Options: accepted
    model_config = {"extra": "forbid"}


@pytest.mark.parametrize(
    "args, expected",
    [
        (("Bad Name", _factory, "An architecture."), "architecture name 'Bad Name' must be lower case letters"),
        (("1st", _factory, "An architecture."), "must be lower case letters"),
        ((None, _factory, "An architecture."), "architecture name None must be lower case"),
        (("bad-factory", 42, "An architecture."), "architecture 'bad-factory': factory 42 is not callable"),
        (("bad-options", _factory, "An architecture.", _Loose), "options model _Loose must forbid extra fields"),
        (("bad-options", _factory, "An architecture.", {"width": 3}), "options must be a pydantic model class"),
        (("bad-options", _factory, "An architecture.", _Loose()), "options must be a pydantic model class"),
        (("bad-description", _factory, ""), "description must be one non-empty line"),
        (("bad-description", _factory, "Two\nlines."), "description must be one non-empty line"),
    ],
)
def test_register_refuses_bad_registrations(args, expected):
    def register_architectures(register):
        register("inproc-fine", _factory, "Registered before the bad one.")
        register(*args)

    good = _plugin(ganframe_register_architectures=lambda register: register("inproc-good", _factory, "Fine."))
    registry = load_plugins(extra=[("bad", _plugin(ganframe_register_architectures=register_architectures)), ("good", good)])
    record = registry.record("bad")
    assert record.status == "failed"
    assert expected in record.error
    assert "inproc-fine" not in registry.names("architecture")  # all or nothing
    assert registry.record("good").status == "loaded"
    assert "inproc-good" in registry.names("architecture")
    with pytest.raises(PluginError, match="^plugin 'bad' \\(\\(in process\\) -\\) failed: "):
        load_plugins(strict=True, extra=[("bad", _plugin(ganframe_register_architectures=register_architectures))])


def test_register_accepts_any_model_that_forbids_extra_fields():
    plugin = _plugin(ganframe_register_losses=lambda register: register("inproc-loss", _factory, "A loss.", _Forbidding))
    assert load_plugins(strict=True, extra=[("inproc", plugin)]).get("loss", "inproc-loss").options is _Forbidding


def test_register_refuses_the_same_name_twice_in_one_plugin():
    def register_twice(register):
        register("inproc-twice", _factory, "Once.")
        register("inproc-twice", _factory, "Twice.")

    registry = load_plugins(extra=[("twice", _plugin(ganframe_register_architectures=register_twice))])
    assert "architecture 'inproc-twice' is registered twice by this plugin" in registry.record("twice").error


def test_same_name_in_two_kinds_is_fine():
    plugin = _plugin(
        ganframe_register_architectures=lambda register: register("inproc-both", _factory, "An architecture."),
        ganframe_register_losses=lambda register: register("inproc-both", _factory, "A loss."),
    )
    registry = load_plugins(strict=True, extra=[("both", plugin)])
    assert registry.get("loss", "inproc-both").kind == "loss"


def test_clash_with_a_builtin_fails_the_newcomer():
    plugin = _plugin(ganframe_register_architectures=lambda register: register("dense", _factory, "Not the real one."))
    registry = load_plugins(extra=[("usurper", plugin)])
    assert registry.record("usurper").status == "failed"
    assert "architecture 'dense' is already registered by plugin 'ganframe.builtin.archs' (ganframe " in registry.record("usurper").error
    assert registry.get("architecture", "dense").plugin == "ganframe.builtin.archs"


def test_hook_with_an_argument_the_spec_lacks_fails():
    plugin = _plugin(ganframe_register_architectures=lambda reg: None)
    registry = load_plugins(extra=[("wrongarg", plugin), ("after", _plugin())])
    assert registry.record("wrongarg").status == "failed"
    assert "'reg'" in registry.record("wrongarg").error
    assert registry.record("after").status == "loaded"


# -- no TensorFlow for listing ------------------------------------------------------


def test_loading_plugins_imports_no_tensorflow(installed_plugins):
    script = (
        "import sys, ganframe\n"
        "registry = ganframe.load_plugins()\n"
        "assert registry.record('testplugin').status == 'loaded', registry.record('testplugin')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], env=installed_plugins.env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
