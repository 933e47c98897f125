"""Loss "old-plugin-lsq": least squares on the discriminator's raw outputs."""

from ganframe import AdversarialLoss, DataSpec, NoOptions


class LeastSquares(AdversarialLoss):
    def discriminator_loss(self, real_logits, fake_logits):
        from keras import ops

        return 0.5 * (ops.mean(ops.square(real_logits - 1.0)) + ops.mean(ops.square(fake_logits)))

    def generator_loss(self, fake_logits):
        from keras import ops

        return 0.5 * ops.mean(ops.square(fake_logits - 1.0))


def build_lsq(spec: DataSpec, options: NoOptions) -> LeastSquares:
    return LeastSquares()
