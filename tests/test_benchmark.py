"""Smoke runs of the benchmarks: step speed on each backend (every loop runs, trains both networks and
reports ratios), scaling, data scale."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def assert_loops_trained(report, names):
    """Each named loop of a step-speed report ran at a positive speed and changed both networks' weights."""
    for name in names:
        loop = report["loops"][name]
        assert loop["median_steps_per_s"] > 0 and loop["of_ceiling"] > 0
        assert loop["weights_changed"]["G"].split("/")[0] != "0" and loop["weights_changed"]["D"].split("/")[0] != "0"


@pytest.mark.slow
def test_benchmark_quick_run(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "step_speed.py"), "--backend", "tensorflow", "--data", "synthetic",
         "--quick", "--json", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "ganframe/handwritten" in result.stdout and "ganframe/seed" in result.stdout and "FLOP ceiling" in result.stdout
    assert "backend tensorflow" in result.stdout
    report = json.loads(out.read_text())
    assert_loops_trained(report, ("seed", "handwritten", "ganframe"))


@pytest.mark.slow
def test_benchmark_quick_run_on_jax(tmp_path):
    """On JAX the hand-written loop is a jax.jit step of stateless calls; it and ganframe train both networks."""
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "step_speed.py"), "--backend", "jax", "--data", "synthetic", "--quick",
         "--loops", "handwritten,ganframe", "--json", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "ratio of steps/s, backend jax" in result.stdout and "ganframe/handwritten" in result.stdout
    assert "weight check: every loop changed both networks' weights in every timed round" in result.stdout
    report = json.loads(out.read_text())
    assert report["environment"]["backend"] == "jax" and "jax" in report["environment"]
    assert_loops_trained(report, ("handwritten", "ganframe"))


@pytest.mark.slow
def test_scaling_quick_run(tmp_path):
    """The scaling benchmark's smoke run: every section runs and reports speeds, FLOPs and RSS growth."""
    out = tmp_path / "scaling.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "scaling.py"), "--quick", "--json", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads(out.read_text())
    for section in ("batch", "image", "spe"):
        for point in report[section]:
            assert point["median_steps_per_s"] > 0 and point["flops"]["step"] > 0 and point["of_ceiling"] > 0
    assert [point["steps_per_execution"] for point in report["spe"]] == [1, 2]
    memory = report["memory"]
    assert memory["steps"] == 100 and [step for step, _, _ in memory["samples"]] == [50, 100]
    assert memory["rss_end_mib"] > 0 and "growth_mib" in memory


@pytest.mark.slow
def test_data_scale_smoke_run(tmp_path):
    """The data benchmark's folders are generated and read; its resume section runs (the CLI and speed
    sections train a 64x64 dcgan for minutes, so they run by hand: docs/performance.md)."""
    out = tmp_path / "data.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "data_scale.py"), "--work", str(tmp_path / "work"),
         "--sizes", "300,600", "--sections", "resume", "--json", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert len(list((tmp_path / "work" / "jpeg64-600").glob("*.jpg"))) == 600
    report = json.loads(out.read_text())
    assert report["sizes"] == [300, 600] and 0 < report["resume"]["step_10_seconds"] < 60
