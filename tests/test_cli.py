"""The ``ganframe`` command, in process (Typer's CliRunner) and as the installed console script.

Runner tests are fast as long as the command fails before TensorFlow is imported;
subprocess tests prove what only a real process shows (exit codes, imports, env,
installed plugins). Training subprocesses cost ~10 s each, so the main run is trained
once per module (``trained_run``) and reused, read-only, by the tests after it.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

import ganframe
import ganframe.plugins
from ganframe.cli import app
from ganframe.config import read_toml, validate_config

CLI = Path(sys.executable).with_name("ganframe")
runner = CliRunner()

PLUGIN_ENV = ("GANFRAME_STRICT_PLUGINS", "GANFRAME_DISABLE_PLUGINS")
BROKEN = {  # entry point: (distribution, a piece of its error)
    "brokenimport": ("ganframe-brokenimport", "ModuleNotFoundError: No module named 'ganframe_no_such_module'"),
    "misspelt": ("ganframe-misspelt", "unknown hook 'ganframe_register_architecture' (did you mean 'ganframe_register_architectures'?)"),
    "raising": ("ganframe-raising", "RuntimeError: boom"),
    "duplicate": ("ganframe-duplicate", "architecture 'tiny' is already registered by plugin 'testplugin'"),
}
TESTPLUGIN = ("ganframe-testplugin", "0.3.1")
BUILTIN_COMPONENTS = {
    "architecture": {"dense", "dcgan"},
    "dataset": {"mnist", "digits", "npz", "folder"},
    "loss": {"nonsaturating", "minimax"},
    "callback": {"samples", "checkpoint", "metrics", "tensorboard"},
}
TINY_ARCH = ["--arch", "dense", "--arch-option", "g_widths=[16,32]", "--arch-option", "d_widths=[32,16]",
             "--arch-option", "latent_dim=8"]
#: The main path, exactly as a user would type it.
MAIN_TRAIN = [*TINY_ARCH, "--data", "digits", "--steps", "20", "--batch-size", "32", "--no-jit",
              "--sample-every", "10", "--checkpoint-every", "10", "--log-every", "5"]
TRAIN_TIMEOUT = 300


# -- helpers ----------------------------------------------------------------------------------------


def clean_env(base: dict[str, str] | None = None, **extra: str) -> dict[str, str]:
    """``base`` (default os.environ) without ganframe's plugin switches, plus ``extra``."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in PLUGIN_ENV}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.update(extra)
    return env


def ganframe_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
                 timeout: float = TRAIN_TIMEOUT) -> subprocess.CompletedProcess:
    """Run the installed console script (``env``: default, ``clean_env()``)."""
    return subprocess.run([str(CLI), *args], cwd=cwd, env=clean_env() if env is None else env, capture_output=True, text=True,
                          timeout=timeout)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def assert_one_error(stdout: str, stderr: str, *fragments: str) -> None:
    """Exactly one ``error:`` message, carrying ``fragments``, no traceback, nothing on stdout."""
    assert "Traceback" not in stdout + stderr, stderr
    assert stdout == "", stdout
    errors = error_lines(stderr)
    assert len(errors) == 1, stderr
    message = stderr[stderr.index(errors[0]):]  # the message may span lines
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in:\n{message}"


def csv_steps(path: Path) -> list[int]:
    with open(path, newline="") as handle:
        return [int(row["step"]) for row in csv.DictReader(handle)]


def assert_png(path: Path) -> None:
    from PIL import Image

    assert path.is_file(), path
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.verify()


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """No plugin switches from the caller; a fresh registry per test (--strict and env changes take effect)."""
    for name in PLUGIN_ENV:
        monkeypatch.setenv(name, "")  # recorded, so a value the CLI sets in-process (--strict) is undone too
        monkeypatch.delenv(name)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
    monkeypatch.setattr(ganframe.plugins, "_REGISTRY", None)
    monkeypatch.chdir(tmp_path)  # a default runs/ directory would land here


