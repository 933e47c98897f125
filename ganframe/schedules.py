"""Learning rates that change with the train step: Keras's decay schedules, counted in steps, with warm-up.

An optimizer's ``schedule`` (docs/config.md) makes its learning rate a :class:`StepSchedule`: a
linear warm-up over ``warmup_steps``, then Keras's ``CosineDecay``, ``PolynomialDecay`` (power 1:
linear) or ``ExponentialDecay`` over ``decay_steps``. The schedule reads the train step (G's
updates), not the optimizer's own update count, so D's rate with ``n_critic = 5`` follows the same
curve as G's. A rolled-back run lowers its rates through :attr:`StepSchedule.scale`, a variable
that checkpoints keep, so a resumed run continues on the rate it stopped at.
"""

from __future__ import annotations

from typing import Any

import keras

from ganframe.config import OptimizerConfig


class StepSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """``scale`` × the rate at train step ``iterations // updates_per_step``: warm-up, then ``decay``."""

    def __init__(self, decay: keras.optimizers.schedules.LearningRateSchedule, warmup_steps: int,
                 updates_per_step: int) -> None:
        self.decay = decay
        self.warmup_steps = warmup_steps
        self.updates_per_step = updates_per_step
        #: Multiplies the whole curve; the divergence rollback lowers it (checkpoint group "schedules").
        self.scale = keras.Variable(1.0, dtype="float32", trainable=False, name="learning_rate_scale")

    def __call__(self, iterations: Any) -> Any:
        step = keras.ops.cast(keras.ops.floor_divide(iterations, self.updates_per_step), "float32")
        rate = self.decay(keras.ops.maximum(step - self.warmup_steps, 0.0))
        if self.warmup_steps:  # from rate / warmup_steps at step 0 to the full rate at step warmup_steps - 1
            rate = rate * keras.ops.minimum(1.0, (step + 1.0) / self.warmup_steps)
        return rate * self.scale

    def get_config(self) -> dict[str, Any]:
        return {"decay": keras.optimizers.schedules.serialize(self.decay), "warmup_steps": self.warmup_steps,
                "updates_per_step": self.updates_per_step}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> StepSchedule:
        return cls(keras.optimizers.schedules.deserialize(config["decay"]), config["warmup_steps"],
                   config["updates_per_step"])


def learning_rate(config: OptimizerConfig, updates_per_step: int) -> float | StepSchedule:
    """What an optimizer made from ``config`` is given as its learning rate: a number, or a :class:`StepSchedule`."""
    rate, steps = config.learning_rate, config.decay_steps
    if config.schedule == "constant":
        return rate
    if config.schedule == "cosine":
        decay = keras.optimizers.schedules.CosineDecay(rate, steps, alpha=config.final_learning_rate / rate)
    elif config.schedule == "linear":
        decay = keras.optimizers.schedules.PolynomialDecay(rate, steps, end_learning_rate=config.final_learning_rate)
    else:
        decay = keras.optimizers.schedules.ExponentialDecay(rate, steps, decay_rate=config.decay_rate)
    return StepSchedule(decay, config.warmup_steps, updates_per_step)


def scale_learning_rate(optimizer: keras.optimizers.Optimizer, schedule: StepSchedule | None, factor: float) -> None:
    """Multiply ``optimizer``'s learning rate by ``factor`` from now on: its schedule's scale, else its rate."""
    if schedule is not None:
        schedule.scale.assign(schedule.scale * factor)
    else:
        optimizer.learning_rate.assign(optimizer.learning_rate * factor)
