"""Built-in adversarial losses and penalties against closed forms computed by hand, and in short real runs."""

from __future__ import annotations

import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import ganframe
from ganframe import AdversarialLoss, ConfigError, DataSpec, load_plugins
from ganframe.testing import check_loss
from tinyrun import tiny_config

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
        ("lsgan", {"label_smoothing": 0.1}, "label_smoothing"),
        ("gradient_penalty", {"weight": 0.0}, "weight"),
        ("gradient_penalty", {"lambda": 10.0}, "lambda"),
        ("r1", {"gamma": -1.0}, "gamma"),
        ("r2", {"weight": 10.0}, "weight"),
    ],
)
def test_bad_options(registry, name, options, field):
    with pytest.raises(ConfigError) as error:
        registry.build("loss", name, options, SPEC)
    assert f"loss '{name}'" in str(error.value) and field in str(error.value)


# -- least squares, hinge, Wasserstein ------------------------------------------------------------------
# REAL = [2, -1], FAKE = [0.5, 3], by hand:
#   lsgan  D: 1/2 mean((2-1)^2, (-1-1)^2) + 1/2 mean(0.5^2, 3^2) = 1/2 * 2.5 + 1/2 * 4.625 = 3.5625
#          G: 1/2 mean((0.5-1)^2, (3-1)^2) = 1/2 * 2.125 = 1.0625
#   hinge  D: mean(relu(1-2), relu(1+1)) + mean(relu(1+0.5), relu(1+3)) = 1 + 2.75 = 3.75
#   wasserstein D: mean(FAKE) - mean(REAL) = 1.75 - 0.5 = 1.25
#   hinge and wasserstein G: -mean(FAKE) = -1.75


@pytest.mark.parametrize(
    ("name", "d_expected", "g_expected"),
    [("lsgan", 3.5625, 1.0625), ("hinge", 3.75, -1.75), ("wasserstein", 1.25, -1.75)],
)
def test_raw_output_losses_on_chosen_logits(registry, name, d_expected, g_expected):
    loss = registry.build("loss", name, {}, SPEC)
    assert value(loss.discriminator_loss(REAL, FAKE)) == pytest.approx(d_expected, rel=1e-6)
    assert value(loss.generator_loss(FAKE)) == pytest.approx(g_expected, rel=1e-6)


def test_optima_of_the_raw_output_losses(registry):
    lsgan, hinge = (registry.build("loss", name, {}, SPEC) for name in ("lsgan", "hinge"))
    ones, twos = np.ones((3, 1), np.float32), np.full((3, 1), 2.0, np.float32)
    assert value(lsgan.discriminator_loss(ones, 0 * ones)) == 0.0  # D hits its targets b = 1, a = 0
    assert value(lsgan.generator_loss(ones)) == 0.0  # G's target c = 1
    assert value(hinge.discriminator_loss(twos, -twos)) == 0.0  # beyond the margins: nothing to push


def test_hinge_gradient_stops_beyond_the_margin(registry):
    hinge = registry.build("loss", "hinge", {}, SPEC)
    real = tf.Variable(REAL)
    with tf.GradientTape() as tape:
        d_loss = hinge.discriminator_loss(real, FAKE)
    # d/dr mean(relu(1 - r)) = -1/N where r < 1, else 0: the real logit 2 is already past the margin.
    np.testing.assert_allclose(tape.gradient(d_loss, real).numpy(), [[0.0], [-0.5]])


# -- penalties -----------------------------------------------------------------------------------------
# A linear critic f(x) = w.x with w = 3/8 everywhere on 8x8x1: ||w|| = sqrt(64 * 9/64) = 3, so
#   gradient_penalty = lambda (||w|| - 1)^2 = 10 * 4 = 40, whatever the interpolation weights;
#   r1 = r2 = gamma / 2 * ||w||^2 = 10 / 2 * 9 = 45 (the gamma / 2 convention of Mescheder et al. 2018).
W = np.full((8, 8, 1), 3.0 / 8.0, np.float32)


def linear_critic(x):
    return keras.ops.sum(x * W, axis=(1, 2, 3))[:, None]  # one output per image, like D


def quadratic_critic(x):
    """f(x) = 1/2 ||x||^2, whose input gradient is x itself."""
    return 0.5 * keras.ops.sum(keras.ops.square(x), axis=(1, 2, 3))[:, None]


def images(seed: int, n: int = 6) -> np.ndarray:
    return np.random.default_rng(seed).uniform(size=(n, 8, 8, 1)).astype(np.float32)


def norms(x: np.ndarray) -> np.ndarray:
    return np.sqrt(np.sum(np.asarray(x, np.float64) ** 2, axis=(1, 2, 3)))


