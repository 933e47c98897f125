"""Multi-worker training (``strategy = "multiworker"``): two worker processes on loopback train as one process would.

Each worker is its own Python process with its own ``TF_CONFIG``, training the same tiny
config through ``ganframe.train`` with the same ``out``; only the chief (worker 0) writes
it. The workers' global batch is split between them and their gradients are all-reduced
every update, so both must end at the same step in the same state, and in the state that
one process training on the whole global batch reaches (a one-replica ``mirrored`` run in the
test's own process, while the workers run). Bounded: each process is killed after ``TIMEOUT``
seconds, so a worker waiting for a peer that never comes cannot hang the suite (measured: 27 s of
wall time on 2 cores at load 4.5, 61 s at load 6).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ganframe
from tinyrun import TINY, assert_same_state, training_state

TIMEOUT = 120

#: What both workers train, but for the data's folder, the strategy and ``out``: images read from disk,
#: each worker reading only its rows of every batch (tests/test_pipeline.py checks the split itself).
CONFIG = {
    "arch": "dense", "arch_options": TINY, "data": "folder", "batch_size": 16, "steps": 4, "seed": 5,
    "callbacks": {"samples": {"every": 2}, "checkpoint": {"every": 2}, "metrics": {"every": 2}},
}

#: argv: run directory, file for this worker's state and samples, the config. Both workers run exactly this.
WORKER = textwrap.dedent("""
    import json, os, sys, tempfile
    import keras
    import numpy as np
    import ganframe
    sys.path.insert(0, %(tests)r)
    from tinyrun import training_state
    out, results, config = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])

    class First(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.weights = self.model.generator.get_weights()

        def on_train_end(self, logs=None):
            self.temporary = os.listdir(tempfile.gettempdir())

    first = First()
    run = ganframe.train({**config, "strategy": "multiworker", "out": out}, callbacks=[first])
    np.savez(results, **training_state(run.gan), samples=run.generate(4, seed=1))
    print(json.dumps({"step": run.step, "path": str(run.path), "replicas": run.gan.distribute_strategy.num_replicas_in_sync,
                      "scratch": [name for name in first.temporary if name.startswith("ganframe-worker-")],
                      "trained": any(not np.array_equal(a, b) for a, b in zip(first.weights, run.generator.get_weights())),
                      "history": run.history.history}))
""") % {"tests": str(Path(__file__).parent)}

#: Two replicas sum their halves' gradients where one process sums the whole batch's, and
#: synchronized BatchNorm reduces its statistics likewise: the same numbers added in another
#: order. Measured after 4 Adam steps: at most 1.5e-6, in G's biases before BatchNorm (their gradient
#: is rounding noise, which Adam scales up to about lr·|g|/ε).
TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}


def _free_ports(n: int) -> list[int]:
    """``n`` ports free on 127.0.0.1 now (the OS picks them; released for the workers to bind)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@pytest.mark.slow
def test_two_workers_on_loopback_train_as_one_process_would_and_only_the_chief_writes(tmp_path: Path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    rng = np.random.default_rng(0)
    (tmp_path / "imgs").mkdir()
    for index in range(48):
        Image.fromarray(rng.integers(0, 255, (8, 8), np.uint8)).save(tmp_path / "imgs" / f"{index:02d}.png")
    config = {**CONFIG, "data_options": {"path": str(tmp_path / "imgs")}}
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    out = tmp_path / "run"
    workers = []
    for index in range(2):
        (tmp_path / f"tmp{index}").mkdir()  # the worker's temporary directory, for its scratch copy
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TMPDIR": str(tmp_path / f"tmp{index}"),
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        workers.append(subprocess.Popen([sys.executable, str(script), str(out), str(tmp_path / f"worker{index}.npz"),
                                         json.dumps(config)],
                                        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        # one process, one replica, the whole global batch: trained here while the workers train
        single = ganframe.train({**config, "strategy": "mirrored", "out": str(tmp_path / "single")}, progress=False)
        outputs = [worker.communicate(timeout=TIMEOUT) for worker in workers]
    finally:
        for worker in workers:  # a worker left waiting for its peer
            if worker.poll() is None:
                worker.kill()
                worker.communicate()
    for index, (worker, (stdout, stderr)) in enumerate(zip(workers, outputs)):
        assert worker.returncode == 0, f"worker {index}:\n{stdout}\n{stderr}"
        assert "strategy 'multiworker' over 2 replica(s)" in stderr

    chief, other = (json.loads(stdout.strip().splitlines()[-1]) for stdout, _ in outputs)
    assert chief["replicas"] == other["replicas"] == 2
    assert chief["step"] == other["step"] == 4 and chief["trained"] and other["trained"]
    # only the chief wrote the run directory; the other worker's scratch copy went with its process
    assert Path(chief["path"]) == Path(other["path"]) == out
    assert not chief["scratch"] and len(other["scratch"]) == 1
    assert not any((tmp_path / "tmp1").iterdir())
    assert sorted(p.name for p in (out / "checkpoints").glob("ckpt-*.npz")) == ["ckpt-000000002.npz",
                                                                               "ckpt-000000004.npz"]
    assert (out / "samples" / "step_0000004.png").is_file() and (out / "config.toml").is_file()

    ours, theirs = dict(np.load(tmp_path / "worker0.npz")), dict(np.load(tmp_path / "worker1.npz"))
    assert_same_state(ours, theirs)  # the same all-reduced updates, bit for bit
    assert np.isfinite(ours["samples"]).all()
    expected = {**training_state(single.gan), "samples": single.generate(4, seed=1)}
    assert single.gan.distribute_strategy.num_replicas_in_sync == 1
    assert_same_state(ours, expected, **TOLERANCE)
    assert chief["history"].keys() == single.history.history.keys()
    for name, values in single.history.history.items():  # the metrics are the global batch's
        np.testing.assert_allclose(np.ravel(chief["history"][name]), values, **TOLERANCE, err_msg=name)
