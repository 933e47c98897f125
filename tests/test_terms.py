"""Terms that read more of the step (AC-GAN's class term, feature matching, mode seeking), weights that follow
the step, and discriminators with named heads: closed forms on fixed values, then real runs."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import ganframe
from ganframe import ConfigError, DataSpec, Update, WeightOptions, load_plugins
from tinyrun import tiny_config

SPEC = DataSpec((8, 8, 1), num_classes=3)
CLASS_LOGITS_REAL = np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]], np.float32)
CLASS_LOGITS_FAKE = np.array([[0.0, 1.0, 0.0], [-2.0, 0.0, 2.0]], np.float32)
LABELS = np.array([0, 2], np.int32)
FAKE_LABELS = np.array([1, 0], np.int32)


@pytest.fixture(scope="module")
def registry():
    return load_plugins()


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean -log softmax(logits)[label], the naive way in float64."""
    logits = np.asarray(logits, np.float64)
    log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return float(-log_softmax[np.arange(len(labels)), labels].mean())


def update(network: str, **fields) -> Update:
    defaults = dict(real=None, fake=None, real_logits=None, fake_logits=None, labels=LABELS, fake_labels=FAKE_LABELS,
                    critic=None, step=tf.constant(0, tf.int64))
    return Update(network=network, **{**defaults, **fields})


# -- weights that follow the step -------------------------------------------------------------------


@pytest.mark.parametrize(("schedule", "expected"), [
    ("constant", [10.0, 10.0, 10.0, 10.0]),
    ("linear", [10.0, 7.5, 5.0, 5.0]),
    ("cosine", [10.0, 5.0 + 5.0 * np.cos(np.pi / 4) ** 2, 5.0, 5.0]),
])
def test_a_weight_follows_its_schedule(schedule, expected):
    options = WeightOptions(weight=10.0, weight_schedule=schedule, final_weight=5.0, weight_steps=100)
    at = [float(np.asarray(options.weight_at(tf.constant(step, tf.int64)))) for step in (0, 50, 100, 1000)]
    np.testing.assert_allclose(at, expected, rtol=1e-6)


def test_a_weight_schedule_needs_its_steps():
    with pytest.raises(ValueError, match="weight_schedule 'linear' needs weight_steps"):
        WeightOptions(weight=1.0, weight_schedule="linear")


def test_a_scheduled_gradient_penalty_weighs_by_the_step(registry):
    penalty = registry.build("loss", "gradient_penalty", {"weight": 10.0, "weight_schedule": "linear",
                                                          "final_weight": 0.0, "weight_steps": 4}, DataSpec((8, 8, 1)))

    def critic(x):  # gradient (2, 2, ...) everywhere: norm 2 * 8 = 16, penalty (16 - 1)^2 = 225
        return 2.0 * tf.reduce_sum(x, axis=(1, 2, 3))[:, None]

    images = tf.constant(np.random.default_rng(0).random((2, 8, 8, 1)), tf.float32)
    values = [float(penalty.update_loss(update("discriminator", real=images, fake=images, critic=critic,
                                               step=tf.constant(step, tf.int64)))) for step in (0, 1, 4)]
    np.testing.assert_allclose(values, [2250.0, 1687.5, 0.0], rtol=1e-5)


# -- closed forms -------------------------------------------------------------------------------------


def test_classification_is_the_class_cross_entropy_of_each_network(registry):
    term = registry.build("loss", "classification", {"weight": 2.0}, SPEC)
    heads = dict(real_heads={"class": CLASS_LOGITS_REAL}, fake_heads={"class": CLASS_LOGITS_FAKE})
    fake = cross_entropy(CLASS_LOGITS_FAKE, FAKE_LABELS)
    real = cross_entropy(CLASS_LOGITS_REAL, LABELS)
    assert term.applies_to == "both" and term.heads == ("class",)
    assert float(term.update_loss(update("discriminator", **heads))) == pytest.approx(2.0 * (real + fake), rel=1e-6)
    assert float(term.update_loss(update("generator", **heads))) == pytest.approx(2.0 * fake, rel=1e-6)
    real_only = registry.build("loss", "classification", {"fakes_train_d": False}, SPEC)
    assert float(real_only.update_loss(update("discriminator", **heads))) == pytest.approx(real, rel=1e-6)


def test_classification_needs_labels(registry):
    with pytest.raises(ConfigError, match="needs labelled data"):
        registry.build("loss", "classification", {}, DataSpec((8, 8, 1)))


