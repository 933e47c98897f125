"""The step on TensorFlow: gradients from a ``GradientTape``, data parallelism through ``tf.distribute``.

Keras's TensorFlow trainer calls ``train_step(data)`` inside a ``tf.function`` (XLA when
``jit_compile``); variables are written in place, so the engine's step runs as it reads.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import keras
import tensorflow as tf

from ganframe import distribute


class StepAdapter:
    """What a ``keras.Model`` on TensorFlow needs around the engine's ``_step(data) -> logs``."""

    def train_step(self, data: Any) -> dict[str, Any]:
        return self._step(data)

    def _prepare_networks(self) -> None:
        """Nothing to do: TensorFlow runs Keras's layers as they are."""

    def _attach_optimizers(self, d_optimizer: keras.optimizers.Optimizer, g_optimizer: keras.optimizers.Optimizer) -> None:
        """Nothing to do: the step writes each optimizer's variables in place."""

    def _maybe_symbolic_build(self, iterator: Any = None, data_batch: Any = None) -> None:
        """Keras's hook before ``fit``: under a strategy it reduces a sample batch over the replicas.

        MultiWorkerMirroredStrategy cannot reduce a dict (the pipeline's element under a strategy),
        so on several workers this takes this worker's first replica's share instead; everything
        is built in ``compile`` anyway, so only the batch's shapes could matter.
        """
        if iterator is not None and self.multi_worker:
            for _, _, batches in iterator:
                data_batch = tf.nest.map_structure(
                    lambda value: self.distribute_strategy.experimental_local_results(value)[0], next(batches))
                break
            iterator = None
        super()._maybe_symbolic_build(iterator, data_batch)


def value_and_gradients(compute: Callable[[], tuple[Any, Any]], variables: Sequence[Any],
                        scale: Any = None) -> tuple[Any, Any, list[Any]]:
    """``compute()``'s (loss, aux) and the gradients of loss × ``scale`` (None: 1) with respect to ``variables``."""
    with tf.GradientTape() as tape:
        loss, aux = compute()
    return loss, aux, tape.gradient(loss, variables, output_gradients=scale)


def input_gradients(fn: Callable[[Any], Any], inputs: Any) -> Any:
    """d sum(fn(inputs)) / d inputs, differentiable again (for gradient penalties, R1)."""
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        outputs = fn(inputs)
    return tape.gradient(outputs, inputs)


def compiled(fn: Callable[..., Any], variables: Sequence[Any]) -> Callable[..., Any]:
    """``fn`` as a ``tf.function``, reading ``variables`` as they are at each call (as graphs do)."""
    return tf.function(fn, autograph=False)  # plain tensor code; as in Keras's own step, nothing to convert


def snapshot(value: Any) -> Any:
    """``value`` read now: an explicit copy, so that the variable's later writes do not show through."""
    return tf.identity(value)


def has_strategy() -> bool:
    """True inside a ``tf.distribute`` strategy's scope (building) or replica context (the step)."""
    return tf.distribute.has_strategy()


def replicas_in_sync() -> int:
    """The replicas the step runs on in step (1 without a strategy)."""
    return tf.distribute.get_replica_context().num_replicas_in_sync


def mean_over_replicas(value: Any) -> Any:
    """``value``'s mean over the replicas (each holds the mean of its equal slice): the global batch's value."""
    context = tf.distribute.get_replica_context()
    return value if context.num_replicas_in_sync == 1 else context.all_reduce("MEAN", value)


def multi_worker() -> bool:
    """True when the strategy in scope spans several worker processes (:func:`ganframe.distribute.multi_worker`)."""
    return distribute.multi_worker(tf.distribute.get_strategy())


def apply_across_replicas(finite: Any, loss: Any, apply: Callable[..., None], apply_args: tuple[Any, ...],
                          skip: Callable[..., None], skip_args: tuple[Any, ...]) -> None:
    """``apply(*apply_args)`` on every replica when every replica's update is ``finite``, else
    ``skip(mean loss, *skip_args)`` on every replica.

    The replicas must take the same branch, and the update synchronizes them: the choice is made
    once in cross-replica context with a conditional, as Keras's LossScaleOptimizer does there.
    """

    def choose(strategy: tf.distribute.Strategy, bad: Any, mean_loss: Any, apply_args: Any, skip_args: Any) -> None:
        run = strategy.extended.call_for_each_replica
        keras.ops.cond(
            strategy.reduce("SUM", bad, axis=None) == 0,
            lambda: run(apply, args=apply_args),
            lambda: run(skip, args=(strategy.reduce("MEAN", mean_loss, axis=None), *skip_args)),
        )

    bad = keras.ops.cast(keras.ops.logical_not(finite), "float32")
    mean_loss = keras.ops.cast(keras.ops.mean(loss), "float32")
    tf.distribute.get_replica_context().merge_call(choose, args=(bad, mean_loss, apply_args, skip_args))
