"""Built-in adversarial losses and the gradient penalties that regularise them.

A run composes one adversarial loss (``loss = "..."``) with any penalties
(``[penalties.<name>]``); formulas, papers and recommended pairings are in ``docs/losses.md``.

D emits one raw output per image. The logistic losses read it as a logit, D(x) = sigmoid(x),
and never form sigmoid(x): -log sigmoid(x) = softplus(-x) and -log(1 - sigmoid(x)) = softplus(x)
stay finite and exact for any logit, where log(sigmoid(x)) underflows to -inf. The least-squares,
hinge and Wasserstein losses take the raw output as D's value itself (a linear last layer).

Keras is imported inside the methods: listing plugins stays TensorFlow-free.
"""

from __future__ import annotations

from typing import Any, Callable, Literal

from pydantic import Field

import ganframe
from ganframe import AdversarialLoss, DataSpec, NoOptions, Options, Penalty, Update, WeightOptions, hookimpl


class NonSaturatingOptions(Options):
    """Options of ``nonsaturating``."""

    label_smoothing: float = Field(
        0.0,
        ge=0.0,
        lt=0.5,
        description="One-sided label smoothing: D's target for real images is 1 - label_smoothing.",
    )


class RelativisticOptions(Options):
    """Options of ``relativistic``."""

    form: Literal["standard", "least_squares", "hinge"] = Field(
        "standard",
        description="The loss applied to relativistic outputs: standard (RaSGAN), least_squares (RaLSGAN) or hinge (RaHingeGAN).",
    )


class ReconstructionOptions(WeightOptions):
    """Options of ``reconstruction``."""

    weight: float = Field(100.0, gt=0.0, description="lambda: the term is lambda * E|G(c) - x| (pix2pix's 100).")
    norm: Literal["l1", "l2"] = Field("l1", description="l1: E|G(c) - x|; l2: E[(G(c) - x)^2].")


class GradientPenaltyOptions(WeightOptions):
    """Options of ``gradient_penalty``."""

    weight: float = Field(10.0, gt=0.0, description="lambda: the penalty is lambda * E[(||grad D(x_hat)|| - 1)^2].")


class ZeroCentredOptions(Options):
    """Options of ``r1`` and ``r2``."""

    gamma: float = Field(10.0, gt=0.0, description="gamma: the penalty is gamma / 2 * E[||grad D(x)||^2].")


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


class LeastSquaresLoss(AdversarialLoss):
    """LSGAN (Mao et al. 2017) with targets a = 0 (fake), b = 1 (real), c = 1 (G's aim), D's output linear.

    Quadratic, so G keeps a gradient for fakes D already scores correctly but far from the real
    data, where the sigmoid cross-entropy has saturated.
    """

    decision_boundary = 0.5  # halfway between the targets for fake (0) and real (1)

    def discriminator_loss(self, real_logits: Any, fake_logits: Any) -> Any:
        """1/2 E[(D(x) - 1)^2] + 1/2 E[D(G(z))^2]."""
        from keras import ops

        real, fake = _logits(real_logits), _logits(fake_logits)
        return 0.5 * ops.mean(ops.square(real - 1.0)) + 0.5 * ops.mean(ops.square(fake))

    def generator_loss(self, fake_logits: Any) -> Any:
        """1/2 E[(D(G(z)) - 1)^2]."""
        from keras import ops

        return 0.5 * ops.mean(ops.square(_logits(fake_logits) - 1.0))


class WassersteinLoss(AdversarialLoss):
    """WGAN (Arjovsky et al. 2017): D is a critic estimating E[D(x)] - E[D(G(z))].

    Only meaningful with D kept (near) 1-Lipschitz: pair it with ``gradient_penalty``.
    """

    def discriminator_loss(self, real_logits: Any, fake_logits: Any) -> Any:
        """E[D(G(z))] - E[D(x)]: the negated Wasserstein estimate."""
        from keras import ops

        return ops.mean(_logits(fake_logits)) - ops.mean(_logits(real_logits))

    def generator_loss(self, fake_logits: Any) -> Any:
        """-E[D(G(z))]."""
        from keras import ops

        return -ops.mean(_logits(fake_logits))


class HingeLoss(WassersteinLoss):
    """Hinge loss (Lim & Ye 2017; Miyato et al. 2018): G's objective is the Wasserstein one.

    D stops being pushed once real scores exceed 1 and fake scores fall below -1, which bounds
    its outputs without a penalty.
    """

    def discriminator_loss(self, real_logits: Any, fake_logits: Any) -> Any:
        """E[relu(1 - D(x))] + E[relu(1 + D(G(z)))]."""
        from keras import ops

        real, fake = _logits(real_logits), _logits(fake_logits)
        return ops.mean(ops.relu(1.0 - real)) + ops.mean(ops.relu(1.0 + fake))


