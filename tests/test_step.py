"""The engine's train step against the same steps written by hand with ``tf.GradientTape``.

Both run on the same networks, optimizers and seed generator, from the same state: the engine
first, then, with every variable put back, the hand-written steps. Everything random comes
from those seed generators (the engine's noise, the dropout layers' masks), drawn in the same
order, so the two must agree on every variable of both networks (BatchNorm statistics and
dropout seed states included), both optimizers' state (iterations and slots) and the
reported metrics. Planted faults (``MUTANTS``) show that the comparison can fail.
"""

from __future__ import annotations

from typing import Any, Callable

import keras
import numpy as np
import pytest
import tensorflow as tf

import ganframe
from ganframe import RunConfig, get_registry
from ganframe.run import build_gan
from tinyrun import SPEC, TINY, assert_same_state, training_state, training_variables

#: The dense GAN with dropout: its G has BatchNorm, so both training-mode sources of randomness
#: and state are in the step.
ARCH = {**TINY, "dropout": 0.3}
BATCH = 16

#: Differences between the engine's and the hand-written steps: the same float32 terms summed in an
#: order of their own (XLA fuses differently; Keras's loss ops are not tf.nn's). Measured after 3 steps,
#: on two data seeds: at most 1.2e-7 (BatchNorm's moving variance) with SGD on both paths and with Adam
#: under XLA; 5.3e-7 with Adam without XLA, in G's biases before BatchNorm, whose gradient is rounding
#: noise that Adam scales up to about lr·|g|/ε. Metrics: at most 1.2e-7. 1e-5 is 20 times the largest;
#: the planted faults move something by 3e-5 (Adam, D's loss doubled, in D's weights) to 0.02 and more
#: (SGD's weights, Adam's slots, the metrics).
TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}

Mutant = Callable[[pytest.MonkeyPatch, ganframe.GAN], None]


def build(optimizer: dict[str, Any], *, n_critic: int = 1, jit: bool = False, loss: str = "nonsaturating") -> ganframe.GAN:
    config = RunConfig(arch="dense", arch_options=ARCH, data="digits", seed=5, n_critic=n_critic, jit_compile=jit,
                       d_optimizer=optimizer, g_optimizer=optimizer, loss=loss)
    return build_gan(config, SPEC, get_registry())


#: Plain SGD, at a learning rate where a loss or gradient off by a factor moves weights by 1e-3 and more.
SGD = {"name": "sgd", "learning_rate": 0.1}
#: The default optimizer: its first update is about lr·sign(g), so it needs several steps and
#: its slots compared to show a wrong scale.
ADAM = {"name": "adam", "learning_rate": 2e-4, "beta_1": 0.5}


def relativistic(more_real: Any, less_real: Any) -> Any:
    """RaSGAN's loss of relativistic outputs: -log sigmoid on those that should read more real, -log(1 - sigmoid) on the rest."""
    return tf.reduce_mean(tf.nn.softplus(-more_real)) + tf.reduce_mean(tf.nn.softplus(less_real))


def handwritten_step(generator: keras.Model, discriminator: keras.Model, real: Any, seed_generator: Any,
                     d_opt: keras.optimizers.Optimizer, g_opt: keras.optimizers.Optimizer, latent_dim: int,
                     n_critic: int, loss: str = "nonsaturating") -> dict[str, Any]:
    """One GAN step by hand: ``n_critic`` D updates, update ``i`` on real slice ``i`` and fresh noise, then G's.

    ``loss`` "relativistic" is RaSGAN: G's update also runs D on the last slice of real images.
    """
    batch = real.shape[0] // n_critic
    for i in range(n_critic):
        z = keras.random.normal((batch, latent_dim), seed=seed_generator)
        with tf.GradientTape() as tape:
            fake = generator(z, training=True)
            real_logits = discriminator(real[i * batch:(i + 1) * batch], training=True)
            fake_logits = discriminator(fake, training=True)
            if loss == "relativistic":
                d_loss = relativistic(real_logits - tf.reduce_mean(fake_logits), fake_logits - tf.reduce_mean(real_logits))
            else:
                d_loss = tf.reduce_mean(tf.nn.softplus(-real_logits)) + tf.reduce_mean(tf.nn.softplus(fake_logits))
        grads = tape.gradient(d_loss, discriminator.trainable_variables)
        d_opt.apply_gradients(zip(grads, discriminator.trainable_variables))

    z = keras.random.normal((batch, latent_dim), seed=seed_generator)
    with tf.GradientTape() as tape:
        fake = generator(z, training=True)
        if loss == "relativistic":
            real_g = discriminator(real[(n_critic - 1) * batch:], training=True)
            fake_g = discriminator(fake, training=True)
            g_loss = relativistic(fake_g - tf.reduce_mean(real_g), real_g - tf.reduce_mean(fake_g))
        else:
            g_loss = tf.reduce_mean(tf.nn.softplus(-discriminator(fake, training=True)))
    grads = tape.gradient(g_loss, generator.trainable_variables)
    g_opt.apply_gradients(zip(grads, generator.trainable_variables))
    return {"d_loss": d_loss, "g_loss": g_loss, "d_real": tf.reduce_mean(real_logits),
            "d_fake": tf.reduce_mean(fake_logits)}


def engine_steps(gan: ganframe.GAN, batches: np.ndarray) -> list[dict[str, float]]:
    """One ``fit`` per batch, so each step's metrics are its own (``fit`` starts their running means afresh)."""
    metrics = []
    for real in batches:
        history = gan.fit(tf.data.Dataset.from_tensors(real), epochs=1, steps_per_epoch=1, verbose=0, shuffle=False)
        metrics.append({name: values[0] for name, values in history.history.items()})
    return metrics