# -- version, help, and what never imports TensorFlow ------------------------------------------------


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"ganframe {ganframe.__version__} (plugin contract {ganframe.CONTRACT_VERSION})"


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ([], ["train", "plugins", "sample", "translate", "export", "--version", "--strict"]),
        (["train"], ["--arch", "--data", "--steps", "--resume", "--config"]),
        (["plugins"], ["--json"]),
        (["sample"], ["Run directory", "--n", "--out", "--seed"]),
        (["export"], ["Run directory", "--out"]),
        (["translate"], ["Run directory", "--input", "--out", "--derive"]),
    ],
)
def test_help(command, expected):
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: ganframe" in result.stdout
    for word in expected:
        assert word in result.stdout, f"{word!r} missing from `ganframe {' '.join(command)} --help`"


def test_train_help_groups_its_options_in_panels_that_fit_80_columns():
    result = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "80", "TERMINAL_WIDTH": "80"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, result.stdout
    titles = [re.match(r"╭─ (.+?) ─", line).group(1) for line in lines if line.startswith("╭─ ")]
    assert titles == ["Options", "Model", "Data", "Training", "Output and evaluation", "Advanced"]
    assert "…" not in result.stdout, result.stdout  # nothing was cut to fit
    command = typer.main.get_command(app).commands["train"]
    names = [name for param in command.params if param.param_type_name == "option"
             for name in (*param.opts, *param.secondary_opts)]
    assert len(names) > 25
    for name in names:
        assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", result.stdout), f"{name} not shown in full"
    assert "Default: 128." in result.stdout and "Default: nonsaturating." in result.stdout