class RelativisticLoss(AdversarialLoss):
    """Relativistic average GAN (Jolicoeur-Martineau 2019, eqs. 9-10 and the RaLSGAN/RaHinge forms).

    D judges whether a real image is more realistic than the average fake, and a fake than the
    average real: with C the raw output, D~(x_r) = C(x_r) - E[C(x_f)] and D~(x_f) = C(x_f) - E[C(x_r)].
    D minimises f1(D~(x_r)) + f2(D~(x_f)); G the same with real and fake swapped, so G's update
    also reads D's outputs on real images (``generator_sees_real``). Per form, f1 / f2:
    standard -log sigmoid(y) / -log(1 - sigmoid(y)); least squares (y - 1)^2 / (y + 1)^2;
    hinge relu(1 - y) / relu(1 + y). Each term is a mean over the batch.
    """

    generator_sees_real = True

    def __init__(self, form: Literal["standard", "least_squares", "hinge"] = "standard") -> None:
        self.form = form

    def _pair(self, more_real: Any, less_real: Any) -> Any:
        """f1 on the outputs that should read as more realistic, f2 on the others."""
        from keras import ops

        if self.form == "standard":  # -log sigmoid(y) = softplus(-y); -log(1 - sigmoid(y)) = softplus(y)
            return ops.mean(ops.softplus(-more_real)) + ops.mean(ops.softplus(less_real))
        if self.form == "least_squares":
            return ops.mean(ops.square(more_real - 1.0)) + ops.mean(ops.square(less_real + 1.0))
        return ops.mean(ops.relu(1.0 - more_real)) + ops.mean(ops.relu(1.0 + less_real))

    def update_loss(self, update: Update) -> Any:
        from keras import ops

        real, fake = _logits(update.real_logits), _logits(update.fake_logits)
        real_relative, fake_relative = real - ops.mean(fake), fake - ops.mean(real)
        if update.network == "discriminator":
            return self._pair(real_relative, fake_relative)
        return self._pair(fake_relative, real_relative)


class Reconstruction(Penalty):
    """lambda * E|G(c) - x| (pix2pix: Isola et al. 2017, eq. 3), or the squared error: G's output for a
    condition against the image paired with it, a term of G's loss beside the adversarial one.

    Needs paired data and a generator that takes its condition: only then is ``update.real`` the
    target of ``update.fake`` (docs/plugins.md, ``Update``).
    """

    applies_to = "generator"

    def __init__(self, options: ReconstructionOptions) -> None:
        self.options = options

    def update_loss(self, update: Update) -> Any:
        from keras import ops

        if update.condition is None:
            raise ganframe.ConfigError(
                "penalty 'reconstruction' compares G's output with the image paired with its condition: it needs "
                "paired data (a data set with conditions) and an architecture whose generator takes them")
        error = ops.cast(update.fake, "float32") - ops.cast(update.real, "float32")
        weight = self.options.weight_at(update.step)
        return weight * ops.mean(ops.abs(error) if self.options.norm == "l1" else ops.square(error))


def _squared_norms(gradients: Any) -> Any:
    """Per-sample squared L2 norms over all non-batch axes, in float32."""
    from keras import ops

    gradients = ops.cast(gradients, "float32")
    return ops.sum(ops.square(gradients), axis=tuple(range(1, len(gradients.shape))))


class GradientPenalty(Penalty):
    """WGAN-GP (Gulrajani et al. 2017): lambda * E[(||grad D(x_hat)||_2 - 1)^2].

    x_hat = eps * x + (1 - eps) * G(z) with eps ~ U[0, 1] per sample, drawn afresh on every
    critic step from this penalty's own seed generator (made when the penalty is built, so a
    run seeded by ``keras.utils.set_random_seed`` draws the same eps every time).
    """

    def __init__(self, options: GradientPenaltyOptions) -> None:
        import keras

        self.options = options
        self.seed_generator = keras.random.SeedGenerator()

    def __call__(self, critic: Callable[[Any], Any], real: Any, fake: Any) -> Any:
        """The penalty at its starting weight."""
        return self.options.weight * self.unweighted(critic, real, fake)

    def update_loss(self, update: Update) -> Any:
        return self.options.weight_at(update.step) * self.unweighted(update.critic, update.real, update.fake)

    def unweighted(self, critic: Callable[[Any], Any], real: Any, fake: Any) -> Any:
        """E[(||grad D(x_hat)||_2 - 1)^2]."""
        import keras
        from keras import ops

        real = ops.convert_to_tensor(real)
        shape = (ops.shape(real)[0],) + (1,) * (ops.ndim(real) - 1)  # one weight per image
        eps = keras.random.uniform(shape, dtype=real.dtype, seed=self.seed_generator)
        mixed = eps * real + (1.0 - eps) * ops.cast(fake, real.dtype)
        # The tiny constant keeps the norm's gradient finite where D's input gradient is exactly
        # zero (sqrt'(0) is infinite); it moves a norm by at most 1e-10, invisible in float32.
        norms = ops.sqrt(_squared_norms(ganframe.input_gradients(critic, mixed)) + 1e-20)
        return ops.mean(ops.square(norms - 1.0))


