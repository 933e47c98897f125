"""``ganframe new``: rendering, refusals (exit 2, nothing written), --force, and generated projects that work."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ganframe import KINDS, __version__
from ganframe.cli import app
from ganframe.scaffold import available_templates, ganframe_requirement

REPO = Path(__file__).resolve().parents[1]
PREVIOUS_RELEASE = Path(__file__).resolve().parent / "previous_release"
CLI = Path(sys.executable).with_name("ganframe")
runner = CliRunner()

PROJECT_FILES = {".gitignore", "README.md", "ganframe.toml", "pyproject.toml", "tests/test_my_gan.py",
                 "my_gan/__init__.py", "my_gan/plugin.py", "my_gan/archs.py", "my_gan/datasets.py"}
PLUGIN_FILES = {".gitignore", "README.md", "pyproject.toml", "tests/test_my_plugin.py", "my_plugin/__init__.py",
                "my_plugin/plugin.py", "my_plugin/archs.py", "my_plugin/datasets.py", "my_plugin/losses.py",
                "my_plugin/callbacks.py"}


def new(*args: str):
    return runner.invoke(app, ["new", *args])


def listing(root: Path) -> set[str]:
    return {path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()}


def env_without_plugin_switches(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GANFRAME_STRICT_PLUGINS", "GANFRAME_DISABLE_PLUGINS")}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.update(extra)
    return env


def assert_refused(result, tmp_path: Path, *fragments: str) -> None:
    """Exit 2, one `error:` message on stderr carrying ``fragments``, nothing on stdout, no traceback."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.stdout == "", result.output
    assert result.stderr.startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, f"{fragment!r} not in {result.stderr!r}"


# -- rendering ------------------------------------------------------------------------------------


def test_templates_are_found():
    assert available_templates() == ["plugin", "project"]


def test_new_project_renders_the_template(tmp_path):
    result = new("my-gan", "--dir", str(tmp_path), "--author", "Ann O'Neil", "--description", 'GANs "for" me')
    assert result.exit_code == 0, result.output
    root = tmp_path / "my-gan"
    assert listing(root) == PROJECT_FILES
    assert "ganframe train --config ganframe.toml" in result.stdout
    for path in root.rglob("*.py"):
        compile(path.read_text(), str(path), "exec")
    meta = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert meta["name"] == "my-gan"
    assert meta["description"] == 'GANs "for" me'
    assert meta["authors"] == [{"name": "Ann O'Neil"}]
    assert meta["dependencies"] == [ganframe_requirement()]
    assert meta["entry-points"]["ganframe"] == {"my_gan": "my_gan.plugin"}
    config = tomllib.loads((root / "ganframe.toml").read_text())
    assert config["arch"] == "my-gan-mlp" and config["data"] == "digits" and config["steps"] <= 1000
    readme = (root / "README.md").read_text()
    assert "pip install -e ." in readme and "ganframe train --config ganframe.toml" in readme
    plugin = (root / "my_gan" / "plugin.py").read_text()
    assert "import keras" not in plugin and "tensorflow" not in plugin
    assert "import keras" in (root / "my_gan" / "archs.py").read_text()  # inside the factory


