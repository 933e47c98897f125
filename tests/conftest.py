"""Shared pytest fixtures.

``private_cache`` (automatic): ``GANFRAME_CACHE_DIR`` points at a temporary directory.

``global_seeds`` (automatic): every test starts from the same global random state.

``installed_plugins``: the real plugin distributions in ``tests/plugin_packages``,
pip-installed into a private directory that is on ``sys.path`` only while a test
that asks for the fixture runs (other tests never see them).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import random
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

PLUGIN_PACKAGES = Path(__file__).parent / "plugin_packages"

#: Install directories, in sys.path order, and the packages each holds. testplugin
#: gets a directory of its own, ahead of the others, so that it deterministically
#: loads before ganframe-duplicate, which registers the same architecture name.
PLUGIN_DIRS = {
    "first": ("testplugin",),
    "rest": ("brokenimport", "misspelt", "raising", "duplicate"),
}

#: Top-level modules the plugin packages install (dropped from sys.modules after each test).
PLUGIN_MODULES = tuple(f"ganframe_{name}" for names in PLUGIN_DIRS.values() for name in names)

_IGNORE = shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__", "*.pyc")


@dataclass(frozen=True)
class InstalledPlugins:
    """Where the test plugin distributions are installed.

    ``paths``: the install directories, in the order they go on ``sys.path``.
    ``path``: the same as one ``os.pathsep``-joined search path (PYTHONPATH style).
    ``env``: ``os.environ`` plus that PYTHONPATH, for subprocesses (e.g. the CLI).
    """

    paths: tuple[Path, ...]

    @property
    def path(self) -> str:
        return os.pathsep.join(str(path) for path in self.paths)

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [self.path, env.get("PYTHONPATH")]))
        return env


def _sources_digest() -> str:
    """Changes whenever a plugin package's sources, the Python version or the layout change."""
    digest = hashlib.sha256(f"{sys.version}\n{sorted(PLUGIN_DIRS.items())}\n".encode())
    for file in sorted(PLUGIN_PACKAGES.rglob("*")):
        relative = file.relative_to(PLUGIN_PACKAGES)
        if file.is_file() and not any(part in {"build", "__pycache__"} or part.endswith(".egg-info") for part in relative.parts):
            digest.update(f"{relative.as_posix()}\n".encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def _pip_install(packages: tuple[str, ...], target: Path, scratch: Path) -> None:
    sources = []
    for name in packages:
        # Build from a copy: an in-tree build would leave build/ and *.egg-info in tests/.
        source = scratch / name
        shutil.copytree(PLUGIN_PACKAGES / name, source, ignore=_IGNORE)
        sources.append(str(source))
    command = [
        sys.executable, "-m", "pip", "install", "--isolated", "--no-deps", "--no-build-isolation",
        "--no-index", "--disable-pip-version-check", "--no-input", "--quiet", "--target", str(target), *sources,
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"installing the test plugins failed:\n$ {' '.join(command)}\n{done.stdout}{done.stderr}", pytrace=False)


def _build_plugin_dirs(root: Path, scratch: Path) -> None:
    for directory, packages in PLUGIN_DIRS.items():
        _pip_install(packages, root / directory, scratch / directory)
    (root / "complete").write_text("ok\n")


@pytest.fixture(autouse=True)
def global_seeds() -> None:
    """Seed Python, NumPy and (once imported) Keras and TensorFlow before each test.

    Keras draws the initial weights of a network built without an explicit seed from Python's
    ``random``, so without this a test's networks, and every number compared against them, would
    depend on which tests ran before it (a spectral-norm check failed only after its neighbours).
    """
    random.seed(0)
    np.random.seed(0)
    if "keras" in sys.modules:  # importing Keras here would load TensorFlow for every test
        sys.modules["keras"].utils.set_random_seed(0)


@pytest.fixture(autouse=True, scope="session")
def private_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Reference statistics of metrics go to a temporary cache, never the user's ~/.cache/ganframe."""
    path = tmp_path_factory.mktemp("ganframe-cache")
    previous = os.environ.get("GANFRAME_CACHE_DIR")
    os.environ["GANFRAME_CACHE_DIR"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("GANFRAME_CACHE_DIR", None)
    else:
        os.environ["GANFRAME_CACHE_DIR"] = previous


@pytest.fixture(scope="session")
def plugin_distributions(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> InstalledPlugins:
    """Install the test plugins once per session (cached across runs by content); sys.path is untouched.

    Use ``installed_plugins`` to make them visible in-process; this one is for
    wider-scoped fixtures and subprocess tests that need only ``.env``.
    """
    if importlib.util.find_spec("setuptools") is None:
        pytest.fail("the test plugins are built with --no-build-isolation, which needs setuptools installed", pytrace=False)
    scratch = tmp_path_factory.mktemp("plugin-build")
    cache = getattr(request.config, "cache", None)
    if cache is None:  # pytest run with -p no:cacheprovider
        root = tmp_path_factory.mktemp("plugin-dists")
        _build_plugin_dirs(root, scratch)
    else:
        root = cache.mkdir("ganframe-plugin-distributions") / _sources_digest()
        if not (root / "complete").exists():
            staging = root.with_name(f"{root.name}.{os.getpid()}.tmp")
            shutil.rmtree(staging, ignore_errors=True)
            _build_plugin_dirs(staging, scratch)
            shutil.rmtree(root, ignore_errors=True)
            try:
                staging.rename(root)
            except OSError:  # another process finished first: use its copy
                shutil.rmtree(staging, ignore_errors=True)
    return InstalledPlugins(tuple(root / directory for directory in PLUGIN_DIRS))


@pytest.fixture
def installed_plugins(plugin_distributions: InstalledPlugins, monkeypatch: pytest.MonkeyPatch):
    """The test plugin distributions, visible to ``importlib.metadata`` and imports for this test only."""
    for path in reversed(plugin_distributions.paths):
        monkeypatch.syspath_prepend(str(path))  # also invalidates importlib's caches
    try:
        yield plugin_distributions
    finally:
        for module in PLUGIN_MODULES:
            sys.modules.pop(module, None)
        monkeypatch.undo()
        importlib.invalidate_caches()
