"""The tiny run the engine, reliability and evaluation tests share: seconds on 2 CPU cores.

Importable from tests because pyproject's pytest settings put ``tests/`` on ``pythonpath``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ganframe import DataSpec

SPEC = DataSpec((8, 8, 1))  # scikit-learn's digits
TINY = {"g_widths": [16, 32], "d_widths": [32, 16], "latent_dim": 8, "dropout": 0.0}


def tiny_config(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    """A dense GAN a few layers wide on digits, 6 steps, written to ``tmp_path / "run"``."""
    config = {
        "arch": "dense",
        "arch_options": dict(TINY),
        "data": "digits",
        "batch_size": 32,
        "steps": 6,
        "seed": 3,
        "jit_compile": False,  # XLA costs seconds to compile a tiny model; the compiled path has its own tests
        "out": str(tmp_path / "run"),
        "callbacks": {"samples": {"every": 0}, "checkpoint": {"every": 3}, "metrics": {"every": 2}},
    }
    config.update(changes)
    return config
