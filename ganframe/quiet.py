"""TensorFlow without its start-up noise on stderr.

Importing TensorFlow writes lines from C++ that no ganframe user can act on: absl's banner
("All log messages before absl::InitializeLog() is called are written to STDERR"), "Could not
find cuda drivers", the CPU-instructions and oneDNN notes, and an error-level "failed call to
cuInit" on every machine without a GPU. Some come before TensorFlow's log reads
``TF_CPP_MIN_LOG_LEVEL``, so the variable alone cannot hide them.

:func:`install` (run by ``import ganframe``) wraps the process's first import of TensorFlow, by
ganframe, a plugin or the user's own code: ``TF_CPP_MIN_LOG_LEVEL`` defaults to 2 (errors only),
and while TensorFlow loads and finds its devices, stderr goes to a temporary file and every
line is then written back except TensorFlow log lines below that level and the known noise
above. Everything else (Python warnings, real errors) passes, only later. Nothing changes with
``GANFRAME_VERBOSE=1`` (``ganframe --verbose``) or an explicit ``TF_CPP_MIN_LOG_LEVEL=0``.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import re
import sys
import tempfile
from types import ModuleType
from typing import Iterator, Sequence

VERBOSE_ENV = "GANFRAME_VERBOSE"
LEVEL_ENV = "TF_CPP_MIN_LOG_LEVEL"
DEFAULT_LEVEL = "2"

#: A line of TensorFlow's (absl's) C++ log: severity letter, date, time, thread id, file:line].
_LOG_LINE = re.compile(rb"^([IWEF])\d{4} \d\d:\d\d:\d+\.\d+\s+\d+\s+\S+:\d+\] ")
_SEVERITY = {b"I": 0, b"W": 1, b"E": 2, b"F": 3}
#: absl's note that its log is not set up yet: about logging, not about anything the user runs.
_BANNER = re.compile(rb"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR\s*$")
#: Error-level log lines that report no error: no GPU on this machine, a CUDA library registered twice.
_KNOWN_ERRORS = re.compile(rb"failed call to cuInit|Unable to register cu(DNN|FFT|BLAS) factory")


def verbose() -> bool:
    """Whether the user asked for TensorFlow's own output (``GANFRAME_VERBOSE=1``, ``ganframe --verbose``)."""
    return os.environ.get(VERBOSE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def log_level() -> int:
    """``TF_CPP_MIN_LOG_LEVEL`` as TensorFlow reads it: 0 shows everything, 3 only fatal errors."""
    try:
        return int(os.environ.get(LEVEL_ENV, "0"))
    except ValueError:
        return 0


def kept_lines(lines: Sequence[bytes], level: int) -> list[bytes]:
    """The lines that are not noise at ``level``: absl's banner, log lines below it and known non-errors go."""
    if level <= 0:
        return list(lines)
    kept = []
    for line in lines:
        entry = _LOG_LINE.match(line)
        if entry is not None:
            noise = _SEVERITY[entry.group(1)] < level or _KNOWN_ERRORS.search(line) is not None
        else:
            noise = _BANNER.match(line) is not None
        if not noise:
            kept.append(line)
    return kept


@contextlib.contextmanager
def filtered_stderr(level: int) -> Iterator[None]:
    """While the body runs, file descriptor 2 (C++ included) goes to a temporary file; then what
    :func:`kept_lines` keeps of it is written to stderr, even when the body raises."""
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to filter
        yield
        return
    if sys.stderr is not None:
        sys.stderr.flush()
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            if sys.stderr is not None:
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = kept_lines(capture.read().splitlines(keepends=True), level)
            if kept:
                with open(2, "wb", closefd=False) as stderr:
                    stderr.write(b"".join(kept))


class _QuietLoader(importlib.abc.Loader):
    """TensorFlow's own loader, run inside :func:`filtered_stderr`."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        module.__spec__.loader = module.__loader__ = self.loader  # TensorFlow sees its own loader
        os.environ.setdefault(LEVEL_ENV, DEFAULT_LEVEL)
        with filtered_stderr(log_level()):
            self.loader.exec_module(module)
            module.config.list_physical_devices()  # CUDA starts (cuInit) here, not at the first operation


class _FirstImport(importlib.abc.MetaPathFinder):
    """Hands the first import of ``tensorflow`` to :class:`_QuietLoader`, then steps aside."""

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != "tensorflow":
            return None
        with contextlib.suppress(ValueError):  # another thread got here first
            sys.meta_path.remove(self)
        if verbose() or (LEVEL_ENV in os.environ and log_level() <= 0):
            return None
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def install() -> None:
    """Quiet the first import of TensorFlow in this process, unless it has happened already."""
    if "tensorflow" not in sys.modules and not any(isinstance(finder, _FirstImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _FirstImport())
