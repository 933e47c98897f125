"""Applying one network's gradients safely: the divergence guard and float16 loss scaling.

Divergence guard (``guard=True``): an update whose loss or gradients are not all finite is
skipped inside the compiled step (a select in each of the optimizer's writes, see
:meth:`GuardedUpdates.apply`), so a NaN never reaches the weights or the optimizer's slots.
Skips are counted in non-trainable variables (``d_skipped``, ``g_skipped``), saved in
checkpoints; ``ganframe.run`` watches them (:mod:`ganframe.guard`) and rolls back when they pile up.

float16 (networks built under a ``mixed_float16`` policy): each network's loss is scaled
dynamically, as Keras's LossScaleOptimizer does, but inside the guarded update: the gradients
are taken of loss × scale and divided by it; a non-finite update is skipped and halves the scale
(not below 1), 2000 finite ones in a row double it. Such an overflow is the scale finding its
level, not divergence: the guard counts a skip only when the loss itself is non-finite or the
scale is already 1. Both scales are checkpointed with the guard's counters.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, Sequence

import keras

from ganframe import backends

#: float16 loss scaling (Keras's LossScaleOptimizer defaults): the first scale, and the finite updates in a row that double it.
LOSS_SCALE_START, LOSS_SCALE_GROWTH = 2.0**15, 2000
#: The counters' dtype: int64, but int32 on JAX, whose arrays are 32-bit unless x64 is switched on process-wide.
COUNTS = "int32" if keras.backend.backend() == "jax" else "int64"


class GuardedUpdates:
    """The optimizers' updates with the guard and loss scaling, and the variables that record them (``state``)."""

    def __init__(self, *, guard: bool, loss_scaling: bool) -> None:
        self.guard = guard
        self.loss_scaling = loss_scaling
        # Per network: updates skipped, and the loss and step of the last skipped one; with float16,
        # also the loss scale and the finite updates since it last changed. Variables (not Python
        # numbers), so they count inside compiled calls, across steps_per_execution, and travel in
        # checkpoints (group "guard").
        bookkeeping = [("skipped", 0, COUNTS), ("bad_loss", 0.0, "float32"), ("bad_step", -1, COUNTS)]
        if loss_scaling:
            bookkeeping += [("loss_scale", LOSS_SCALE_START, "float32"), ("scale_streak", 0, COUNTS)]
        self.state = {
            f"{net}_{what}": keras.Variable(init, dtype=dtype, trainable=False, name=f"{net}_{what}")
            for net in ("d", "g")
            for what, init, dtype in bookkeeping
        }

    def statistics(self, networks: Sequence[keras.Model]) -> list[tuple[Any, Any]]:
        """(variable, value now) of the networks' float non-trainable variables (BatchNorm's moving
        statistics), which forward passes update outside the optimizers; a skipped update puts them back.
        """
        if not (self.guard or self.loss_scaling):
            return []
        return [
            (variable, backends.current().snapshot(variable.value))
            for network in networks
            for variable in network.non_trainable_variables
            if "float" in str(variable.dtype)  # not the dropout seed states
        ]

    def apply(self, net: str, optimizer: keras.optimizers.Optimizer, compute: Callable[[], tuple[Any, Any]],
              variables: list[Any], statistics: list[tuple[Any, Any]], step: Any) -> tuple[Any, Any]:
        """Apply the gradients of ``compute()``'s loss, or, with the guard on and anything non-finite, skip them;
        return ``compute()``'s (loss, aux).

        A skipped update leaves weights, optimizer slots and the moving ``statistics`` as they
        were before it, and still advances ``optimizer.iterations`` (the step count, and so the
        data position and checkpoint names, stay as without the guard). ``step`` is the train
        step's count of G updates before it, recorded with a skip.

        Under a strategy each replica's gradients are scaled by 1 / ``num_replicas_in_sync``:
        ``apply_gradients`` sums them, which is then the gradient of the global batch's mean loss.

        On one device the skip is a select in every write the update makes
        (:func:`_writes_only_if`), which XLA fuses into the update's own kernels; a conditional
        around the update (Keras's LossScaleOptimizer's way) made XLA copy every weight and
        slot, about 15% of the dense GAN's step. Under a strategy the replicas must take the
        same branch and the update synchronizes them (the backend's ``apply_across_replicas``),
        skipping when any replica saw a non-finite value.
        """
        backend = backends.current()
        replicas = backend.replicas_in_sync()
        scale = None if replicas == 1 else keras.ops.cast(1 / replicas, "float32")
        loss_scale = None
        if self.loss_scaling:  # d(loss × loss_scale), then ÷ loss_scale
            loss_scale = backend.snapshot(self.state[f"{net}_loss_scale"].value)
            scale = loss_scale if scale is None else scale * loss_scale
        loss, aux, grads = backend.value_and_gradients(compute, variables, scale)
        if loss_scale is not None:
            grads = [None if grad is None else keras.ops.divide(grad, loss_scale) for grad in grads]
        elif not self.guard:
            optimizer.apply_gradients(zip(grads, variables))
            return loss, aux
        finite = _all_finite([loss, *grads])
        targets = [variable for variable, _ in statistics]
        saved = [value for _, value in statistics]

        if not backend.has_strategy():
            counted = keras.ops.logical_not(finite) if loss_scale is None else self._rescale(net, finite, loss)
            if self.guard:
                self._count_skip(net, counted, loss, step)
            with _writes_only_if(optimizer, finite):
                optimizer.apply_gradients(zip(grads, variables))
            for variable, value in zip(targets, saved):
                variable.assign(keras.ops.where(finite, variable.value, value))
            return loss, aux

        def apply(grads: list[Any]) -> None:
            if loss_scale is not None:
                self._rescale(net, True, 0.0)
            optimizer.apply_gradients(zip(grads, variables))

        def skip(bad_loss: Any, saved: list[Any]) -> None:
            counted = True if loss_scale is None else self._rescale(net, False, bad_loss)
            if self.guard:
                self._count_skip(net, counted, bad_loss, step)
            optimizer.iterations.assign_add(1)
            for variable, value in zip(targets, saved):
                variable.assign(value)

        backend.apply_across_replicas(finite, loss, apply, (grads,), skip, (saved,))
        return loss, aux

    def _rescale(self, net: str, finite: Any, loss: Any) -> Any:
        """Move ``net``'s float16 loss scale after an update (``finite``: it was applied); True where the
        update is a divergence skip for the guard: non-finite with a non-finite loss, or at scale 1.
        """
        scale, streak = self.state[f"{net}_loss_scale"], self.state[f"{net}_scale_streak"]
        finite = keras.ops.convert_to_tensor(finite)
        grow = keras.ops.logical_and(finite, streak.value + 1 >= LOSS_SCALE_GROWTH)
        diverged = keras.ops.logical_and(
            keras.ops.logical_not(finite),
            keras.ops.logical_or(keras.ops.logical_not(keras.ops.all(keras.ops.isfinite(loss))), scale.value <= 1),
        )
        scale.assign(keras.ops.where(finite, keras.ops.where(grow, scale.value * 2, scale.value),
                                     keras.ops.maximum(scale.value / 2, 1.0)))
        streak.assign(keras.ops.where(keras.ops.logical_and(finite, keras.ops.logical_not(grow)), streak.value + 1, 0))
        return diverged

    def _count_skip(self, net: str, skipped: Any, loss: Any, step: Any) -> None:
        """Record a skipped update of ``net`` (where ``skipped``): the count, its loss and its step (1-based)."""
        state = self.state
        bad_loss = keras.ops.cast(keras.ops.mean(loss), "float32")
        step = keras.ops.cast(step, COUNTS) + 1
        state[f"{net}_bad_loss"].assign(keras.ops.where(skipped, bad_loss, state[f"{net}_bad_loss"].value))
        state[f"{net}_bad_step"].assign(keras.ops.where(skipped, step, state[f"{net}_bad_step"].value))
        state[f"{net}_skipped"].assign_add(keras.ops.cast(skipped, state[f"{net}_skipped"].dtype))