def test_new_plugin_renders_the_default_kinds(tmp_path):
    result = new("my-plugin", "--template", "plugin", "--dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    root = tmp_path / "my-plugin"
    assert listing(root) == PLUGIN_FILES
    for path in root.rglob("*.py"):
        compile(path.read_text(), str(path), "exec")
    plugin = (root / "my_plugin" / "plugin.py").read_text()
    for hook in ("architectures", "datasets", "losses", "callbacks"):
        assert f"def ganframe_register_{hook}(register)" in plugin
    assert "augmentations" not in plugin
    assert "author" not in (root / "pyproject.toml").read_text()
    tomllib.loads((root / "pyproject.toml").read_text())


def test_kinds_choose_the_modules(tmp_path):
    result = new("lossy", "-t", "plugin", "--kinds", "loss, augmentation", "--dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert {p for p in listing(tmp_path / "lossy") if p.startswith("lossy/")} == {
        "lossy/__init__.py", "lossy/plugin.py", "lossy/losses.py", "lossy/augmentations.py"}
    tests = (tmp_path / "lossy" / "tests" / "test_lossy.py").read_text()
    compile(tests, "test_lossy.py", "exec")
    assert '"arch": "dense"' in tests and '"loss": "lossy-lsq"' in tests
    assert "check_loss" in tests and "check_augmentation" in tests and "check_architecture" not in tests


def test_metric_and_feature_extractor_kinds(tmp_path):
    result = new("scored", "-t", "plugin", "--kinds", "metric, feature-extractor", "--dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    root = tmp_path / "scored"
    assert {p for p in listing(root) if p.startswith("scored/")} == {
        "scored/__init__.py", "scored/plugin.py", "scored/metrics.py", "scored/features.py"}
    for path in root.rglob("*.py"):
        compile(path.read_text(), str(path), "exec")
    plugin = (root / "scored" / "plugin.py").read_text()
    assert "def ganframe_register_metrics(register)" in plugin
    assert "def ganframe_register_feature_extractors(register)" in plugin
    tests = (root / "tests" / "test_scored.py").read_text()
    assert "check_metric(\"scored-pixel-gap\"" in tests and "check_feature_extractor(\"scored-pool\"" in tests
    readme = (root / "README.md").read_text()
    assert "| metric | `scored-pixel-gap` | `scored/metrics.py` |" in readme
    assert "| feature_extractor | `scored-pool` | `scored/features.py` |" in readme


@pytest.mark.parametrize(("name", "module"), [("My.Cool-GAN", "my_cool_gan"), ("gan2", "gan2"), ("a_b", "a_b")])
def test_names_derive_the_module(tmp_path, name, module):
    result = new(name, "--dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert (tmp_path / name / module / "plugin.py").is_file()
    assert tomllib.loads((tmp_path / name / "pyproject.toml").read_text())["project"]["name"] == name


def test_requirement_follows_the_version():
    assert ganframe_requirement("0.1.0") == "ganframe>=0.1.0,<0.2"
    assert ganframe_requirement("1.4.2") == "ganframe>=1.4.2,<2"
    assert ganframe_requirement().startswith(f"ganframe>={__version__},")


# -- refusals: exit 2, one message, nothing written ---------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("../x", "is a path"),
        ("a/b", "is a path"),
        ("/tmp/abs", "is a path"),
        (".hidden", "is a path"),
        ("-x", "not a valid package name"),
        ("my gan", "not a valid package name"),
        ("x-", "not a valid package name"),
        ("9lives", "not a valid identifier"),
        ("class", "not a valid identifier"),
        ("json", "standard library"),
        ("ganframe", "shadow"),
        ("Keras", "shadow"),
        ("tensorflow", "shadow"),
        ("test", "shadow"),
    ],
)
def test_bad_names_are_refused(tmp_path, name, fragment):
    result = new("--dir", str(tmp_path / "out"), "--", name)  # "--": "-x" is a name, not an option
    assert_refused(result, tmp_path, fragment)
    assert not (tmp_path / "out").exists()


def test_unknown_template_lists_the_available(tmp_path):
    result = new("ok", "--template", "website", "--dir", str(tmp_path))
    assert_refused(result, tmp_path, "unknown template 'website'", "plugin", "project")
    assert listing(tmp_path) == set()


def test_unknown_kinds_are_refused(tmp_path):
    result = new("ok", "-t", "plugin", "--kinds", "architecture,optimizer", "--dir", str(tmp_path))
    assert_refused(result, tmp_path, "'optimizer'",
                   "architecture, dataset, loss, callback, augmentation, metric, feature_extractor")
    assert list(tmp_path.iterdir()) == []


def test_multiline_description_is_refused(tmp_path):
    assert_refused(new("ok", "--description", "a\nb", "--dir", str(tmp_path)), tmp_path, "--description")
    assert list(tmp_path.iterdir()) == []


def test_non_empty_target_needs_force_and_force_keeps_other_files(tmp_path):
    target = tmp_path / "my-gan"
    target.mkdir()
    (target / "notes.txt").write_text("mine\n")
    (target / "README.md").write_text("old readme\n")
    result = new("my-gan", "--dir", str(tmp_path))
    assert_refused(result, tmp_path, "not empty", "--force")
    assert listing(target) == {"notes.txt", "README.md"}
    assert (target / "README.md").read_text() == "old readme\n"

    result = new("my-gan", "--dir", str(tmp_path), "--force")
    assert result.exit_code == 0, result.output
    assert listing(target) == PROJECT_FILES | {"notes.txt"}
    assert (target / "notes.txt").read_text() == "mine\n"
    assert "ganframe train --config ganframe.toml" in (target / "README.md").read_text()


def test_target_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "my-gan").write_text("x")
    assert_refused(new("my-gan", "--dir", str(tmp_path), "--force"), tmp_path, "not a directory")


