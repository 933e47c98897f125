"""Losses of pix2pix's experiments: the L1-only baseline, and the cross-entropy per patch of a PatchGAN.

Keras is imported inside the methods: listing plugins stays TensorFlow-free.
"""

from __future__ import annotations

from typing import Any

from ganframe import AdversarialLoss, DataSpec, NoOptions, Update


class L1Only(AdversarialLoss):
    """No adversarial signal: 0 for both networks, so that with the ``reconstruction`` term G learns from
    λ·E|G(c) − x| alone, the paper's "L1" baseline (Isola et al. 2017, table 1) against which cGAN + L1 is judged.

    The value is 0 · mean(logits) rather than a constant: every gradient through D is then zero
    instead of missing, so the engine's updates run unchanged and D's weights stay where they started.
    """

    def discriminator_loss(self, real_logits: Any, fake_logits: Any) -> Any:
        from keras import ops

        return 0.0 * (ops.mean(ops.cast(real_logits, "float32")) + ops.mean(ops.cast(fake_logits, "float32")))

    def generator_loss(self, fake_logits: Any) -> Any:
        from keras import ops

        return 0.0 * ops.mean(ops.cast(fake_logits, "float32"))


class PatchGANLoss(AdversarialLoss):
    """The non-saturating cross-entropy applied to each patch logit of D's ``patches`` head and averaged, as
    the pix2pix authors' code trains its PatchGAN (Isola et al. 2017, sec. 3.2.2), rather than to the mean
    patch logit ``logit``.

    D: E[softplus(−real)] + E[softplus(fake)] over images and patches; G: E[softplus(−fake)]. On a D
    without the head (one logit per image) it is exactly the ``nonsaturating`` loss.
    """

    def update_loss(self, update: Update) -> Any:
        from keras import ops

        fake = _patches(update.fake_heads, update.fake_logits)
        if update.network == "generator":
            return ops.mean(ops.softplus(-fake))
        real = _patches(update.real_heads, update.real_logits)
        return ops.mean(ops.softplus(-real)) + ops.mean(ops.softplus(fake))


def _patches(heads: Any, logits: Any) -> Any:
    """D's patch logits where it returns them, else its logits, as float32."""
    from keras import ops

    return ops.cast(heads.get("patches", logits), "float32")


def build_l1_only(spec: DataSpec, options: NoOptions) -> L1Only:
    return L1Only()


def build_patchgan(spec: DataSpec, options: NoOptions) -> PatchGANLoss:
    return PatchGANLoss()