def handwritten_steps(gan: ganframe.GAN, batches: np.ndarray, loss: str) -> list[dict[str, float]]:
    """The hand-written step once per batch, compiled by XLA when the GAN is."""
    step = tf.function(handwritten_step, jit_compile=True) if gan.jit_compile else handwritten_step
    return [
        {name: float(value) for name, value in step(gan.generator, gan.discriminator, tf.constant(real),
                                                      gan.seed_generator, gan.d_optimizer, gan.g_optimizer,
                                                      gan.latent_dim, gan.n_critic, loss).items()}
        for real in batches
    ]


def compare_with_handwritten(gan: ganframe.GAN, batches: np.ndarray, mutant: Mutant | None = None,
                             loss: str = "nonsaturating") -> None:
    """The engine's steps (with ``mutant`` planted), then the hand-written ones from the same start: assert they agree."""
    variables = training_variables(gan)
    start = training_state(gan)
    with pytest.MonkeyPatch.context() as patch:
        if mutant is not None:
            mutant(patch, gan)
        ours = engine_steps(gan, batches)
    after_engine = training_state(gan)
    for key, value in start.items():
        variables[key].assign(value)
    theirs = handwritten_steps(gan, batches, loss)
    assert_same_state(after_engine, training_state(gan), **TOLERANCE)
    for step, (our, their) in enumerate(zip(ours, theirs, strict=True)):
        assert_same_state({f"step {step} {k}": v for k, v in our.items()},
                          {f"step {step} {k}": v for k, v in their.items()}, **TOLERANCE)


def real_batches(steps: int, n_critic: int, seed: int = 0) -> np.ndarray:
    """``steps`` batches of ``n_critic`` different slices of random images."""
    return np.random.default_rng(seed).uniform(size=(steps, n_critic * BATCH, *SPEC.shape)).astype("float32")


#: XLA compiles the step traced as without it, n_critic's slicing included, so it runs n_critic = 1 only
#: (its compile takes 40 s on 2 busy cores; with n_critic = 2, 90 s).
@pytest.mark.parametrize(("n_critic", "jit"), [(1, False), (2, False), (1, True)],
                         ids=["graph", "graph-n_critic2", "xla"])
def test_sgd_steps_match_handwritten_steps(n_critic, jit):
    gan = build(SGD, n_critic=n_critic, jit=jit)
    compare_with_handwritten(gan, real_batches(3, n_critic))
    assert gan.global_step == 3 and int(gan.d_optimizer.iterations.numpy()) == 3 * n_critic


@pytest.mark.parametrize(("n_critic", "jit"), [(2, False), (1, True)], ids=["graph-n_critic2", "xla"])
def test_adam_steps_match_handwritten_steps(n_critic, jit):
    gan = build(ADAM, n_critic=n_critic, jit=jit)
    compare_with_handwritten(gan, real_batches(3, n_critic, seed=1))


def test_relativistic_steps_match_handwritten_steps():
    """RaSGAN: D's and G's losses read D on both real and fake images, G's on the last critic slice."""
    gan = build(SGD, n_critic=2, loss="relativistic")
    compare_with_handwritten(gan, real_batches(3, 2, seed=2), loss="relativistic")


def double_the_d_loss(patch: pytest.MonkeyPatch, gan: ganframe.GAN) -> None:
    """D's loss off by a factor of 2 (a sum for a mean, a term counted twice)."""
    loss = gan.adversarial_loss.discriminator_loss
    patch.setattr(gan.adversarial_loss, "discriminator_loss", lambda real, fake: 2.0 * loss(real, fake))


def flip_the_d_gradients(patch: pytest.MonkeyPatch, gan: ganframe.GAN) -> None:
    """D climbs its loss (a sign lost in a loss or a penalty)."""
    apply = gan.d_optimizer.apply_gradients
    patch.setattr(gan.d_optimizer, "apply_gradients", lambda pairs: apply([(-grad, var) for grad, var in pairs]))


def skip_the_d_updates(patch: pytest.MonkeyPatch, gan: ganframe.GAN) -> None:
    """D keeps its weights; its step count still advances, as a guarded skip's does."""
    patch.setattr(gan.d_optimizer, "apply_gradients", lambda pairs: gan.d_optimizer.iterations.assign_add(1))


def reuse_the_first_real_slice(patch: pytest.MonkeyPatch, gan: ganframe.GAN) -> None:
    """Every critic update of a step sees real slice 0."""
    unpack = gan._unpack

    def first_slice_only(data: Any) -> tuple[Any, ...]:
        examples, *rest = unpack(data)
        real = examples["image"]
        batch = real.shape[0] // gan.n_critic
        return ({**examples, "image": keras.ops.tile(real[:batch], (gan.n_critic, 1, 1, 1))}, *rest)

    patch.setattr(gan, "_unpack", first_slice_only)


MUTANTS = {mutant.__name__: mutant for mutant in
           (double_the_d_loss, flip_the_d_gradients, skip_the_d_updates, reuse_the_first_real_slice)}


#: Every fault with SGD; with Adam the doubled loss, which Adam's update almost ignores (about lr·sign(g)):
#: the comparison must see it in the slots and the reported loss.
PLANTED = [pytest.param(mutant, SGD, id=f"{name}-sgd") for name, mutant in MUTANTS.items()] + [
    pytest.param(double_the_d_loss, ADAM, id="double_the_d_loss-adam")]


@pytest.mark.parametrize(("mutant", "optimizer"), PLANTED)
def test_a_planted_fault_fails_the_comparison(mutant, optimizer):
    """Each fault the comparison is there to catch, planted in the engine, fails it (n_critic = 2: slices differ)."""
    gan = build(optimizer, n_critic=2)
    with pytest.raises(AssertionError):
        compare_with_handwritten(gan, real_batches(3, 2), mutant)
