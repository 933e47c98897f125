"""A new user's first hour: quiet commands, and a run that remembers its data.

Loading TensorFlow must leave stderr free of C++ start-up noise unless asked for (``--verbose``,
``GANFRAME_VERBOSE=1``); proven in real processes with ``TF_CPP_MIN_LOG_LEVEL`` unset, and the
verbose twin shows that the same lines exist and that ganframe is what removes them. The
README's flow (train, resume, evaluate, report) then runs from a directory other than the one
training started in, with a relative data directory, offline.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import ganframe
from ganframe.cli import app
from ganframe.config import read_toml
from ganframe.evaluation import evaluate
from datafiles import write_mnist
from tinyrun import tiny_config

CLI = Path(sys.executable).with_name("ganframe")
TIMEOUT = 600
#: What TensorFlow's C++ side writes while it starts: log lines (I0000 ...), absl, oneDNN, CUDA, CPU flags.
NOISE = re.compile(r"tensorflow/|absl|oneDNN|cuda|cuInit|rebuild TensorFlow|^[IWEF]\d{4} ", re.IGNORECASE)
#: Settings of the caller that would change what these tests see.
CALLER_ENV = ("TF_CPP_MIN_LOG_LEVEL", "GANFRAME_VERBOSE", "GANFRAME_DATA_DIR", "GANFRAME_STRICT_PLUGINS",
              "GANFRAME_DISABLE_PLUGINS")
TINY_ARCH = ("--arch", "dense", "--arch-option", "g_widths=[16,32]", "--arch-option", "d_widths=[32,16]",
             "--arch-option", "latent_dim=8")

#: Imports TensorFlow through ganframe's public API, with a Python warning and a plain line written
#: to stderr while TensorFlow loads (they must pass), then runs an operation (CUDA's start-up).
IMPORT_SCRIPT = """
import sys, warnings
import ganframe

class WhileTensorFlowLoads:
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow.python":
            warnings.warn("a warning while TensorFlow loads")
            print("a plain line while TensorFlow loads", file=sys.stderr, flush=True)
        return None