def run_without_tensorflow(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The console script with ``args``, failing the test if it imported TensorFlow or Keras.

    What keeps a command fast is not importing TensorFlow (seconds on its own), which this checks
    exactly; a wall-clock bound would only measure how busy the machine is.
    -X importtime lists every module the real console script imports, on stderr.
    """
    done = subprocess.run([sys.executable, "-X", "importtime", str(CLI), *args], cwd=cwd, env=clean_env(),
                          capture_output=True, text=True, timeout=60)
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "ganframe.cli" in imported  # the check itself works
    heavy = sorted(name for name in imported if name.split(".")[0] in {"tensorflow", "keras"})
    assert not heavy, f"`ganframe {' '.join(args)}` imported {heavy[:5]}"
    return done


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["plugins"]], ids=lambda args: args[0])
def test_console_script_imports_no_tensorflow(args):
    done = run_without_tensorflow(*args)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ganframe" in done.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["sample", "nowhere"], "run directory 'nowhere' does not exist"),
    (["export", "nowhere"], "run directory 'nowhere' does not exist"),
    (["translate", "nowhere", "--input", "nowhere", "--out", "x.npz"], "run directory 'nowhere' does not exist"),
    (["report", "nowhere"], "run directory 'nowhere' does not exist"),
    (["train", "--resume", "nowhere"], "run directory 'nowhere' does not exist"),
    (["evaluate", "nowhere"], "samples 'nowhere' do not exist"),
], ids=lambda value: value[0] if isinstance(value, list) else "")
def test_a_missing_run_is_refused_before_tensorflow_loads(args, message, tmp_path):
    done = run_without_tensorflow(*args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr[-3000:]
    assert [line for line in error_lines(done.stderr) if message in line], done.stderr[-3000:]
    assert list(tmp_path.iterdir()) == []


# -- ganframe plugins ---------------------------------------------------------------------------------


def test_plugins_lists_the_builtins():
    result = runner.invoke(app, ["plugins"])
    assert result.exit_code == 0, result.output
    for kind, names in BUILTIN_COMPONENTS.items():
        for name in names:
            assert re.search(rf"^\s+{kind}\s+{name}\s+\S", result.stdout, re.M), f"{kind} {name} not listed"
    assert re.search(r"^\s+penalty\s+r1\s+\S", result.stdout, re.M)  # registered as a loss, shown as what it is
    assert "FAILED" not in result.stdout and result.stderr == ""


def test_a_closed_pipe_stops_the_listing_quietly():
    """`ganframe plugins | grep -q NAME` (grep leaves at the first match): no error message, exit 141 as Unix tools."""
    process = subprocess.Popen([str(CLI), "plugins", "--options"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # before it writes anything: its first write meets a pipe nobody reads
    _, stderr = process.communicate(timeout=60)
    assert stderr.decode() == "" and process.returncode == 141, (process.returncode, stderr.decode())


def test_plugins_json_lists_the_builtins():
    result = runner.invoke(app, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    listing = json.loads(result.stdout)
    assert listing["ganframe"] == ganframe.__version__
    assert listing["contract"] == ganframe.CONTRACT_VERSION
    found = {(c["kind"], c["name"]) for p in listing["plugins"] for c in p["components"]}
    assert {(kind, name) for kind, names in BUILTIN_COMPONENTS.items() for name in names} <= found
    listed = {c["name"]: c["listed_as"] for p in listing["plugins"] for c in p["components"] if c["kind"] == "loss"}
    assert listed["r1"] == listed["gradient_penalty"] == "penalty" and listed["hinge"] == "loss"
    assert all(p["status"] == "loaded" for p in listing["plugins"])
    assert {p["name"] for p in listing["plugins"] if p["distribution"] == "ganframe"} == set(ganframe.plugins.BUILTIN_PLUGINS)


def test_plugins_shows_installed_and_failed_plugins(installed_plugins):
    done = ganframe_cli("plugins", env=installed_plugins.env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    out = done.stdout
    assert f"testplugin  ({TESTPLUGIN[0]} {TESTPLUGIN[1]})\n" in out
    assert re.search(r"^\s+architecture\s+tiny\s+A very small dense GAN", out, re.M)
    assert re.search(r"^\s+loss\s+lsq\s+Least squares", out, re.M)
    for name, (distribution, error) in BROKEN.items():
        block = out[out.index(f"\n{name}  ("):]
        assert block.startswith(f"\n{name}  ({distribution} 0.1.0)  [FAILED]\n    error: ")
        assert error in block.splitlines()[2]
    assert "halfmade" not in out  # the raising plugin's registration was dropped with it
    assert "4 plugin(s) failed to load" in done.stderr
    for kind, names in BUILTIN_COMPONENTS.items():
        for name in names:
            assert re.search(rf"^\s+{kind}\s+{name}\s", out, re.M)


def test_plugins_json_shows_installed_and_failed_plugins(installed_plugins):
    done = ganframe_cli("plugins", "--json", env=installed_plugins.env, timeout=60)
    assert done.returncode == 0, done.stderr
    records = {p["name"]: p for p in json.loads(done.stdout)["plugins"]}
    good = records["testplugin"]
    assert (good["distribution"], good["version"], good["status"], good["error"]) == (*TESTPLUGIN, "loaded", None)
    assert {(c["kind"], c["name"]) for c in good["components"]} == {("architecture", "tiny"), ("loss", "lsq")}
    tiny = next(c for c in good["components"] if c["name"] == "tiny")
    assert set(tiny["options"]) == {"latent_dim", "width"}
    for name, (distribution, error) in BROKEN.items():
        record = records[name]
        assert (record["distribution"], record["version"], record["status"]) == (distribution, "0.1.0", "failed")
        assert error in record["error"]
        assert record["components"] == []


@pytest.mark.parametrize("how", ["flag", "env"])
def test_strict_makes_a_failing_plugin_fatal(installed_plugins, how):
    if how == "flag":
        done = ganframe_cli("--strict", "plugins", env=installed_plugins.env, timeout=60)
    else:
        done = ganframe_cli("plugins", env=clean_env(installed_plugins.env, GANFRAME_STRICT_PLUGINS="1"), timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    # the first failing plugin in load order is brokenimport
    assert_one_error(done.stdout, done.stderr, "plugin 'brokenimport' (ganframe-brokenimport 0.1.0) failed",
                     BROKEN["brokenimport"][1])


def test_disabled_plugins_are_shown_as_disabled_and_the_others_load(installed_plugins):
    env = clean_env(installed_plugins.env, GANFRAME_DISABLE_PLUGINS=",".join(BROKEN))
    done = ganframe_cli("plugins", env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    for name, (distribution, _) in BROKEN.items():
        assert f"\n{name}  ({distribution} 0.1.0)  [disabled]\n" in done.stdout
    assert "FAILED" not in done.stdout and "failed" not in done.stderr
    assert re.search(r"^\s+architecture\s+tiny\s", done.stdout, re.M)

    # nothing fails any more, so even --strict succeeds
    done = ganframe_cli("--strict", "plugins", "--json", env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    status = {p["name"]: p["status"] for p in json.loads(done.stdout)["plugins"]}
    assert {name: status[name] for name in BROKEN} == dict.fromkeys(BROKEN, "disabled")
    assert status["testplugin"] == "loaded"
    assert set(status.values()) == {"loaded", "disabled"}


# -- train: input errors (exit 2, one message, nothing created) ---------------------------------------


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


TRAIN_ERRORS = {
    # id: (flags (a function of tmp_path), fragments the message must contain)
    "unknown-arch": (lambda tmp: ["--arch", "dnese"],
                     ["unknown architecture 'dnese'; available: ", "dcgan, dense, ", "did you mean 'dense'?"]),
    "bad-arch-option": (lambda tmp: ["--arch-option", "g_widths=-3"],
                        ["architecture 'dense'", "'g_widths'", "-3"]),
    "arch-option-not-key-value": (lambda tmp: ["--arch-option", "nokeyvalue"],
                                  ["--arch-option 'nokeyvalue'", "KEY=VALUE"]),
    "batch-size-0": (lambda tmp: ["--batch-size", "0"], ["'batch_size'", "greater than 0"]),
    "steps-and-epochs": (lambda tmp: ["--steps", "10", "--epochs", "2"], ["steps (10) or epochs (2), not both"]),
    "max-time-soon": (lambda tmp: ["--max-time", "soon"], ["'max_time'", "'soon'", "duration"]),
    "config-unknown-field": (
        lambda tmp: ["--config", str(_write(tmp / "c.toml", 'arch = "dense"\nlerning_rate = 0.1\n'))],
        ["'lerning_rate'", "unknown field"]),
    "config-missing": (lambda tmp: ["--config", str(tmp / "nope.toml")], ["nope.toml", "does not exist"]),
    "config-invalid-toml": (lambda tmp: ["--config", str(_write(tmp / "bad.toml", "steps = [1,\n"))],
                            ["bad.toml", "not valid TOML"]),
    "resume-with-config": (
        lambda tmp: ["--resume", str(tmp), "--config", str(_write(tmp / "c.toml", "steps = 3\n"))],
        ["--config cannot be combined"]),
    "unknown-penalty": (lambda tmp: ["--penalty", "gradient-penalty=10"],
                        ["unknown penalty 'gradient-penalty'; available: classification, feature_matching, "
                         "gradient_penalty, mode_seeking, r1, r2, reconstruction",
                         "did you mean 'gradient_penalty'?"]),
    "penalty-alias": (lambda tmp: ["--penalty", "gp"], ["unknown penalty 'gp'", "did you mean 'gradient_penalty'?"]),
    "penalty-weight-not-a-number": (lambda tmp: ["--penalty", "r1=strong"],
                                    ["--penalty 'r1=strong'", "the weight 'strong' is not a number"]),
    "penalty-weight-negative": (lambda tmp: ["--penalty", "r1=-1"], ["loss 'r1'", "'gamma'", "-1.0", "greater than 0"]),
    "penalty-without-weight": (lambda tmp: ["--penalty", "hinge=1"],
                               ["--penalty 'hinge=1'", "'hinge' has no weight option", "--set penalties.hinge."]),
}


@pytest.mark.parametrize("case", TRAIN_ERRORS)
def test_train_input_errors(tmp_path, case):
    flags, fragments = TRAIN_ERRORS[case]
    out = tmp_path / "run"
    # --steps 1 first: a case's own flags come later and win; were the error missed, training would be short.
    result = runner.invoke(app, ["train", "--data", "digits", "--steps", "1", "--out", str(out), *flags(tmp_path)])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert_one_error(result.stdout, result.stderr, *fragments)
    assert "loading TensorFlow" not in result.stderr  # refused before the expensive import
    assert not out.exists() and not (tmp_path / "runs").exists()


def test_console_script_reports_an_unknown_arch_with_exit_2(tmp_path):
    done = ganframe_cli("train", "--arch", "dnese", "--data", "digits", "--out", "run", cwd=tmp_path, timeout=60)
    assert done.returncode == 2
    assert_one_error(done.stdout, done.stderr, "unknown architecture 'dnese'", "did you mean 'dense'?")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_missing_mnist_is_exit_2_after_importing_tensorflow(tmp_path):
    (tmp_path / "data").mkdir()
    done = ganframe_cli("train", "--data", "mnist", "--data-dir", "data", "--steps", "1", "--out", "run", cwd=tmp_path)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "loading TensorFlow" in done.stderr
    assert_one_error(done.stdout, done.stderr, "MNIST (train split) is not in the data directory data",
                     "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                     "t10k-labels-idx1-ubyte.gz", "mnist.npz", "--data-dir")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_non_empty_out_needs_resume_or_overwrite(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me\n")
    result = runner.invoke(app, ["train", *TINY_ARCH, "--data", "digits", "--steps", "1", "--no-jit", "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert_one_error(result.stdout, result.stderr, "is not empty", "--resume", "--overwrite")
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_resume_of_a_directory_that_is_not_a_run(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("not a run\n")
    result = runner.invoke(app, ["train", "--resume", str(other), "--steps", "2"])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert_one_error(result.stdout, result.stderr, "is not a ganframe run directory", "config.toml")
    assert [p.name for p in other.iterdir()] == ["notes.txt"]
    assert not (tmp_path / "runs").exists()


# -- the main path: train, sample, export, resume -----------------------------------------------------


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """``ganframe train ... --out RUN`` once per module; tests read the run but never change it."""
    cwd = tmp_path_factory.mktemp("main-run")
    done = ganframe_cli("train", *MAIN_TRAIN, "--out", "RUN", cwd=cwd)
    return cwd / "RUN", done


@pytest.mark.slow
def test_train_writes_a_complete_run(trained_run):
    import keras
    import platform
    import tensorflow as tf

    run, done = trained_run
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "Traceback" not in done.stderr and not error_lines(done.stderr)
    # not a terminal: plain progress lines (one every 15 s, and always the last one)
    assert re.search(r"^step 20/20 \(100%\).*steps/s.*g_loss", done.stdout, re.M), done.stdout
    assert "\r" not in done.stdout
    assert "run finished at step 20: RUN" in done.stdout
    assert "ganframe sample RUN" in done.stdout

    config = validate_config(read_toml(run / "config.toml"))  # reloadable
    assert (config.arch, config.data, config.steps, config.batch_size) == ("dense", "digits", 20, 32)
    assert config.arch_options == {"g_widths": [16, 32], "d_widths": [32, 16], "latent_dim": 8}
    assert config.jit_compile is False
    assert config.callbacks == {"samples": {"every": 10}, "checkpoint": {"every": 10}, "metrics": {"every": 5},
                                "tensorboard": {}}

    meta = json.loads((run / "run.json").read_text())
    assert meta["ganframe"] == ganframe.__version__
    assert meta["tensorflow"] == tf.__version__ and meta["keras"] == keras.__version__
    assert meta["python"] == platform.python_version()
    assert set(meta["plugins"]) == {"ganframe.builtin.archs", "ganframe.builtin.datasets", "ganframe.builtin.losses",
                                    "ganframe.builtin.callbacks"}
    assert all(p == {"distribution": "ganframe", "version": ganframe.__version__} for p in meta["plugins"].values())
    assert meta["spec"]["shape"] == [8, 8, 1]

    assert csv_steps(run / "metrics.csv") == [5, 10, 15, 20]
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step_0000010.png", "step_0000020.png"]
    for png in (run / "samples").iterdir():
        assert_png(png)
    assert sorted(p.name for p in (run / "checkpoints").glob("ckpt-*.npz")) == ["ckpt-000000010.npz", "ckpt-000000020.npz"]


@pytest.mark.slow
def test_sample_and_export_a_run(trained_run, tmp_path):
    import keras

    run, done = trained_run
    assert done.returncode == 0, "training failed; see test_train_writes_a_complete_run"

    # in process: the run's checkpoint is restored from disk, as in a fresh process
    result = runner.invoke(app, ["sample", str(run), "--n", "16", "--seed", "3", "--out", str(tmp_path / "a.npz")])
    assert result.exit_code == 0, result.output
    assert "wrote 16 samples" in result.stdout
    with np.load(tmp_path / "a.npz") as data:
        images = data["images"]
    assert images.shape == (16, 8, 8, 1) and images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 1

    # the same seed gives the same array again; another seed does not
    result = runner.invoke(app, ["sample", str(run), "--n", "16", "--seed", "3", "--out", str(tmp_path / "b.npz")])
    assert result.exit_code == 0, result.output
    with np.load(tmp_path / "b.npz") as data:
        np.testing.assert_array_equal(data["images"], images)
    result = runner.invoke(app, ["sample", str(run), "--n", "16", "--seed", "4", "--out", str(tmp_path / "c.npz")])
    assert result.exit_code == 0, result.output
    with np.load(tmp_path / "c.npz") as data:
        assert not np.allclose(data["images"], images)

    result = runner.invoke(app, ["sample", str(run), "--n", "16", "--out", str(tmp_path / "x.png")])
    assert result.exit_code == 0, result.output
    assert_png(tmp_path / "x.png")

    result = runner.invoke(app, ["sample", str(run), "--n", "16", "--out", str(tmp_path / "x.jpg")])
    assert result.exit_code == 2, result.output
    assert_one_error(result.stdout, result.stderr, "x.jpg", ".png", ".npz")
    assert not (tmp_path / "x.jpg").exists()

    result = runner.invoke(app, ["export", str(run), "--out", str(tmp_path / "g.keras")])
    assert result.exit_code == 0, result.output
    assert "keras.saving.load_model" in result.stdout
    generator = keras.saving.load_model(tmp_path / "g.keras")
    fake = np.asarray(generator(np.random.default_rng(0).standard_normal((4, 8)).astype("float32"), training=False))
    assert fake.shape == (4, 8, 8, 1) and fake.min() >= 0 and fake.max() <= 1
    assert not (run / "generator.keras").exists()  # --out was honoured; the run is untouched

    result = runner.invoke(app, ["export", str(run), "--out", str(tmp_path / "g.h5")])
    assert result.exit_code == 2, result.output
    assert_one_error(result.stdout, result.stderr, "g.h5", ".keras")
    (tmp_path / "notarun").mkdir()
    for command in (["sample", str(tmp_path / "notarun"), "--out", str(tmp_path / "y.png")],
                    ["export", str(tmp_path / "notarun")]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, result.output
        assert_one_error(result.stdout, result.stderr, "notarun", "is not a ganframe run directory")
    assert list((tmp_path / "notarun").iterdir()) == []


@pytest.mark.slow
def test_resume_continues_the_run(trained_run, tmp_path):
    source, done = trained_run
    assert done.returncode == 0, "training failed; see test_train_writes_a_complete_run"
    shutil.copytree(source, tmp_path / "RUN")  # the module's run stays as it is

    done = ganframe_cli("train", "--resume", "RUN", "--steps", "30", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "run finished at step 30: RUN" in done.stdout
    assert re.search(r"^step 30/30 \(100%\)", done.stdout, re.M), done.stdout
    run = tmp_path / "RUN"
    assert csv_steps(run / "metrics.csv") == [5, 10, 15, 20, 25, 30]
    config = validate_config(read_toml(run / "config.toml"))
    assert (config.steps, config.batch_size, config.arch_options["g_widths"]) == (30, 32, [16, 32])
    assert sorted(p.name for p in (run / "samples").iterdir())[-1] == "step_0000030.png"
    assert "ckpt-000000030.npz" in {p.name for p in (run / "checkpoints").iterdir()}


# -- an installed plugin's components, and config precedence ------------------------------------------


@pytest.mark.slow
def test_train_with_an_installed_plugins_arch_and_loss(installed_plugins, tmp_path):
    done = ganframe_cli("train", "--arch", "tiny", "--loss", "lsq", "--data", "digits", "--steps", "5",
                        "--batch-size", "32", "--no-jit", "--sample-every", "0", "--checkpoint-every", "5",
                        "--log-every", "5", "--out", "RUN", cwd=tmp_path, env=installed_plugins.env)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "run finished at step 5: RUN" in done.stdout
    # the broken plugins are reported, by name, but do not stop the run
    assert not error_lines(done.stderr) and "Traceback" not in done.stderr
    warning = next(line for line in done.stderr.splitlines() if line.startswith("warning:"))
    assert "4 plugin(s) failed" in warning and all(f"plugin '{name}'" in warning for name in BROKEN)

    meta = json.loads((tmp_path / "RUN" / "run.json").read_text())
    assert meta["plugins"]["testplugin"] == {"distribution": TESTPLUGIN[0], "version": TESTPLUGIN[1]}
    assert not set(meta["plugins"]) & set(BROKEN)
    assert "ganframe.builtin.archs" not in meta["plugins"] and "ganframe.builtin.losses" not in meta["plugins"]
    config = read_toml(tmp_path / "RUN" / "config.toml")
    assert (config["arch"], config["loss"]) == ("tiny", "lsq")
    assert csv_steps(tmp_path / "RUN" / "metrics.csv") == [5]


@pytest.mark.slow
def test_flags_override_the_config_file(tmp_path):
    config = _write(tmp_path / "run.toml", """
arch = "dense"
data = "digits"
steps = 4
batch_size = 16
jit_compile = false
seed = 1

[arch_options]
g_widths = [16, 32]
d_widths = [32, 16]
latent_dim = 8
dropout = 0.0

[callbacks.samples]
every = 0

[callbacks.metrics]
every = 2
""")
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--config", str(config), "--steps", "6", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"run finished at step 6: {out}" in result.stdout
    written = read_toml(out / "config.toml")
    assert (written["steps"], written["batch_size"], written["seed"]) == (6, 16, 1)
    assert written["arch_options"] == {"g_widths": [16, 32], "d_widths": [32, 16], "latent_dim": 8, "dropout": 0.0}
    assert written["jit_compile"] is False
    assert csv_steps(out / "metrics.csv") == [2, 4, 6]


#: A one-step run that writes nothing it need not: the config it records is what these tests read.
ONE_STEP = [*TINY_ARCH, "--data", "digits", "--steps", "1", "--batch-size", "16", "--no-jit", "--sample-every", "0"]


@pytest.mark.slow
def test_knob_flags_land_in_the_runs_config(tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", *ONE_STEP, "--ema", "0.9", "--g-lr", "3e-4", "--d-lr", "1e-4",
                                 "--penalty", "r1=5", "--penalty", "gradient_penalty", "--checkpoint-every", "7",
                                 "--log-every", "3", "--eval-every", "9", "--health-every", "0", "--out", str(out)])
    assert result.exit_code == 0, result.output
    written = read_toml(out / "config.toml")
    assert written["ema"] == 0.9
    assert (written["g_optimizer"]["learning_rate"], written["d_optimizer"]["learning_rate"]) == (3e-4, 1e-4)
    assert written["penalties"] == {"r1": {"gamma": 5.0}, "gradient_penalty": {}}
    assert {name: written["callbacks"][name] for name in ("samples", "checkpoint", "metrics")} == {
        "samples": {"every": 0}, "checkpoint": {"every": 7}, "metrics": {"every": 3}}
    assert (written["evaluation"]["every"], written["health"]["every"]) == (9, 0)
    assert not (out / "health.csv").exists()  # the probes really are off


@pytest.mark.slow
def test_knob_flags_override_the_config_file_and_set_overrides_them(tmp_path):
    config = _write(tmp_path / "run.toml", """
ema = 0.5

[g_optimizer]
learning_rate = 1e-3

[d_optimizer]
learning_rate = 1e-3
beta_1 = 0.0

[penalties.r1]
gamma = 1.0

[penalties.r2]
gamma = 2.0

[health]
every = 7

[callbacks.checkpoint]
every = 3
""")
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--config", str(config), *ONE_STEP, "--ema", "0.99", "--lr", "5e-4",
                                 "--g-lr", "2e-4", "--penalty", "r1=20", "--health-every", "0",
                                 "--checkpoint-every", "1", "--set", "ema=0.95", "--out", str(out)])
    assert result.exit_code == 0, result.output
    written = read_toml(out / "config.toml")
    assert written["ema"] == 0.95  # --set wins over every other flag
    assert written["g_optimizer"]["learning_rate"] == 2e-4  # --g-lr wins over --lr
    assert written["d_optimizer"] == {**written["g_optimizer"], "learning_rate": 5e-4, "beta_1": 0.0}
    assert written["penalties"] == {"r1": {"gamma": 20.0}, "r2": {"gamma": 2.0}}  # the file's other penalty stays
    assert (written["health"]["every"], written["callbacks"]["checkpoint"]["every"]) == (0, 1)


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_run_checkpoints_exits_130_and_resumes(tmp_path, how):
    run = tmp_path / "run"
    args = [*TINY_ARCH, "--data", "digits", "--steps", "1000000", "--batch-size", "32", "--no-jit",
            "--log-every", "5", "--out", str(run)]
    process = subprocess.Popen([str(CLI), "train", *args], env=clean_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + TRAIN_TIMEOUT
    while not (run / "metrics.csv").exists():  # training has begun
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.2)
    process.send_signal(how)
    stdout, stderr = process.communicate(timeout=120)

    assert process.returncode == 130, stderr[-2000:]
    # training stopped cleanly after the current execution: the progress line reports where
    step = int(re.search(r"interrupted at step (\d+)", stderr).group(1))
    assert stdout.splitlines()[-1].startswith(f"step {step}/"), stdout
    # the user's own doing, said as a note on where it stopped and how to go on, not as an error
    assert "Traceback" not in stderr and not error_lines(stderr), stderr[-2000:]
    assert f"interrupted at step {step} ({how.name}): a checkpoint was written; resume with: ganframe train " \
           f"--resume {run}" in stderr.splitlines()
    assert (run / "checkpoints" / f"ckpt-{step:09d}.npz").is_file()

    result = ganframe_cli("train", "--resume", str(run), "--steps", str(step + 5))
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"resuming from step {step} of {step + 5}: {run}" in result.stdout.splitlines()
    assert f"run finished at step {step + 5}" in result.stdout


@pytest.mark.slow
def test_a_spent_time_budget_says_so_and_how_to_resume(tmp_path):
    run = tmp_path / "RUN"
    result = runner.invoke(app, ["train", *TINY_ARCH, "--data", "digits", "--steps", "1000000", "--max-time", "2s",
                                 "--batch-size", "32", "--no-jit", "--sample-every", "0", "--out", str(run)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    end = next(i for i, line in enumerate(lines) if line.startswith("stopped at step "))
    step = int(re.fullmatch(r"step (\d+)/1000000 \(0%\)  \S.*", lines[end - 1]).group(1))  # the last progress line
    assert " left" not in lines[end - 1]  # no time left to promise: the run is over
    assert lines[end] == f"stopped at step {step}: the time budget of 2s ran out; resume with: ganframe train --resume {run}"
    assert "run finished" not in result.stdout
    assert (run / "checkpoints" / f"ckpt-{step:09d}.npz").is_file()

    result = runner.invoke(app, ["train", "--resume", str(run), "--steps", str(step + 2), "--max-time", "10m"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == f"resuming from step {step} of {step + 2}: {run}"
    assert f"run finished at step {step + 2}: {run}" in result.stdout.splitlines()
    assert "stopped at step" not in result.stdout
