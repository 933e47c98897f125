"""One run, two Keras backends: a run trained on TensorFlow resumes on JAX and back, and the config says
which backend a process trains on.

JAX runs here in a subprocess (``ganframe train --backend jax``): Keras fixes its backend when first
imported, and this process is the TensorFlow pass. What runs on JAX itself, in process, is the
README's second pass over the tests marked ``backends`` (the learning, resume and reproducibility tests).
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import ganframe
from tinyrun import tiny_config, training_state

#: This process's backend (the TensorFlow pass, or the JAX pass for the tests marked ``backends``).
BACKEND = keras.backend.backend()
OTHER = "jax" if BACKEND == "tensorflow" else "tensorflow"


def cli(*args: str, backend: str | None = None) -> subprocess.CompletedProcess:
    """``ganframe ARGS`` as a subprocess, with ``--backend`` when given; KERAS_BACKEND left unset."""
    env = {key: value for key, value in os.environ.items() if key != "KERAS_BACKEND"}
    command = [sys.executable, "-m", "ganframe", *args, *(["--backend", backend] if backend else [])]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


def metrics(run_dir: Path) -> list[dict[str, float]]:
    with open(run_dir / "metrics.csv") as handle:
        return [{key: float(value) for key, value in row.items()} for row in csv.DictReader(handle)]


@pytest.mark.slow
def test_a_run_resumes_on_the_other_backend_and_back(tmp_path):
    """Checkpoints hold arrays by variable path, not a backend's own format: 6 steps here, 10 more on the
    other backend (finite losses, its samples and checkpoints in the same run), then 4 more here again."""
    config = tiny_config(tmp_path, steps=6, callbacks={"samples": {"every": 5}, "checkpoint": {"every": 3},
                                                      "metrics": {"every": 2}})
    run = ganframe.train(config, progress=False)
    before = training_state(run.gan)

    done = cli("train", "--resume", str(run.path), "--steps", "16", backend=OTHER)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming from step 6 of 16" in done.stdout + done.stderr
    rows = metrics(run.path)
    assert [int(row["step"]) for row in rows] == [2, 4, 6, 8, 10, 12, 14, 16]
    assert all(math.isfinite(row[name]) for row in rows[3:] for name in ("d_loss", "g_loss", "d_real", "d_fake"))
    assert sorted(path.name for path in (run.path / "samples").glob("*.png")) == [  # every 5 steps, and at each end
        f"step_{step:07d}.png" for step in (5, 6, 10, 15, 16)]
    assert (run.path / "checkpoints" / "ckpt-000000015.npz").is_file()
    spec = json.loads((run.path / "run.json").read_text())
    assert spec["backend"] == OTHER

    back = ganframe.train({"steps": 20}, resume=run.path, progress=False)
    assert back.step == 20
    after = training_state(back.gan)
    assert sorted(after) == sorted(before)  # the same variables, trained on both
    changed = [key for key in before if key.startswith(("generator/", "discriminator/"))
               and not np.array_equal(before[key], after[key])]
    assert changed, "neither network changed over 14 steps on two backends"
    assert np.isfinite(back.generate(4, seed=1)).all()


def test_a_config_for_another_backend_is_refused_in_process(tmp_path):
    with pytest.raises(ganframe.ConfigError, match=f"config 'backend': got '{OTHER}'.*KERAS_BACKEND={OTHER}"):
        ganframe.train(tiny_config(tmp_path, backend=OTHER), progress=False)
    assert not (tmp_path / "run").exists(), "a refused run must leave nothing behind"


def test_an_unknown_backend_is_refused_by_the_command(tmp_path):
    done = cli("train", "--data", "digits", "--steps", "2", "--out", str(tmp_path / "run"), backend="torch")
    assert done.returncode == 2
    assert "'backend': got 'torch'" in done.stderr and "'jax'" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "run").exists()
