"""The Keras backend a process trains on, and the few things the step needs from it.

Keras 3 fixes its backend when it is first imported (``KERAS_BACKEND``, or the ``ganframe``
command's ``--backend``, which sets it). The step's maths (:mod:`ganframe.engine`), the guard
(:mod:`ganframe.updates`) and every component are written with ``keras.ops``; what differs
between backends lives in one module per backend, with the same names:

- ``StepAdapter``: the ``train_step`` Keras's ``fit`` calls, around the engine's ``_step``, and what the
  backend changes in the networks before the first step (on JAX's CPU: faster transposed convolutions);
- ``value_and_gradients(compute, variables, scale)``: a loss, its auxiliary outputs and its gradients;
- ``input_gradients(fn, inputs)``: gradients with respect to inputs (penalties), differentiable again;
- ``compiled(fn, variables)``: ``fn`` compiled, reading those variables' values at each call;
- ``snapshot(value)``: a variable's value now, safe from the writes that follow it;
- ``replicas_in_sync()``, ``mean_over_replicas(value)``, ``multi_worker()``: data parallelism
  (``tf.distribute`` on TensorFlow; on JAX ``DataParallel`` leaves the step one global computation).
"""

from __future__ import annotations

import importlib
from types import ModuleType

import keras

from ganframe.config import BACKENDS
from ganframe.errors import ConfigError


def current() -> ModuleType:
    """The module of the backend Keras runs on in this process."""
    name = keras.backend.backend()
    if name not in BACKENDS:
        raise ConfigError(f"Keras runs on the {name!r} backend here; ganframe trains on {' or '.join(BACKENDS)}: "
                          "set KERAS_BACKEND to one of them before ganframe is imported")
    return importlib.import_module(f"ganframe.backends.{name}")


def check_backend(wanted: str) -> None:
    """Refuse a run configured for another backend than this process's Keras (it cannot change once imported)."""
    name = keras.backend.backend()
    if wanted != name:
        raise ConfigError(f"config 'backend': got {wanted!r}, but Keras was imported on the {name!r} backend in this "
                          f"process; set KERAS_BACKEND={wanted} before importing ganframe (the ganframe command's "
                          "--backend does it)")