def test_gradient_penalty_of_a_linear_critic(registry):
    penalty = registry.build("loss", "gradient_penalty", {}, SPEC)
    assert penalty.applies_to == "discriminator"
    for seed in range(3):  # fresh interpolation weights on every call: the value cannot depend on them
        assert value(penalty(linear_critic, images(seed), images(seed + 10))) == pytest.approx(40.0, rel=1e-6)
    heavier = registry.build("loss", "gradient_penalty", {"weight": 2.5}, SPEC)
    assert value(heavier(linear_critic, images(0), images(1))) == pytest.approx(10.0, rel=1e-6)


def test_gradient_penalty_interpolates_per_sample(registry):
    penalty = registry.build("loss", "gradient_penalty", {}, SPEC)
    real, fake = images(0), images(1)
    # Replay the weights the penalty is about to draw: the same seed state gives the same eps.
    replay = keras.random.SeedGenerator(0)
    replay.state.assign(penalty.seed_generator.state.value)
    eps = np.asarray(keras.random.uniform((6, 1, 1, 1), seed=replay), np.float64)
    assert 0.0 <= eps.min() and eps.max() <= 1.0 and len(np.unique(eps)) == 6  # one weight per sample
    mixed = eps * real + (1 - eps) * fake  # grad of the quadratic critic at x_hat is x_hat
    expected = 10.0 * np.mean((norms(mixed) - 1.0) ** 2)
    assert value(penalty(quadratic_critic, real, fake)) == pytest.approx(expected, rel=1e-5)
    # The next call draws new weights.
    assert value(penalty(quadratic_critic, real, fake)) != pytest.approx(expected, rel=1e-5)


def test_gradient_penalty_weights_follow_the_run_seed(registry):
    def first_value() -> float:
        keras.utils.set_random_seed(7)  # what a run does before it builds its components
        penalty = registry.build("loss", "gradient_penalty", {}, SPEC)
        return value(penalty(quadratic_critic, images(0), images(1)))

    assert first_value() == first_value()


def test_gradient_penalty_stays_finite_where_the_input_gradient_vanishes(registry):
    penalty = registry.build("loss", "gradient_penalty", {}, SPEC)
    scale = tf.Variable(0.0)  # f(x) = scale * sum(x): zero input gradient at scale = 0
    with tf.GradientTape() as tape:
        gp = penalty(lambda x: scale * tf.reduce_sum(x, axis=(1, 2, 3))[:, None], images(0), images(1))
    assert value(gp) == pytest.approx(10.0)  # 10 * (0 - 1)^2
    assert np.isfinite(tape.gradient(gp, scale).numpy())


@pytest.mark.parametrize(("name", "on_real"), [("r1", True), ("r2", False)])
def test_zero_centred_penalties(registry, name, on_real):
    penalty = registry.build("loss", name, {}, SPEC)
    assert penalty.applies_to == "discriminator"
    real, fake = images(0), images(1)
    assert value(penalty(linear_critic, real, fake)) == pytest.approx(45.0, rel=1e-6)
    # The quadratic critic's input gradient is the image: gamma / 2 * mean ||x||^2 over the chosen side only.
    seen = real if on_real else fake
    small = registry.build("loss", name, {"gamma": 0.2}, SPEC)
    expected = 0.1 * np.mean(norms(seen) ** 2)
    assert value(small(quadratic_critic, real, fake)) == pytest.approx(expected, rel=1e-5)


def relativistic_update(network: str, real: np.ndarray, fake: np.ndarray) -> ganframe.Update:
    return ganframe.Update(network=network, real=None, fake=None, real_logits=tf.convert_to_tensor(real),
                           fake_logits=tf.convert_to_tensor(fake), labels=None, fake_labels=None, critic=None,
                           step=tf.constant(0, tf.int64))


#: The relativistic losses' f1 (on outputs that should read as more real) and f2, as the paper writes them.
RELATIVISTIC_FORMS = {
    "standard": (lambda y: -np.log(1 / (1 + np.exp(-y))), lambda y: -np.log(1 - 1 / (1 + np.exp(-y)))),
    "least_squares": (lambda y: (y - 1) ** 2, lambda y: (y + 1) ** 2),
    "hinge": (lambda y: np.maximum(0, 1 - y), lambda y: np.maximum(0, 1 + y)),
}


@pytest.mark.parametrize("form", list(RELATIVISTIC_FORMS))
def test_relativistic_losses_on_chosen_logits(registry, form):
    """RaSGAN, RaLSGAN, RaHinge (Jolicoeur-Martineau 2019): D~(x_r) = C(x_r) - E C(x_f), D~(x_f) = C(x_f) - E C(x_r);
    D minimises E f1(D~(x_r)) + E f2(D~(x_f)), G E f1(D~(x_f)) + E f2(D~(x_r))."""
    loss = registry.build("loss", "relativistic", {"form": form}, SPEC)
    f1, f2 = RELATIVISTIC_FORMS[form]
    real, fake = REAL.astype(np.float64), FAKE.astype(np.float64)
    real_tilde, fake_tilde = real - fake.mean(), fake - real.mean()
    d_expected = f1(real_tilde).mean() + f2(fake_tilde).mean()
    g_expected = f1(fake_tilde).mean() + f2(real_tilde).mean()
    assert loss.generator_sees_real
    assert value(loss.update_loss(relativistic_update("discriminator", REAL, FAKE))) == pytest.approx(d_expected, rel=1e-6)
    assert value(loss.update_loss(relativistic_update("generator", REAL, FAKE))) == pytest.approx(g_expected, rel=1e-6)


