"""Built-in terms that read more of the step than D's logits: D's heads, G's noise, the labels.

``classification`` is AC-GAN's class term (Odena et al. 2017), ``feature_matching`` Salimans et
al.'s (2016) match of D's mean features, ``mode_seeking`` MSGAN's (Mao et al. 2019) push against
mode collapse. Each weight may follow the train step (:class:`ganframe.WeightOptions`). Formulas
and pairings are in docs/losses.md.

Keras is imported inside the methods: listing plugins stays TensorFlow-free.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ganframe import ConfigError, DataSpec, Penalty, Update, WeightOptions, hookimpl


class ClassificationOptions(WeightOptions):
    """Options of ``classification``."""

    weight: float = Field(1.0, ge=0.0, description="The term's weight (at step 0, when it follows a schedule).")
    fakes_train_d: bool = Field(
        True, description="D also learns to name the class of generated images (the paper's L_C); false: real only.")


class FeatureMatchingOptions(WeightOptions):
    """Options of ``feature_matching``."""

    weight: float = Field(1.0, ge=0.0, description="The term's weight (at step 0, when it follows a schedule).")


class ModeSeekingOptions(WeightOptions):
    """Options of ``mode_seeking``."""

    weight: float = Field(1.0, ge=0.0, description="lambda_ms (the paper's 1; at step 0, when it follows a schedule).")


def _cross_entropy(class_logits: Any, labels: Any) -> Any:
    """Mean cross-entropy of integer ``labels`` under ``class_logits``, in float32."""
    from keras import ops

    return ops.mean(ops.sparse_categorical_crossentropy(labels, ops.cast(class_logits, "float32"), from_logits=True))


class Classification(Penalty):
    """AC-GAN's class term: D learns to name each image's class, G to make images D names as asked.

    D minimises CE(class(x), y) + CE(class(G(z, c)), c), G minimises CE(class(G(z, c)), c): the
    log-likelihood L_C of the correct class that the paper has both networks maximise, each beside
    its adversarial loss. Needs D's ``class`` head (B, num_classes) and a G that takes the class.
    """

    applies_to = "both"
    heads = ("class",)

    def __init__(self, options: ClassificationOptions) -> None:
        self.options = options

    def update_loss(self, update: Update) -> Any:
        if update.fake_labels is None or (update.labels is None and update.network == "discriminator"):
            raise ConfigError("penalty 'classification' needs labelled data and a generator that takes the class "
                              "(built-in architectures: auxiliary_classifier = true)")
        loss = _cross_entropy(update.fake_heads["class"], update.fake_labels)
        if update.network == "discriminator":
            real = _cross_entropy(update.real_heads["class"], update.labels)
            loss = real + loss if self.options.fakes_train_d else real
        return self.options.weight_at(update.step) * loss


class FeatureMatching(Penalty):
    """Salimans et al.'s feature matching: ||E f(x) - E f(G(z))||^2 on D's ``features`` head f, a term of G's loss.

    The squared distance between the batch means is divided by the features' width, so that one
    weight suits any D. The real features are D's in G's update (one more D pass), held constant.
    """

    applies_to = "generator"
    heads = ("features",)
    generator_sees_real = True

    def __init__(self, options: FeatureMatchingOptions) -> None:
        self.options = options

    def update_loss(self, update: Update) -> Any:
        from keras import ops

        real = ops.stop_gradient(ops.mean(ops.cast(update.real_heads["features"], "float32"), axis=0))
        fake = ops.mean(ops.cast(update.fake_heads["features"], "float32"), axis=0)
        return self.options.weight_at(update.step) * ops.mean(ops.square(real - fake))


class ModeSeeking(Penalty):
    """MSGAN's mode-seeking term (Mao et al. 2019, eq. 3): lambda / (d_I(G(z1), G(z2)) / d_z(z1, z2) + eps).

    z1 is the update's noise and z2 the same noise rolled by one row, both with the update's classes
    and conditions, so each pair asks for the same class; d is the mean absolute difference, as in
    the paper's code. Minimising it pushes apart the images of different noise within a class:
    the cure for a conditional G that makes one image per class. Costs one more G pass.
    """

    applies_to = "generator"
    eps = 1e-5

    def __init__(self, options: ModeSeekingOptions) -> None:
        self.options = options

    def update_loss(self, update: Update) -> Any:
        from keras import ops

        if update.noise is None or update.generate is None:
            raise ConfigError("penalty 'mode_seeking' compares G's images for different noise: its generator takes none")
        other_noise = ops.roll(update.noise, 1, axis=0)
        other = update.generate(other_noise)
        image_distance = ops.mean(ops.abs(ops.cast(update.fake, "float32") - ops.cast(other, "float32")))
        noise_distance = ops.mean(ops.abs(update.noise - other_noise))
        return self.options.weight_at(update.step) / (image_distance / noise_distance + self.eps)


def build_classification(spec: DataSpec, options: ClassificationOptions) -> Classification:
    if not spec.num_classes:
        raise ConfigError("penalty 'classification' needs labelled data: the data set has no classes (num_classes)")
    return Classification(options)


def build_feature_matching(spec: DataSpec, options: FeatureMatchingOptions) -> FeatureMatching:
    return FeatureMatching(options)


def build_mode_seeking(spec: DataSpec, options: ModeSeekingOptions) -> ModeSeeking:
    return ModeSeeking(options)


@hookimpl
def ganframe_register_losses(register: Any) -> None:
    """Register the built-in terms that read D's heads, G's noise or the labels."""
    register("classification", build_classification,
             "AC-GAN's class term on D's 'class' head, for both networks (Odena et al. 2017) (penalty).",
             ClassificationOptions)
    register("feature_matching", build_feature_matching,
             "||E f(x) - E f(G(z))||^2 on D's 'features' head, for G (Salimans et al. 2016) (penalty).",
             FeatureMatchingOptions)
    register("mode_seeking", build_mode_seeking,
             "MSGAN's term: G's images for different noise kept apart within a class (Mao et al. 2019) (penalty).",
             ModeSeekingOptions)
