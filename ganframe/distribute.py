"""Distribution: the config's ``strategy`` as a ``tf.distribute`` strategy (docs/performance.md).

``default`` is no strategy: one device, the XLA-compiled step. ``mirrored`` replicates the
GAN over the visible devices of this machine, ``multiworker`` over the machines that
``TF_CONFIG`` names. Under a strategy the networks, the GAN and both optimizers are built
inside ``strategy.scope()``; ``fit`` then splits each global batch across the replicas.

TensorFlow is imported only for a strategy other than ``default``: a run without one, on a backend other
than TensorFlow, needs none.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from typing import TYPE_CHECKING

from ganframe import backends
from ganframe.config import RunConfig
from ganframe.errors import ConfigError

if TYPE_CHECKING:
    import tensorflow as tf


@functools.cache
def get_strategy(name: str) -> tf.distribute.Strategy | None:
    """The strategy called ``name``, None for ``default``.

    One per process: ``MultiWorkerMirroredStrategy`` may only be created once, and a
    resumed or reloaded run must land on the same devices as the one it continues.
    """
    if name == "default":
        return None
    import tensorflow as tf

    return tf.distribute.MirroredStrategy() if name == "mirrored" else tf.distribute.MultiWorkerMirroredStrategy()


def run_strategy(config: RunConfig) -> tf.distribute.Strategy | None:
    """``config``'s strategy, checked against its batch size; says on stderr that XLA is off under it."""
    strategy = get_strategy(config.strategy)
    if strategy is None:
        return None
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise ConfigError(
            f"batch_size {config.batch_size} does not split evenly over the {replicas} replicas of strategy "
            f"{config.strategy!r}; choose a multiple of {replicas}"
        )
    if config.jit_compile:
        print(
            f"ganframe: strategy {config.strategy!r} over {replicas} replica(s): XLA (jit_compile) is off, since "
            "Keras does not XLA-compile a distributed step and multi-device XLA fails on CPU",
            file=sys.stderr,
            flush=True,
        )
    return strategy


def strategy_scope(strategy: tf.distribute.Strategy | None) -> contextlib.AbstractContextManager[object]:
    """``strategy.scope()``, or nothing for the default path."""
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


def writes_run_dir(strategy: tf.distribute.Strategy | None) -> bool:
    """Whether this process writes the run directory: all but the non-chief workers of a multi-worker cluster.

    The chief is worker 0 (or a ``chief`` task, if ``TF_CONFIG`` names one). The other workers
    compute the same steps in lockstep and write their copy to a scratch directory instead.
    """
    return strategy is None or strategy.extended.should_checkpoint
