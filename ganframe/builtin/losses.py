"""Built-in adversarial losses: the original GAN objective, in its two generator forms.

D emits raw logits x, and D(x) = sigmoid(x). The losses never form sigmoid(x):
-log sigmoid(x) = softplus(-x) and -log(1 - sigmoid(x)) = softplus(x), which stay
finite and exact for any logit, where log(sigmoid(x)) underflows to -inf.

Keras is imported inside the methods: listing plugins stays TensorFlow-free.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ganframe import AdversarialLoss, DataSpec, NoOptions, Options, hookimpl


class NonSaturatingOptions(Options):
    """Options of ``nonsaturating``."""

    label_smoothing: float = Field(
        0.0,
        ge=0.0,
        lt=0.5,
        description="One-sided label smoothing: D's target for real images is 1 - label_smoothing.",
    )


def _logits(x: Any) -> Any:
    """Logits as float32, so mixed-precision networks still get a full-precision loss."""
    import keras

    return keras.ops.cast(x, "float32")


class LogisticLoss(AdversarialLoss):
    """D's binary cross-entropy (real -> 1 - label_smoothing, fake -> 0), shared by both G forms.

    Subclasses choose what G minimises.
    """

    def __init__(self, label_smoothing: float = 0.0) -> None:
        self.label_smoothing = label_smoothing

    def discriminator_loss(self, real_logits: Any, fake_logits: Any) -> Any:
        """BCE(real, 1 - s) + BCE(fake, 0), each the mean over the batch."""
        from keras import ops

        real, fake = _logits(real_logits), _logits(fake_logits)
        s = self.label_smoothing
        real_term = (1.0 - s) * ops.softplus(-real) + s * ops.softplus(real)
        return ops.mean(real_term) + ops.mean(ops.softplus(fake))


class NonSaturatingLoss(LogisticLoss):
    """G minimises -log D(G(z)): strong gradients while D still rejects the fakes (Goodfellow et al. 2014, sec. 3)."""

    def generator_loss(self, fake_logits: Any) -> Any:
        from keras import ops

        return ops.mean(ops.softplus(-_logits(fake_logits)))


class MinimaxLoss(LogisticLoss):
    """G minimises log(1 - D(G(z))), the literal minimax game (eq. 1); saturates when D is confident."""

    def generator_loss(self, fake_logits: Any) -> Any:
        from keras import ops

        return -ops.mean(ops.softplus(_logits(fake_logits)))


def build_nonsaturating(spec: DataSpec, options: NonSaturatingOptions) -> NonSaturatingLoss:
    """The default loss; what the seed's ``gan.train_on_batch(noise, ones)`` computes."""
    return NonSaturatingLoss(options.label_smoothing)


def build_minimax(spec: DataSpec, options: NoOptions) -> MinimaxLoss:
    """The textbook objective, mostly for comparison: its G gradient vanishes early in training."""
    return MinimaxLoss()


@hookimpl
def ganframe_register_losses(register: Any) -> None:
    """Register the built-in adversarial losses."""
    register(
        "nonsaturating",
        build_nonsaturating,
        "Non-saturating GAN loss (G minimises -log D(G(z))); the default.",
        NonSaturatingOptions,
    )
    register("minimax", build_minimax, "Original minimax GAN loss (G minimises log(1 - D(G(z)))).", NoOptions)
