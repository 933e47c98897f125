"""Distribution: the config's ``strategy`` as a ``tf.distribute`` strategy or a Keras distribution (docs/performance.md).

``default`` is no strategy: one device, the XLA-compiled step. ``mirrored`` replicates the
GAN over the visible devices of this machine, ``multiworker`` over the machines that
``TF_CONFIG`` names. On TensorFlow that is a ``tf.distribute`` strategy: the networks, the GAN
and both optimizers are built inside ``strategy.scope()``; ``fit`` then splits each global batch
across the replicas. On JAX ``mirrored`` is ``keras.distribution.DataParallel``: every variable is
replicated over the local devices, each batch is split over them, and ``jax.jit`` compiles the one
step for the whole batch (XLA adds the reductions), so the step's maths is exactly one device's.

TensorFlow is imported only for a strategy other than ``default`` on TensorFlow: a run without one,
or on JAX, needs none.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from typing import TYPE_CHECKING, Any, Union

import keras

from ganframe import backends
from ganframe.config import RunConfig
from ganframe.errors import ConfigError

if TYPE_CHECKING:
    import tensorflow as tf

#: What a ``strategy`` other than ``default`` is: TensorFlow's or Keras's (on JAX) way of spreading a step.
Strategy = Union["tf.distribute.Strategy", keras.distribution.DataParallel]


@functools.cache
def get_strategy(name: str) -> Strategy | None:
    """The strategy called ``name`` on this process's backend, None for ``default``.

    One per process: ``MultiWorkerMirroredStrategy`` may only be created once, and a
    resumed or reloaded run must land on the same devices as the one it continues.
    """
    if name == "default":
        return None
    if keras.backend.backend() == "jax":
        if name != "mirrored":
            raise ConfigError(f"config 'strategy': got {name!r}; on the jax backend ganframe trains on the devices of "
                              "one machine: \"default\" (one device) or \"mirrored\" (all local devices)")
        return keras.distribution.DataParallel(devices=keras.distribution.list_devices())
    import tensorflow as tf

    return tf.distribute.MirroredStrategy() if name == "mirrored" else tf.distribute.MultiWorkerMirroredStrategy()


def replicas(strategy: Strategy | None) -> int:
    """How many devices share each step under ``strategy``."""
    if strategy is None:
        return 1
    if isinstance(strategy, keras.distribution.DataParallel):
        return strategy.device_mesh.devices.size
    return strategy.num_replicas_in_sync


def tf_strategy(strategy: Strategy | None) -> tf.distribute.Strategy | None:
    """``strategy`` if it is TensorFlow's (what ``tf.data`` distributes over), else None."""
    return None if strategy is None or isinstance(strategy, keras.distribution.DataParallel) else strategy


def run_strategy(config: RunConfig) -> Strategy | None:
    """``config``'s strategy, checked against its batch size; says on stderr when XLA is off under it."""
    strategy = get_strategy(config.strategy)
    if strategy is None:
        return None
    count = replicas(strategy)
    if config.batch_size % count:
        raise ConfigError(
            f"batch_size {config.batch_size} does not split evenly over the {count} replicas of strategy "
            f"{config.strategy!r}; choose a multiple of {count}"
        )
    if config.jit_compile and tf_strategy(strategy) is not None:
        print(
            f"ganframe: strategy {config.strategy!r} over {count} replica(s): XLA (jit_compile) is off, since "
            "Keras does not XLA-compile a distributed step and multi-device XLA fails on CPU",
            file=sys.stderr,
            flush=True,
        )
    return strategy


def strategy_scope(strategy: Strategy | None) -> contextlib.AbstractContextManager[Any]:
    """``strategy.scope()`` (both kinds have one), or nothing for the default path."""
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def distributed() -> bool:
    """True while building inside a strategy's scope (architectures then synchronize BatchNorm); never on a
    backend without strategies, which it asks without importing TensorFlow."""
    return backends.current().has_strategy()


def multi_worker(strategy: tf.distribute.Strategy | None) -> bool:
    """True when ``strategy`` spans several worker processes (a ``TF_CONFIG`` cluster of more than one).

    Keras's ``fit`` takes other code paths then (see ``ganframe.engine``): the test is Keras's own,
    more replicas in sync than this worker holds.
    """
    import tensorflow as tf

    return (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
            and strategy.num_replicas_in_sync > len(strategy.extended.worker_devices))


def writes_run_dir(strategy: Strategy | None) -> bool:
    """Whether this process writes the run directory: all but the non-chief workers of a multi-worker cluster.

    The chief is worker 0 (or a ``chief`` task, if ``TF_CONFIG`` names one). The other workers
    compute the same steps in lockstep and write their copy to a scratch directory instead.
    """
    return tf_strategy(strategy) is None or strategy.extended.should_checkpoint
