"""Checkpoints: every variable a run needs to continue exactly, in one verified ``.npz``.

A checkpoint holds both networks' weights (BatchNorm statistics included),
both optimizers' slots and iteration counters, and the engine's random seed
state, in a fixed order, plus the divergence guard's counters and the generator's EMA weights
(when the run keeps them), plus a manifest
(step, shapes, SHA-256 of the arrays). It is written atomically; loading checks the
manifest, so a truncated or corrupted file is reported by name instead of half-restoring.
A write that fails (disk full, ...) raises :class:`RunError` and leaves the previous
checkpoints as they were; a temporary file left by a killed writer is ignored by
:func:`list_checkpoints` and removed by the next write.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ganframe.errors import RunError
from ganframe.files import atomic_write

FORMAT = "ganframe-checkpoint/1"
_STEP = re.compile(r"^ckpt-(\d+)\.npz$")
_TEMPORARY = re.compile(r"^\.(ckpt-\d+|best)\.npz\..*\.tmp$")  # atomic_write's temporaries

#: The named slot that holds the checkpoint with the best evaluation score (see ganframe.evaluation).
BEST = "best.npz"

#: Groups a checkpoint may lack (written before they existed): their variables keep their values.
_OPTIONAL = ("guard", "ema", "components", "schedules")


def _groups(gan: Any) -> dict[str, list[Any]]:
    return {
        "generator": list(gan.generator.variables),  # variables: weights plus dropout seed states
        "discriminator": list(gan.discriminator.variables),
        "g_optimizer": list(gan.g_optimizer.variables),
        "d_optimizer": list(gan.d_optimizer.variables),
        "seed": [gan.seed_generator.state],
        "guard": [gan.skip_state[name] for name in sorted(gan.skip_state)],
        "ema": list(gan.ema_weights),  # empty without EMA
        "components": list(gan.component_seeds),  # the loss's, penalties' and augmentations' seed states
        "schedules": list(gan.schedule_scales),
    }


def _total_skips(gan: Any) -> int:
    return sum(getattr(gan, "skipped", {}).values())


def state_arrays(gan: Any) -> dict[str, np.ndarray]:
    """Every variable a checkpoint holds, as host arrays keyed ``<group>/<index>``."""
    return {
        f"{group}/{index:04d}": np.asarray(variable.numpy())
        for group, variables in _groups(gan).items()
        for index, variable in enumerate(variables)
    }


def restore_arrays(gan: Any, arrays: dict[str, np.ndarray], source: str = "the saved state") -> None:
    """Assign ``arrays`` (from :func:`state_arrays` or a checkpoint) to ``gan``, checking every shape first."""
    groups = _groups(gan)
    for group, variables in groups.items():
        stored = sorted(key for key in arrays if key.startswith(group + "/"))
        if not stored and group in _OPTIONAL:
            continue
        if len(stored) != len(variables):
            raise RunError(
                f"{source} holds {len(stored)} {group} variables, the model has {len(variables)}: "
                "it was written for a different architecture or options"
            )
        for key, variable in zip(stored, variables):
            if tuple(arrays[key].shape) != tuple(variable.shape):
                raise RunError(
                    f"{source}: {group} variable {variable.path} has shape {tuple(variable.shape)}, "
                    f"stored {tuple(arrays[key].shape)}: it was written for a different architecture or options"
                )
    for group, variables in groups.items():
        for index, variable in enumerate(variables):
            key = f"{group}/{index:04d}"
            if key in arrays:
                variable.assign(arrays[key])
    gan.checkpointed_skips = _total_skips(gan)


def _digest(arrays: dict[str, np.ndarray]) -> str:
    sha = hashlib.sha256()
    for key in sorted(arrays):
        sha.update(key.encode())
        sha.update(np.ascontiguousarray(arrays[key]).tobytes())
    return sha.hexdigest()


def save_checkpoint(gan: Any, directory: str | Path, keep: int | None = None, *, name: str | None = None,
                    extra: dict[str, Any] | None = None) -> Path:
    """Write ``gan``'s complete training state as ``directory/ckpt-<step>.npz``, atomically.

    With ``keep``, only the newest ``keep`` step checkpoints remain afterwards. ``name`` writes
    a named slot instead (``best.npz``), which rotation never touches; ``extra`` (JSON-able)
    goes into the manifest. The state of every callback in ``gan.state_callbacks`` (name ->
    callback with ``get_state()``) is saved with it, so that resume can give it back.
    """
    arrays = state_arrays(gan)
    manifest = {
        "format": FORMAT,
        "step": gan.global_step,
        "sha256": _digest(arrays),
        "shapes": {key: list(value.shape) for key, value in arrays.items()},
        "callbacks": {key: callback.get_state() for key, callback in getattr(gan, "state_callbacks", {}).items()},
        **(extra or {}),
    }
    buffer = io.BytesIO()
    np.savez(buffer, __manifest__=np.frombuffer(json.dumps(manifest).encode(), dtype=np.uint8), **arrays)
    path = Path(directory) / (name or checkpoint_name(gan.global_step))
    try:
        _remove_stale_temporaries(path.parent)
        with atomic_write(path) as handle:
            handle.write(buffer.getvalue())
    except OSError as error:  # disk full, no permission, ...: the previous checkpoints are untouched
        reason = error.strerror or str(error)
        raise RunError(f"could not write checkpoint {path}: {reason}") from None
    if name is None:
        gan.checkpointed_skips = _total_skips(gan)
    if keep and name is None:
        for _, old in list_checkpoints(directory)[:-keep]:
            old.unlink(missing_ok=True)
    return path


def _remove_stale_temporaries(directory: Path) -> None:
    """Delete checkpoint temporaries that a killed writer left (one run writes its checkpoints alone)."""
    if not directory.is_dir():
        return
    for entry in directory.iterdir():
        if _TEMPORARY.match(entry.name):
            with contextlib.suppress(OSError):
                entry.unlink()


def read_checkpoint(path: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The manifest and arrays of a checkpoint, verified; a damaged file raises :class:`RunError`."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            manifest = json.loads(archive["__manifest__"].tobytes().decode())
            arrays = {key: archive[key] for key in archive.files if key != "__manifest__"}
    except FileNotFoundError:
        raise RunError(f"checkpoint {path} does not exist") from None
    except Exception as error:  # zip, json and key errors all mean the same thing here
        raise RunError(f"checkpoint {path} is unreadable or truncated ({type(error).__name__}: {error})") from None
    if manifest.get("format") != FORMAT:
        raise RunError(f"checkpoint {path} has format {manifest.get('format')!r}, expected {FORMAT!r}")
    if _digest(arrays) != manifest.get("sha256"):
        raise RunError(f"checkpoint {path} is corrupted: its contents do not match its checksum")
    return manifest, arrays


def load_checkpoint(gan: Any, path: str | Path) -> dict[str, Any]:
    """Restore ``gan`` (compiled, so its optimizers exist) from ``path``; returns the manifest."""
    manifest, arrays = read_checkpoint(path)
    restore_arrays(gan, arrays, source=f"checkpoint {path}")
    return manifest


def checkpoint_name(step: int) -> str:
    return f"ckpt-{step:09d}.npz"


def list_checkpoints(directory: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of every checkpoint in ``directory``, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _STEP.match(p.name))]
    return sorted(found)


def _newest_verified(directory: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray], Path] | None:
    """Manifest, arrays and path of the newest checkpoint that verifies, naming each damaged one skipped."""
    for _, path in reversed(list_checkpoints(directory)):
        try:
            manifest, arrays = read_checkpoint(path)
        except RunError as error:
            print(f"warning: {error}; trying the previous checkpoint", file=sys.stderr)
            continue
        return manifest, arrays, path
    return None


def latest_checkpoint(directory: str | Path) -> tuple[dict[str, Any], Path] | None:
    """The newest checkpoint that verifies, skipping (and naming) damaged ones; None if there is none."""
    found = _newest_verified(directory)
    return None if found is None else (found[0], found[2])


def restore_latest(gan: Any, directory: str | Path) -> dict[str, Any] | None:
    """Restore ``gan`` from the newest checkpoint that verifies, reading it once; its manifest, or None."""
    found = _newest_verified(directory)
    if found is None:
        return None
    manifest, arrays, path = found
    restore_arrays(gan, arrays, source=f"checkpoint {path}")
    return manifest
