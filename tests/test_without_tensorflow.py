"""On JAX, a run on data in memory needs no TensorFlow: it trains, samples and exports with TensorFlow's import
blocked, and none of its modules is loaded at the end.

Each check runs in a subprocess whose Python blocks ``import tensorflow`` (``sys.modules["tensorflow"] = None``,
so that importing it raises ImportError, as where it is not installed), with ``KERAS_BACKEND=jax``: this
process may be either pass of the suite, and may have imported TensorFlow already.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import ganframe
from tinyrun import curve, read_events

pytestmark = pytest.mark.backends

#: Prepended to each subprocess's script: TensorFlow cannot be imported, and what was loaded can be reported.
PRELUDE = """
import json, sys
sys.modules["tensorflow"] = None

def loaded_tensorflow():
    return sorted(name for name, module in sys.modules.items() if name.startswith("tensorflow") and module is not None)
"""


def without_tensorflow(script: str, *blocked: str) -> subprocess.CompletedProcess:
    """``script`` run by a Python on JAX where TensorFlow (and each of ``blocked``) cannot be imported."""
    blocks = "".join(f"sys.modules[{name!r}] = None\n" for name in blocked)
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    return subprocess.run([sys.executable, "-c", PRELUDE + blocks + textwrap.dedent(script)], capture_output=True,
                          text=True, env=env, timeout=600)


def last_json(done: subprocess.CompletedProcess) -> dict:
    """The subprocess's report: its last line of stdout, as JSON."""
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_public_api_imports_without_tensorflow():
    report = last_json(without_tensorflow("""
        import ganframe
        ganframe.train, ganframe.load_run, ganframe.Run
        print(json.dumps({"distributed": ganframe.distributed(), "tensorflow": loaded_tensorflow()}))
    """))
    assert report == {"distributed": False, "tensorflow": []}


@pytest.mark.slow
def test_the_command_trains_samples_and_exports_on_jax_without_tensorflow(tmp_path):
    run_dir, grid, exported = tmp_path / "run", tmp_path / "x.png", tmp_path / "g.keras"
    commands = [
        ["train", "--backend", "jax", "--data", "digits", "--arch", "dense", "--steps", "30", "--batch-size", "32",
         "--log-every", "10", "--sample-every", "10", "--health-every", "15", "--out", str(run_dir),
         "--set", "callbacks.tensorboard.every=10", "--set", "callbacks.tensorboard.images_every=30"],
        ["sample", str(run_dir), "--out", str(grid)],
        ["export", str(run_dir), "--out", str(exported)],
    ]
    report = last_json(without_tensorflow(f"""
        from ganframe.cli import main
        codes = []
        for command in {commands!r}:
            sys.argv = ["ganframe", *command]
            try:
                main()
            except SystemExit as done:
                codes.append(done.code)
        print(json.dumps({{"codes": codes, "tensorflow": loaded_tensorflow()}}))
    """))
    assert report == {"codes": [0, 0, 0], "tensorflow": []}

    assert sorted(path.name for path in (run_dir / "samples").glob("*.png")) == [
        f"step_{step:07d}.png" for step in (10, 20, 30)]
    assert (run_dir / "checkpoints" / "ckpt-000000030.npz").is_file()
    rows = ganframe.CsvLog(run_dir / "metrics.csv").rows()
    assert [row["step"] for row in rows] == [10, 20, 30]
    assert all(math.isfinite(row[name]) for row in rows for name in ("d_loss", "g_loss"))
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["backend"] == "jax" and "jax" in meta and "tensorflow" not in meta
    assert grid.is_file() and exported.is_file()

    if importlib.util.find_spec("tensorboard") is not None:  # the tensorboard package's writer, the same events
        events = read_events(run_dir)
        steps, losses = curve(events, "loss/d_loss")
        assert steps == [10, 20, 30]
        np.testing.assert_allclose(losses, [row["d_loss"] for row in rows], rtol=1e-5)
        assert events.SummaryMetadata("samples").plugin_data.plugin_name == "images"
        assert [event.step for event in events.Tensors("samples")] == [30]


@pytest.mark.slow
def test_without_tensorflow_or_tensorboard_the_tensorboard_callback_warns_and_writes_nothing(tmp_path):
    run_dir = tmp_path / "run"
    config = {"arch": "dense", "arch_options": {"g_widths": [16], "d_widths": [16], "latent_dim": 8}, "data": "digits",
              "batch_size": 32, "steps": 4, "health": {"every": 0}, "out": str(run_dir),
              "callbacks": {"checkpoint": {}, "metrics": {"every": 2}, "tensorboard": {"every": 2, "images_every": 2}}}
    done = without_tensorflow(f"""
        import ganframe
        ganframe.train({config!r}, progress=False)
        print(json.dumps({{"tensorflow": loaded_tensorflow()}}))
    """, "tensorboard")
    assert last_json(done) == {"tensorflow": []}
    warnings = [line for line in done.stderr.splitlines() if "tensorboard" in line]
    assert len(warnings) == 1 and "pip install tensorboard" in warnings[0], done.stderr[-3000:]
    assert (run_dir / "metrics.csv").is_file() and not (run_dir / "tensorboard").exists()
