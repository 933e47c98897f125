"""A smoke run of the step-speed benchmark: all loops run, train both networks, and report ratios."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_benchmark_quick_run(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "step_speed.py"), "--data", "synthetic", "--quick", "--json", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "ganframe/handwritten" in result.stdout and "ganframe/seed" in result.stdout
    report = json.loads(out.read_text())
    for name in ("seed", "handwritten", "ganframe"):
        loop = report["loops"][name]
        assert loop["median_steps_per_s"] > 0
        assert loop["weights_changed"]["G"].split("/")[0] != "0" and loop["weights_changed"]["D"].split("/")[0] != "0"