def test_feature_matching_is_the_distance_of_mean_features_and_holds_the_real_ones(registry):
    term = registry.build("loss", "feature_matching", {"weight": 3.0}, SPEC)
    real = tf.constant([[1.0, 2.0], [3.0, 4.0]])
    fake = tf.Variable([[0.0, 0.0], [2.0, 6.0]])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(real)
        value = term.update_loss(update("generator", real_heads={"features": real}, fake_heads={"features": fake}))
    # means (2, 3) and (1, 3): squared distance 1 over 2 features
    assert float(value) == pytest.approx(3.0 * 0.5, rel=1e-6)
    assert tape.gradient(value, real) is None or not np.asarray(tape.gradient(value, real)).any()
    np.testing.assert_allclose(np.asarray(tape.gradient(value, fake)), 3.0 * np.array([[-0.5, 0.0], [-0.5, 0.0]]))


def test_mode_seeking_is_the_inverse_ratio_of_image_to_noise_distance(registry):
    term = registry.build("loss", "mode_seeking", {"weight": 1.0}, SPEC)
    noise = tf.constant([[0.0, 1.0], [2.0, -1.0], [1.0, 1.0]])

    def generate(z):  # images = 3 z: the images are three times as far apart as their noise
        return 3.0 * tf.reshape(z, (-1, 1, 2, 1))

    value = term.update_loss(update("generator", fake=generate(noise), noise=noise, generate=generate))
    assert float(value) == pytest.approx(1.0 / (3.0 + 1e-5), rel=1e-6)


def test_mode_seeking_needs_noise(registry):
    term = registry.build("loss", "mode_seeking", {}, SPEC)
    with pytest.raises(ConfigError, match="its generator takes none"):
        term.update_loss(update("generator", fake=tf.zeros((2, 8, 8, 1))))


# -- heads in real runs --------------------------------------------------------------------------------


def test_an_acgan_run_trains_the_class_head_of_d_and_g_against_it(tmp_path):
    """auxiliary_classifier: G takes the class, D does not but names it; the class term moves both networks."""
    config = tiny_config(tmp_path, arch_options={**tiny_config(tmp_path)["arch_options"], "auxiliary_classifier": True},
                         penalties={"classification": {}}, steps=4)
    run = ganframe.train(config, progress=False)
    gan = run.gan
    assert gan.conditional and not gan.discriminator_conditional
    outputs = gan.discriminator(np.zeros((2, 8, 8, 1), np.float32))
    assert sorted(outputs) == ["class", "logit"] and tuple(outputs["class"].shape) == (2, 10)
    images = run.generate(20, labels=np.arange(20) % 10)
    assert images.shape == (20, 8, 8, 1)


def test_a_generator_term_that_reads_real_features_makes_g_see_real_images(tmp_path):
    config = tiny_config(tmp_path, arch_options={**tiny_config(tmp_path)["arch_options"], "feature_head": True},
                         penalties={"feature_matching": {}}, steps=2)
    run = ganframe.train(config, progress=False)
    assert run.step == 2 and run.gan.generator_sees_real
    assert sorted(run.gan.discriminator(np.zeros((1, 8, 8, 1), np.float32))) == ["features", "logit"]


def test_a_term_that_needs_a_head_the_discriminator_lacks_is_refused_before_training(tmp_path):
    with pytest.raises(ConfigError, match="reads the discriminator's 'class' output, which architecture 'dense'"):
        ganframe.train(tiny_config(tmp_path, arch_options={**tiny_config(tmp_path)["arch_options"], "conditional": True},
                                   penalties={"classification": {}}), progress=False)
    assert not (tmp_path / "run").exists()


def test_a_discriminator_dict_without_a_logit_is_refused(tmp_path):
    image = keras.Input((8, 8, 1))
    features = keras.layers.Dense(4)(keras.layers.Flatten()(image))
    discriminator = keras.Model(image, {"score": keras.layers.Dense(1)(features)})
    noise = keras.Input((8,))
    generator = keras.Model(noise, keras.layers.Reshape((8, 8, 1))(keras.layers.Dense(64, activation="sigmoid")(noise)))
    with pytest.raises(ConfigError, match="dict with 'score' but no 'logit'"):
        config = {key: value for key, value in tiny_config(tmp_path).items() if key not in ("arch", "arch_options")}
        ganframe.train(config, generator=generator, discriminator=discriminator, progress=False)