def _all_finite(tensors: Sequence[Any]) -> Any:
    """True where every value of ``tensors`` (None entries aside) is finite, as one float32 sum.

    NaN and infinities carry through a sum (inf - inf is NaN), and finite values only make it
    non-finite past float32's largest value, an update no optimizer should apply either. One
    vectorised sum per tensor costs about half of ``all(isfinite(...))``, a pass over every
    gradient that the guard adds to each update.
    """
    total = [keras.ops.sum(keras.ops.cast(tensor, "float32")) for tensor in tensors if tensor is not None]
    return keras.ops.isfinite(keras.ops.sum(keras.ops.stack(total)))


@contextlib.contextmanager
def _writes_only_if(optimizer: keras.optimizers.Optimizer, condition: Any) -> Iterator[None]:
    """While ``apply_gradients`` is traced inside: each write to a weight or slot takes effect only if ``condition``.

    Keras optimizers write through their ``assign``, ``assign_add`` and ``assign_sub`` methods
    (``update_step``); shadowing them on the instance turns each write into a select. The
    optimizer's ``iterations`` counter is written directly, so it still advances. One device
    only: a strategy traces replicas in threads, which must not share shadowed methods.
    """
    cls = type(optimizer)

    def dense(value: Any) -> Any:
        return keras.ops.convert_to_tensor(value)  # an IndexedSlices gradient (embeddings) becomes a dense update

    def assign(variable: Any, value: Any) -> None:
        cls.assign(optimizer, variable, keras.ops.where(condition, dense(value), variable))

    def assign_add(variable: Any, value: Any) -> None:
        value = dense(value)
        cls.assign_add(optimizer, variable, keras.ops.where(condition, value, keras.ops.zeros_like(value)))

    def assign_sub(variable: Any, value: Any) -> None:
        value = dense(value)
        cls.assign_sub(optimizer, variable, keras.ops.where(condition, value, keras.ops.zeros_like(value)))

    optimizer.assign, optimizer.assign_add, optimizer.assign_sub = assign, assign_add, assign_sub
    try:
        yield
    finally:
        del optimizer.assign, optimizer.assign_add, optimizer.assign_sub
