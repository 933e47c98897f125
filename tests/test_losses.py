"""Built-in adversarial losses against closed forms computed by hand with numpy."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from ganframe import AdversarialLoss, ConfigError, DataSpec, load_plugins

SPEC = DataSpec((8, 8, 1))
LOG2 = np.log(2.0)
REAL = np.array([[2.0], [-1.0]], np.float32)
FAKE = np.array([[0.5], [3.0]], np.float32)


def softplus(x: np.ndarray) -> np.ndarray:
    """log(1 + e^x), the naive way: fine for the moderate logits it is used with here."""
    return np.log(1.0 + np.exp(np.asarray(x, np.float64)))


@pytest.fixture(scope="module")
def registry():
    return load_plugins()


@pytest.fixture(scope="module")
def nonsaturating(registry) -> AdversarialLoss:
    return registry.build("loss", "nonsaturating", {}, SPEC)


@pytest.fixture(scope="module")
def minimax(registry) -> AdversarialLoss:
    return registry.build("loss", "minimax", {}, SPEC)


def value(x) -> float:
    return float(np.asarray(x))


def test_module_imports_no_tensorflow():
    code = "import sys, ganframe.builtin.losses; sys.exit(bool({'tensorflow', 'keras'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_undecided_discriminator(nonsaturating, minimax):
    zeros = np.zeros((5, 1), np.float32)
    for loss in (nonsaturating, minimax):
        assert value(loss.discriminator_loss(zeros, zeros)) == pytest.approx(2 * LOG2)
    assert value(nonsaturating.generator_loss(zeros)) == pytest.approx(LOG2)
    assert value(minimax.generator_loss(zeros)) == pytest.approx(-LOG2)


def test_chosen_logits(nonsaturating, minimax):
    # BCE(real, 1) = -log sigmoid(real) = log(1 + e^-real); BCE(fake, 0) = log(1 + e^fake).
    d_expected = np.mean(np.log(1 + np.exp(-REAL))) + np.mean(np.log(1 + np.exp(FAKE)))
    for loss in (nonsaturating, minimax):
        assert value(loss.discriminator_loss(REAL, FAKE)) == pytest.approx(d_expected, rel=1e-6)
    assert value(nonsaturating.generator_loss(FAKE)) == pytest.approx(np.mean(softplus(-FAKE)), rel=1e-6)
    # minimax G minimises mean log(1 - sigmoid(fake)).
    sigmoid = 1 / (1 + np.exp(-FAKE.astype(np.float64)))
    assert value(minimax.generator_loss(FAKE)) == pytest.approx(np.mean(np.log(1 - sigmoid)), rel=1e-6)


def test_label_smoothing(registry):
    smoothed = registry.build("loss", "nonsaturating", {"label_smoothing": 0.1}, SPEC)
    real_bce = 0.9 * softplus(-REAL) + 0.1 * softplus(REAL)  # BCE with target 0.9
    expected = np.mean(real_bce) + np.mean(softplus(FAKE))  # fakes keep target 0 (one-sided)
    assert value(smoothed.discriminator_loss(REAL, FAKE)) == pytest.approx(expected, rel=1e-6)
    assert value(smoothed.generator_loss(FAKE)) == pytest.approx(np.mean(softplus(-FAKE)), rel=1e-6)


def test_stable_at_extreme_logits(nonsaturating, minimax):
    big = np.full((3, 1), 100.0, np.float32)
    # D certain and right: no loss. D certain and wrong: loss ~ |logit| per term.
    for loss in (nonsaturating, minimax):
        assert value(loss.discriminator_loss(big, -big)) == pytest.approx(0.0, abs=1e-6)
        assert value(loss.discriminator_loss(-big, big)) == pytest.approx(200.0)
    assert value(nonsaturating.generator_loss(-big)) == pytest.approx(100.0)
    assert value(nonsaturating.generator_loss(big)) == pytest.approx(0.0, abs=1e-6)
    assert value(minimax.generator_loss(big)) == pytest.approx(-100.0)
    assert value(minimax.generator_loss(-big)) == pytest.approx(0.0, abs=1e-6)


def test_generator_gradient_at_confident_discriminator(nonsaturating, minimax):
    import tensorflow as tf

    def gradient(loss: AdversarialLoss) -> np.ndarray:
        fake = tf.Variable(np.full((4, 1), -20.0, np.float32))  # D is sure these are fake
        with tf.GradientTape() as tape:
            g_loss = loss.generator_loss(fake)
        return tape.gradient(g_loss, fake).numpy()

    # d/dx -softplus(x) = -sigmoid(x) ~ -2e-9 / N: minimax saturates.
    assert np.abs(gradient(minimax)).max() < 1e-8
    # d/dx softplus(-x) = -sigmoid(-x) ~ -1 / N: G still learns.
    np.testing.assert_allclose(gradient(nonsaturating), -0.25, rtol=1e-6)


@pytest.mark.parametrize(
    ("name", "options", "field"),
    [
        ("nonsaturating", {"label_smoothing": 0.5}, "label_smoothing"),
        ("nonsaturating", {"label_smoothing": -0.1}, "label_smoothing"),
        ("nonsaturating", {"smoothing": 0.1}, "smoothing"),
        ("minimax", {"label_smoothing": 0.1}, "label_smoothing"),
    ],
)
def test_bad_options(registry, name, options, field):
    with pytest.raises(ConfigError) as error:
        registry.build("loss", name, options, SPEC)
    assert f"loss '{name}'" in str(error.value) and field in str(error.value)
