"""Multi-worker training (``strategy = "multiworker"``): two worker processes on loopback stay in lockstep.

Each worker is its own Python process with its own ``TF_CONFIG``, training the same tiny
config through ``ganframe.train`` with the same ``out``; only the chief (worker 0) writes
it. The workers' global batch is split between them and their gradients are all-reduced
every update, so both must end at the same step with the same generator. Bounded: each
process is killed after ``TIMEOUT`` seconds, so a worker waiting for a peer that never
comes cannot hang the suite (measured: 45 s of CPU time; 90 s of wall time on 2 cores at load 8).
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

from tinyrun import TINY

TIMEOUT = 120

#: argv: run directory, file for this worker's results. Both workers run exactly this.
WORKER = textwrap.dedent("""
    import json, os, sys, tempfile
    import keras
    import numpy as np
    import ganframe
    out, results = sys.argv[1], sys.argv[2]

    class First(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.weights = self.model.generator.get_weights()

        def on_train_end(self, logs=None):
            self.temporary = os.listdir(tempfile.gettempdir())

    first = First()
    run = ganframe.train({
        "arch": "dense", "arch_options": %(arch)r, "data": "digits", "batch_size": 16,
        "steps": 4, "seed": 5, "strategy": "multiworker", "out": out,
        "callbacks": {"samples": {"every": 2}, "checkpoint": {"every": 2}, "metrics": {"every": 2}},
    }, callbacks=[first])
    weights = run.generator.get_weights()
    np.savez(results, *weights, samples=run.generate(4, seed=1))
    print(json.dumps({"step": run.step, "path": str(run.path), "replicas": run.gan.distribute_strategy.num_replicas_in_sync,
                      "scratch": [name for name in first.temporary if name.startswith("ganframe-worker-")],
                      "trained": any(not np.array_equal(a, b) for a, b in zip(first.weights, weights))}))
""") % {"arch": TINY}


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
def test_two_workers_on_loopback_train_in_lockstep_and_only_the_chief_writes(tmp_path: Path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    out = tmp_path / "run"
    workers = []
    for index in range(2):
        (tmp_path / f"tmp{index}").mkdir()  # the worker's temporary directory, for its scratch copy
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TMPDIR": str(tmp_path / f"tmp{index}"),
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        workers.append(subprocess.Popen([sys.executable, str(script), str(out), str(tmp_path / f"worker{index}.npz")],
                                        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
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

    ours, theirs = np.load(tmp_path / "worker0.npz"), np.load(tmp_path / "worker1.npz")
    assert sorted(ours.files) == sorted(theirs.files)
    for key in ours.files:  # the same all-reduced updates, bit for bit
        np.testing.assert_array_equal(ours[key], theirs[key], err_msg=key)
    assert np.isfinite(ours["samples"]).all()
