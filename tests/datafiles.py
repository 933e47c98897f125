"""Tiny data files in the exact original formats (IDX, CIFAR-10 binary), for the dataset tests; where real MNIST lies.

Importable from tests because pyproject's pytest settings put ``tests/`` on ``pythonpath``.
"""

from __future__ import annotations

import gzip
import io
import os
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest

#: The real MNIST files: GANFRAME_DATA_DIR, else the repository's sibling shared/datasets/mnist (as in CI).
REAL_MNIST = Path(os.environ.get("GANFRAME_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist")
_NO_MNIST = (f"no MNIST in {REAL_MNIST} (set GANFRAME_DATA_DIR or provide ../shared/datasets/mnist: the four IDX "
             "files train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
             "t10k-labels-idx1-ubyte.gz)")
if not (REAL_MNIST / "t10k-images-idx3-ubyte.gz").is_file() and os.environ.get("GANFRAME_REQUIRE_MNIST") == "1":
    # CI sets this: there the MNIST tests (the learning tests among them) must run, never skip.
    pytest.fail(f"{_NO_MNIST}; GANFRAME_REQUIRE_MNIST=1 forbids skipping the tests that need it", pytrace=False)
#: For tests that need real MNIST: they skip where it is missing (and fail with GANFRAME_REQUIRE_MNIST=1).
needs_mnist = pytest.mark.skipif(not (REAL_MNIST / "t10k-images-idx3-ubyte.gz").is_file(), reason=_NO_MNIST)


def idx_bytes(array: np.ndarray, magic: int | None = None, count: int | None = None) -> bytes:
    """The IDX encoding of a uint8 array: big-endian magic, dimensions, then the raw bytes."""
    magic = magic if magic is not None else 2048 + array.ndim
    dims = (count if count is not None else array.shape[0], *array.shape[1:])
    return struct.pack(f">I{array.ndim}I", magic, *dims) + array.astype(np.uint8).tobytes()


def write_mnist(directory: Path, train: int = 20, test: int = 12, gz: bool = True) -> dict[str, np.ndarray]:
    """Tiny MNIST in the four standard files; returns the arrays written."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(test)[::-1] % 10).astype(np.uint8),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for stem, array in arrays.items():
        raw = idx_bytes(array)
        if gz:
            (directory / f"{stem}.gz").write_bytes(gzip.compress(raw))
        else:
            (directory / stem).write_bytes(raw)
    return arrays


CIFAR_FILES = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]


def cifar_batch(first: int, count: int) -> bytes:
    """``count`` CIFAR-10 binary records, numbered from ``first``: record k has label k % 10, red pixel
    (row, column) = (32 * row + column) % 256, green 7 everywhere and blue k everywhere."""
    red = (np.arange(1024) % 256).astype(np.uint8).tobytes()
    return b"".join(bytes([k % 10]) + red + bytes([7]) * 1024 + bytes([k]) * 1024 for k in range(first, first + count))


def cifar_files(count: int = 3) -> dict[str, bytes]:
    return {name: cifar_batch(index * count, count) for index, name in enumerate(CIFAR_FILES)}


def write_cifar(directory: Path, count: int = 3, layout: str = "folder") -> Path:
    """The binary version in ``directory``: the extracted folder, the bare .bin files, or the .tar.gz archive."""
    directory.mkdir(parents=True, exist_ok=True)
    if layout == "archive":
        with tarfile.open(directory / "cifar-10-binary.tar.gz", "w:gz") as tar:
            for name, raw in {"batches.meta.txt": b"airplane\n", **cifar_files(count)}.items():
                member = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
                member.size = len(raw)
                tar.addfile(member, io.BytesIO(raw))
        return directory / "cifar-10-binary.tar.gz"
    folder = directory / "cifar-10-batches-bin" if layout == "folder" else directory
    folder.mkdir(exist_ok=True)
    for name, raw in cifar_files(count).items():
        (folder / name).write_bytes(raw)
    return folder