def test_relativistic_generator_loss_pulls_real_scores_down(registry):
    """Unlike any loss on fakes alone, RaSGAN gives G a gradient through D's outputs on real images."""
    loss = registry.build("loss", "relativistic", {}, SPEC)
    real = tf.constant(REAL)
    with tf.GradientTape() as tape:
        tape.watch(real)
        g_loss = loss.update_loss(relativistic_update("generator", real, FAKE))
    assert (np.asarray(tape.gradient(g_loss, real)) > 0).all()  # lowering a real score lowers G's loss


# -- the contract and real training ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "options"),
    [("nonsaturating", {"label_smoothing": 0.1}), ("minimax", {}), ("lsgan", {}), ("hinge", {}),
     ("wasserstein", {}), ("gradient_penalty", {"weight": 1.0}), ("r1", {}), ("r2", {}),
     ("relativistic", {}), ("relativistic", {"form": "least_squares"}), ("relativistic", {"form": "hinge"})],
)
def test_conformance(registry, name, options):
    check_loss(name, options, registry=registry, spec=SPEC)


class Snapshot(keras.callbacks.Callback):
    """The weights of both networks when training starts, to show that training moved them."""

    def on_train_begin(self, logs=None):
        self.before = {net: [w.copy() for w in getattr(self.model, net).get_weights()]
                       for net in ("generator", "discriminator")}


def train_and_watch(tmp_path, **changes):
    """A tiny run of ``tiny_config`` plus ``changes``: finite losses, no skipped update, both networks moved."""
    snapshots: list[Snapshot] = []

    def snapshot(context, options) -> Snapshot:
        snapshots.append(Snapshot())
        return snapshots[-1]

    class Watch:
        @staticmethod
        @ganframe.hookimpl
        def ganframe_register_callbacks(register):
            register("snapshot", snapshot, "The weights when training starts.")

    config = tiny_config(tmp_path, steps=4, **changes)
    config["callbacks"] = {**config["callbacks"], "snapshot": {}}
    run = ganframe.train(config, registry=load_plugins(extra=[("watch", Watch)]), progress=False)
    for key in ("d_loss", "g_loss"):
        assert np.isfinite(run.history.history[key]).all(), (key, run.history.history[key])
    assert run.gan.skipped == {"discriminator": 0, "generator": 0}
    for network, before in snapshots[-1].before.items():
        after = getattr(run.gan, network).get_weights()
        assert any(not np.array_equal(a, b) for a, b in zip(after, before)), f"the {network} did not change"
    return run


@pytest.mark.parametrize("name", ["lsgan", "hinge", "relativistic"])
def test_trains_with(tmp_path, name):
    train_and_watch(tmp_path, loss=name)


def test_wgan_gp_trains_with_five_critic_steps(tmp_path):  # wasserstein's run: it is only used with a penalty
    run = train_and_watch(tmp_path, loss="wasserstein", penalties={"gradient_penalty": {}}, n_critic=5)
    assert int(run.gan.d_optimizer.iterations.numpy()) == 5 * 4


def test_wgan_gp_compiles_with_xla(tmp_path):
    run = train_and_watch(tmp_path, loss="wasserstein", penalties={"gradient_penalty": {}}, jit_compile=True)
    assert run.gan.jit_compile



@pytest.mark.backends
def test_wgan_gp_resumes_exactly_with_the_penalty_s_own_random_state(tmp_path):
    """The penalty draws eps from a seed generator of its own: a checkpoint must carry it, or a
    resumed run mixes real and fake images with other weights than an uninterrupted one."""
    config = {"steps": 8, "jit_compile": True, "loss": "wasserstein", "n_critic": 2,
              "penalties": {"gradient_penalty": {}}, "d_optimizer": {"beta_1": 0.0, "beta_2": 0.9}}
    whole = ganframe.train(tiny_config(tmp_path / "whole", **config), progress=False)
    ganframe.train(tiny_config(tmp_path / "split", **{**config, "steps": 4}), progress=False)
    resumed = ganframe.train({"steps": 8}, resume=tmp_path / "split" / "run", progress=False)
    assert resumed.step == whole.step == 8
    for network in ("generator", "discriminator"):
        for a, b in zip(getattr(whole.gan, network).variables, getattr(resumed.gan, network).variables):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-6, err_msg=a.path)
