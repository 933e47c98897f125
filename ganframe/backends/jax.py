"""The step on JAX: Keras's stateless train step, with the engine's step read as it is written.

Keras's JAX trainer calls ``train_step(state, data) -> (logs, state)`` under ``jax.jit``, where
``state`` holds the values of the model's trainable, non-trainable, optimizer and metric
variables, and no variable may be written in place. :class:`StepAdapter` runs the engine's
``_step`` inside one ``keras.StatelessScope`` mapping every variable to its value in ``state``:
the step's reads see those values, its writes (the optimizers', BatchNorm's statistics, the
seed generators', the guard's counters, the EMA, the metrics) land in the scope, and the new
state is read back out of it. :func:`value_and_gradients` differentiates a loss with respect to
some of those values with ``jax.value_and_grad``, in a scope of its own whose writes join the
step's scope afterwards.

Outside ``fit``, :func:`compiled` runs a measurement the same way under ``jax.jit``.

Data parallelism is Keras's (``keras.distribution.DataParallel``, ganframe.distribute): the variables
are replicated and the batch split over the devices, and the one jitted step is the global batch's.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, Sequence

import jax
import keras

from ganframe.backends import jax_conv

#: The scope of the stateless function being traced: the train step, or one :func:`compiled` (None outside).
_scope: keras.StatelessScope | None = None


@contextlib.contextmanager
def _stateless(mapping: list[tuple[keras.Variable, Any]]) -> Iterator[keras.StatelessScope]:
    """A ``keras.StatelessScope`` holding ``mapping``, known to :func:`value_and_gradients` while inside."""
    global _scope
    outer, _scope = _scope, keras.StatelessScope(state_mapping=mapping)
    try:
        with _scope as scope:
            yield scope
    finally:
        _scope = outer


class OptimizerPair:
    """The two optimizers as Keras's JAX trainer sees ``model.optimizer``: their variables, D's then G's, in one list."""

    built = True

    def __init__(self, d_optimizer: keras.optimizers.Optimizer, g_optimizer: keras.optimizers.Optimizer) -> None:
        self.d_optimizer, self.g_optimizer = d_optimizer, g_optimizer

    @property
    def variables(self) -> list[keras.Variable]:
        return [*self.d_optimizer.variables, *self.g_optimizer.variables]


class StepAdapter:
    """What a ``keras.Model`` on JAX needs around the engine's ``_step(data) -> logs``."""

    def _prepare_networks(self) -> None:
        """Transposed convolutions with a kernel gradient XLA:CPU computes quickly (ganframe.backends.jax_conv)."""
        for network in (self.generator, self.discriminator):
            jax_conv.speed_up(network)

    def _attach_optimizers(self, d_optimizer: keras.optimizers.Optimizer, g_optimizer: keras.optimizers.Optimizer) -> None:
        """Let the trainer carry both optimizers' variables in its state (as ``model.optimizer``)."""
        self.optimizer = OptimizerPair(d_optimizer, g_optimizer)

    def _state_variables(self) -> list[list[keras.Variable]]:
        """The variables behind the trainer's state tuple, in its order."""
        return [self.trainable_variables, self.non_trainable_variables, self.optimizer.variables, self.metrics_variables]

    def train_step(self, state: tuple[list[Any], ...], data: Any) -> tuple[dict[str, Any], tuple[list[Any], ...]]:
        groups = self._state_variables()
        with _stateless([(variable, value) for variables, values in zip(groups, state)
                         for variable, value in zip(variables, values)]) as scope:
            logs = self._step(data)
        return logs, tuple([scope.get_current_value(variable) for variable in variables] for variables in groups)


def value_and_gradients(compute: Callable[[], tuple[Any, Any]], variables: Sequence[keras.Variable],
                        scale: Any = None) -> tuple[Any, Any, list[Any]]:
    """``compute()``'s (loss, aux) and the gradients of loss × ``scale`` (None: 1) with respect to ``variables``.

    ``compute`` runs in a scope holding the step's values with ``variables`` as the differentiated
    inputs; what it writes (BatchNorm's statistics, seed generators) joins the step's scope after.
    ``aux`` must hold arrays only (it leaves ``jax.value_and_grad``).
    """
    scope = _scope
    if scope is None:
        raise RuntimeError("on JAX, value_and_gradients runs inside the train step or a function made by compiled()")
    before = dict(scope.state_mapping)
    differentiated = [id(variable) for variable in variables]

    def scaled_loss(values: list[Any]) -> tuple[Any, tuple[Any, Any, dict[int, Any]]]:
        inner = keras.StatelessScope()
        inner.state_mapping = {**before, **dict(zip(differentiated, values))}
        with inner:
            loss, aux = compute()
        written = {key: value for key, value in inner.state_mapping.items()
                   if key not in differentiated and before.get(key) is not value}
        return (loss if scale is None else loss * scale), (loss, aux, written)

    (_, (loss, aux, written)), grads = jax.value_and_grad(scaled_loss, has_aux=True)(
        [before[key] for key in differentiated])
    scope.state_mapping.update(written)
    return loss, aux, grads


def input_gradients(fn: Callable[[Any], Any], inputs: Any) -> Any:
    """d sum(fn(inputs)) / d inputs, differentiable again (for gradient penalties, R1).

    What ``fn`` writes (a BatchNorm in D updating its statistics) is dropped: those values belong
    to the inner differentiation and cannot leave it.
    """
    outer = _scope

    def total(x: Any) -> Any:
        if outer is None:
            return keras.ops.sum(fn(x))
        inner = keras.StatelessScope()
        inner.state_mapping = dict(outer.state_mapping)
        with inner:
            return keras.ops.sum(fn(x))

    return jax.grad(total)(inputs)


def compiled(fn: Callable[..., Any], variables: Sequence[keras.Variable]) -> Callable[..., Any]:
    """``fn`` under ``jax.jit``, reading ``variables`` (every variable it reads) as they are at each call.

    Their values are passed in, not captured when traced; what ``fn`` writes is dropped, so it
    suits measurements that change nothing (the health probe).
    """
    variables = list(variables)

    def pure(values: list[Any], *args: Any) -> Any:
        with _stateless(list(zip(variables, values))):
            return fn(*args)

    jitted = jax.jit(pure)
    return lambda *args: jitted([variable.value for variable in variables], *args)


def snapshot(value: Any) -> Any:
    """``value`` itself: JAX arrays are immutable."""
    return value


def has_strategy() -> bool:
    """False: no ``tf.distribute`` on JAX (``DataParallel`` needs nothing of the step's code)."""
    return False


def replicas_in_sync() -> int:
    """1: even under ``DataParallel``, the step computes the global batch's loss and gradients."""
    return 1


def mean_over_replicas(value: Any) -> Any:
    """``value``: already the global batch's."""
    return value


def multi_worker() -> bool:
    """False: one process (``multiworker`` is refused on JAX)."""
    return False