def test_a_template_error_writes_nothing(tmp_path, monkeypatch):
    import ganframe.scaffold as scaffold

    broken = tmp_path / "templates"
    shutil.copytree(REPO / "templates", broken, ignore=shutil.ignore_patterns("__pycache__"))
    (broken / "project" / "zzz_last.txt.j2").write_text("{{ no_such_variable }}\n")  # rendered after the others
    monkeypatch.setattr(scaffold, "templates_root", lambda: broken)
    result = new("my-gan", "--dir", str(tmp_path / "out"))
    assert_refused(result, tmp_path, "zzz_last.txt.j2", "no_such_variable")
    assert not (tmp_path / "out").exists()


def test_interactive_asks_for_what_is_missing(tmp_path, monkeypatch):
    import ganframe.cli

    monkeypatch.setattr(ganframe.cli, "_interactive", lambda: True)
    result = runner.invoke(app, ["new", "asked", "-t", "plugin", "--dir", str(tmp_path)], input="Ann\nAsked for.\nloss\n")
    assert result.exit_code == 0, result.output
    meta = tomllib.loads((tmp_path / "asked" / "pyproject.toml").read_text())["project"]
    assert meta["authors"] == [{"name": "Ann"}] and meta["description"] == "Asked for."
    assert not (tmp_path / "asked" / "asked" / "archs.py").exists()
    assert (tmp_path / "asked" / "asked" / "losses.py").is_file()


def test_new_is_listed_in_help():
    result = runner.invoke(app, ["new", "--help"])
    assert result.exit_code == 0
    for word in ("--template", "--kinds", "--author", "--description", "--force", "--dir"):
        assert word in result.stdout