sys.meta_path.insert(0, WhileTensorFlowLoads())
ganframe.GAN
import tensorflow as tf
tf.reduce_sum(tf.ones(3)).numpy()
print("tensorflow" in sys.modules)
"""


def fresh_env(**extra: str) -> dict[str, str]:
    """This process's environment without the caller's ganframe and TensorFlow log settings, plus ``extra``."""
    env = {key: value for key, value in os.environ.items() if key not in CALLER_ENV}
    env.update(extra)
    return env


def noise(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if NOISE.search(line)]


def ganframe_cli(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(CLI), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT)


# -- quiet by default -------------------------------------------------------------------------------


@pytest.mark.slow
def test_train_writes_no_tensorflow_noise(tmp_path: Path) -> None:
    # a health probe too: its compiled measurement once printed AutoGraph's "could not transform" warning
    done = ganframe_cli("train", "--arch", "dense", "--data", "digits", "--steps", "5", "--set", "health.every=2",
                        "--out", str(tmp_path / "run"), cwd=tmp_path, env=fresh_env())

    assert done.returncode == 0, done.stderr
    assert "run finished at step 5" in done.stdout
    assert noise(done.stderr) == [], done.stderr
    assert done.stderr.strip() == "loading TensorFlow ...", done.stderr


@pytest.mark.parametrize("verbose", [False, True], ids=["quiet", "GANFRAME_VERBOSE=1"])
def test_importing_tensorflow_through_ganframe_is_quiet_unless_asked(verbose: bool, tmp_path: Path) -> None:
    env = fresh_env(GANFRAME_VERBOSE="1") if verbose else fresh_env()

    done = subprocess.run([sys.executable, "-c", IMPORT_SCRIPT], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT)

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"  # TensorFlow was imported
    assert "UserWarning: a warning while TensorFlow loads" in done.stderr
    assert "a plain line while TensorFlow loads" in done.stderr
    if verbose:  # the noise exists: what removes it otherwise is ganframe
        assert noise(done.stderr), done.stderr
    else:
        assert noise(done.stderr) == [], done.stderr


def test_verbose_flag_asks_for_tensorflow_output(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GANFRAME_VERBOSE", "")  # recorded, so the value the CLI sets is undone
    monkeypatch.delenv("GANFRAME_VERBOSE")

    result = CliRunner().invoke(app, ["--verbose", "plugins"])

    assert result.exit_code == 0, result.output
    assert os.environ["GANFRAME_VERBOSE"] == "1"


# -- a run remembers its data ---------------------------------------------------------------------


@pytest.mark.slow
def test_readme_flow_from_another_directory(tmp_path: Path) -> None:
    start, elsewhere = tmp_path / "start", tmp_path / "elsewhere"
    write_mnist(start / "data", train=64, test=16)
    elsewhere.mkdir()
    env = fresh_env(KERAS_HOME=str(tmp_path / "no-keras-cache"))  # offline: only the run's data directory has MNIST

    trained = ganframe_cli("train", *TINY_ARCH, "--data", "mnist", "--data-dir", "data", "--out", "runs/r",
                           "--steps", "4", "--batch-size", "16", "--no-jit", "--checkpoint-every", "2", cwd=start, env=env)
    assert trained.returncode == 0, trained.stderr
    run = start / "runs" / "r"
    assert read_toml(run / "config.toml")["data_dir"] == str(start / "data")

    resumed = ganframe_cli("train", "--resume", "../start/runs/r", "--steps", "6", cwd=elsewhere, env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert "run finished at step 6" in resumed.stdout

    scored = ganframe_cli("evaluate", "../start/runs/r", "--metric", "fid", "--against", "mnist:test", "--n", "100",
                          cwd=elsewhere, env=env)
    assert scored.returncode == 0, scored.stderr
    assert not (elsewhere / "scores.json").exists()
    scores = json.loads((run / "scores.json").read_text())
    assert scores["protocol"]["real"]["images"] == 16  # the run's tiny MNIST, not another copy
    assert scores["protocol"]["fake"]["step"] == 6

    reported = ganframe_cli("report", "../start/runs/r", cwd=elsewhere, env=env)
    assert reported.returncode == 0, reported.stderr
    page = (run / "report" / "report.html").read_text(encoding="utf-8")
    assert "fid (ganframe evaluate)" in page
    assert f"{scores['scores']['fid']:.4g} against mnist (split=test), 16 images" in page


@pytest.mark.slow
def test_evaluate_finds_real_data_by_flag_then_run_then_environment(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    start, elsewhere, shared, flagged = (tmp_path / name for name in ("start", "elsewhere", "shared", "flagged"))
    write_mnist(start / "data", train=64, test=16)
    write_mnist(shared / "fashion-mnist", test=10)
    write_mnist(flagged, test=12)
    elsewhere.mkdir()
    monkeypatch.chdir(start)
    run = ganframe.train(tiny_config(tmp_path, data="mnist", data_dir="data", batch_size=16), progress=False)
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("GANFRAME_DATA_DIR", str(shared))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "no-keras-cache"))

    def real_images(against: str, **options) -> int:
        return evaluate(run.path, against, ["fid"], n=100, **options).protocol["real"]["images"]

    assert real_images("mnist:test") == 16  # the run's own directory, stored absolute, beats the environment
    assert real_images("mnist:test", data_dir=flagged) == 12  # an explicit directory beats the run's
    assert real_images("fashion_mnist:test") == 10  # another data set than the run's: the environment


def test_progress_lines_show_the_same_interval_means_as_metrics_csv(tmp_path: Path) -> None:
    """Each number on a progress line is the mean since the previous line, as in metrics.csv, not Keras's
    running mean since step 1 (what ``logs`` hold): a line and a row every step, equal."""
    import io

    import keras

    from ganframe.files import CsvLog
    from ganframe.progress import Progress

    running: list[float] = []

    class KerasLogs(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            running.append(float(logs["g_loss"]))

    stream = io.StringIO()
    config = tiny_config(tmp_path, steps=8, callbacks={"samples": {"every": 0}, "metrics": {"every": 1}})
    ganframe.train(config, progress=False, callbacks=[Progress(8, interval=0, stream=stream, bar=False), KerasLogs()])

    printed = [dict(re.findall(r"(\w+) (-?\d+\.\d+)", line)) for line in stream.getvalue().splitlines()]
    rows = CsvLog(tmp_path / "run" / "metrics.csv").rows()
    assert [row["step"] for row in rows] == list(range(1, 9)) and len(printed) >= 8
    for line, row in zip(printed, rows):
        for name in ("d_loss", "g_loss", "d_real", "d_fake"):
            assert float(line[name]) == pytest.approx(row[name], abs=1e-4), (name, line, row)
    # ... and not the running mean Keras hands to callbacks, which at step 8 still averages steps 1-8.
    assert running[-1] == pytest.approx(sum(row["g_loss"] for row in rows) / 8, abs=1e-4)
    assert abs(running[-1] - rows[-1]["g_loss"]) > 1e-3
