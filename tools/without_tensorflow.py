"""The requirements of ganframe on JAX without TensorFlow, one per line: the project's dependencies but
TensorFlow, and its ``jax`` extra, read from pyproject.toml (docs/backends.md).

    pip install --no-deps -e . && pip install $(python tools/without_tensorflow.py)
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def requirements(pyproject: Path = PYPROJECT) -> list[str]:
    """The dependencies but ``tensorflow``, then the ``jax`` extra's."""
    project = tomllib.loads(pyproject.read_text())["project"]
    name = re.compile(r"^[A-Za-z0-9_.-]+")
    kept = [spec for spec in project["dependencies"] if name.match(spec).group(0).lower() != "tensorflow"]
    return kept + project["optional-dependencies"]["jax"]


if __name__ == "__main__":
    print("\n".join(requirements()))