@pytest.mark.parametrize("args", [["new", "--help"], ["new", "tiny-gan"]], ids=["help", "new"])
def test_new_imports_no_tensorflow(tmp_path, args):
    done = subprocess.run([sys.executable, "-X", "importtime", str(CLI), *args], cwd=tmp_path,
                          env=env_without_plugin_switches(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "ganframe.cli" in imported
    heavy = sorted(name for name in imported if name.split(".")[0] in {"tensorflow", "keras"})
    assert not heavy, heavy[:5]


# -- slow: the generated packages install, list, train and pass their own tests ----------------------


def pip_install_target(sources: list[Path], target: Path) -> None:
    command = [sys.executable, "-m", "pip", "install", "--isolated", "--no-deps", "--no-build-isolation", "--no-index",
               "--disable-pip-version-check", "--no-input", "--quiet", "--target", str(target), *map(str, sources)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
def test_generated_projects_and_plugins_of_this_and_the_previous_release_install_train_and_pass_their_tests(tmp_path):
    """A project and a plugin made now, and a pair made by the previous release's templates at contract 1.0
    (tests/previous_release, kept as generated): all four install, list their components, both projects
    train with their own configs, and all four pass their own tests against this ganframe."""
    assert new("my-gan", "--dir", str(tmp_path)).exit_code == 0
    assert new("my-plugin", "-t", "plugin", "--kinds", ",".join(KINDS), "--dir", str(tmp_path)).exit_code == 0
    for name in ("old-gan", "old-plugin"):
        shutil.copytree(PREVIOUS_RELEASE / name, tmp_path / name)
    assert "contract 1.x" in (tmp_path / "old-plugin" / "old_plugin" / "plugin.py").read_text()
    pairs = (("my-gan", "my-plugin"), ("old-gan", "old-plugin"))
    site = tmp_path / "site"
    # Build from copies: an in-tree build would leave build/ and *.egg-info next to the sources.
    pip_install_target([shutil.copytree(tmp_path / name, tmp_path / "build" / name) for pair in pairs for name in pair],
                       site)
    env = env_without_plugin_switches(PYTHONPATH=os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))

    listed = subprocess.run([str(CLI), "plugins"], env=env, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    for project, plugin in pairs:
        for kind, name in [("architecture", f"{project}-mlp"), ("dataset", f"{project}-shapes"),
                           ("architecture", f"{plugin}-mlp"), ("dataset", f"{plugin}-shapes"), ("loss", f"{plugin}-lsq"),
                           ("callback", f"{plugin}-log"), ("augmentation", f"{plugin}-flip"),
                           ("metric", f"{plugin}-pixel-gap"), ("feature_extractor", f"{plugin}-pool")]:
            assert any(line.split()[:2] == [kind, name] for line in listed.stdout.splitlines()), f"{kind} {name}:\n{listed.stdout}"
    assert "FAILED" not in listed.stdout

    for project, _ in pairs:
        trained = subprocess.run([str(CLI), "train", "--config", "ganframe.toml", "--steps", "20", "--no-jit",
                                  "--sample-every", "10", "--checkpoint-every", "10"],
                                 cwd=tmp_path / project, env=env, capture_output=True, text=True, timeout=300)
        assert trained.returncode == 0, trained.stderr[-3000:]
        assert sorted((tmp_path / project).glob(f"runs/{project}-mlp-digits-*/samples/step_*.png")), trained.stdout
        shutil.rmtree(tmp_path / project / "runs")

    tested = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--import-mode=importlib",
                             *(str(tmp_path / name / "tests") for pair in pairs for name in pair)],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert tested.returncode == 0, tested.stdout[-3000:] + tested.stderr[-2000:]
    assert " passed" in tested.stdout and "skipped" not in tested.stdout


@pytest.mark.slow
def test_the_wheel_ships_the_templates(tmp_path):
    # Build from a copy of the sources: an in-tree build would leave build/ and *.egg-info in the repo.
    source = tmp_path / "src"
    source.mkdir()
    shutil.copy(REPO / "pyproject.toml", source)
    shutil.copy(REPO / "README.md", source)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "ganframe", source / "ganframe", ignore=ignore)
    shutil.copytree(REPO / "templates", source / "templates", ignore=ignore)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
                           "--no-index", "--disable-pip-version-check", "--quiet", "-w", str(tmp_path / "dist")],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = (tmp_path / "dist").glob("ganframe-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {"ganframe/templates/__init__.py", "ganframe/templates/project/.gitignore.j2",
                "ganframe/templates/project/{{module}}/archs.py.j2", "ganframe/templates/project/ganframe.toml.j2",
                "ganframe/templates/plugin/{{module}}/plugin.py.j2", "ganframe/templates/plugin/tests/test_{{module}}.py.j2",
                "ganframe/templates/_components/losses.py.j2", "ganframe/scaffold.py", "ganframe/builtin/__init__.py"}
    assert expected <= names, sorted(expected - names)
    in_repo = {f"ganframe/templates/{p.relative_to(REPO / 'templates').as_posix()}" for p in (REPO / "templates").rglob("*")
               if p.is_file() and "__pycache__" not in p.parts}
    assert in_repo <= names, sorted(in_repo - names)
    assert not any("__pycache__" in name for name in names if name.startswith("ganframe/templates/"))