class ZeroCentredPenalty(Penalty):
    """R1 (``on="real"``) or R2 (``on="fake"``), Mescheder et al. 2018: gamma / 2 * E[||grad D(x)||^2].

    Pushes D's input gradient towards zero on one distribution, which makes training converge
    locally for the non-saturating loss where the unregularised game oscillates.
    """

    def __init__(self, gamma: float, on: Literal["real", "fake"]) -> None:
        self.gamma = gamma
        self.on = on

    def __call__(self, critic: Callable[[Any], Any], real: Any, fake: Any) -> Any:
        from keras import ops

        images = ops.convert_to_tensor(real if self.on == "real" else fake)  # a tape can only watch tensors
        return 0.5 * self.gamma * ops.mean(_squared_norms(ganframe.input_gradients(critic, images)))


def build_nonsaturating(spec: DataSpec, options: NonSaturatingOptions) -> NonSaturatingLoss:
    """The default loss; what the seed's ``gan.train_on_batch(noise, ones)`` computes."""
    return NonSaturatingLoss(options.label_smoothing)


def build_minimax(spec: DataSpec, options: NoOptions) -> MinimaxLoss:
    """The textbook objective, mostly for comparison: its G gradient vanishes early in training."""
    return MinimaxLoss()


def build_lsgan(spec: DataSpec, options: NoOptions) -> LeastSquaresLoss:
    """No label smoothing: the targets are the loss's own labels, and overshooting them is already penalised."""
    return LeastSquaresLoss()


def build_hinge(spec: DataSpec, options: NoOptions) -> HingeLoss:
    return HingeLoss()


def build_wasserstein(spec: DataSpec, options: NoOptions) -> WassersteinLoss:
    return WassersteinLoss()


def build_relativistic(spec: DataSpec, options: RelativisticOptions) -> RelativisticLoss:
    return RelativisticLoss(options.form)


def build_reconstruction(spec: DataSpec, options: ReconstructionOptions) -> Reconstruction:
    return Reconstruction(options)


def build_gradient_penalty(spec: DataSpec, options: GradientPenaltyOptions) -> GradientPenalty:
    return GradientPenalty(options)


def build_r1(spec: DataSpec, options: ZeroCentredOptions) -> ZeroCentredPenalty:
    return ZeroCentredPenalty(options.gamma, on="real")


def build_r2(spec: DataSpec, options: ZeroCentredOptions) -> ZeroCentredPenalty:
    return ZeroCentredPenalty(options.gamma, on="fake")


@hookimpl
def ganframe_register_losses(register: Any) -> None:
    """Register the built-in adversarial losses and penalties."""
    register(
        "nonsaturating",
        build_nonsaturating,
        "Non-saturating GAN loss (G minimises -log D(G(z))); the default.",
        NonSaturatingOptions,
    )
    register("minimax", build_minimax, "Original minimax GAN loss (G minimises log(1 - D(G(z)))).", NoOptions)
    register("lsgan", build_lsgan, "Least-squares GAN loss (Mao et al. 2017; targets 0, 1, 1).", NoOptions)
    register("hinge", build_hinge, "Hinge loss (Lim & Ye 2017; SN-GAN): real scores above 1, fake below -1.", NoOptions)
    register("wasserstein", build_wasserstein, "Wasserstein critic loss (WGAN); pair with gradient_penalty.", NoOptions)
    register(
        "relativistic",
        build_relativistic,
        "Relativistic average loss (RaSGAN; form least_squares: RaLSGAN, hinge: RaHingeGAN).",
        RelativisticOptions,
    )
    register(
        "gradient_penalty",
        build_gradient_penalty,
        "WGAN-GP penalty lambda * E[(||grad D(x_hat)|| - 1)^2] on real-fake interpolates (penalty).",
        GradientPenaltyOptions,
    )
    register(
        "reconstruction",
        build_reconstruction,
        "lambda * E|G(c) - x| between G's output and its paired target (pix2pix's L1; norm l2: squared) (penalty).",
        ReconstructionOptions,
    )
    register("r1", build_r1, "R1 penalty gamma/2 * E[||grad D(x)||^2] on real images (penalty).", ZeroCentredOptions)
    register("r2", build_r2, "R2 penalty gamma/2 * E[||grad D(G(z))||^2] on fakes (penalty).", ZeroCentredOptions)
