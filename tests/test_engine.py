"""The adversarial step against a hand-written GradientTape step, reproducibility, resume, checkpoints."""

from __future__ import annotations

import csv

import keras
import numpy as np
import pytest
import tensorflow as tf

import ganframe
from ganframe import DataSpec, RunConfig, get_registry
from ganframe.run import build_gan
from tinyrun import SPEC, TINY, tiny_config

def handwritten_step(generator, discriminator, real, seed_generator, d_opt, g_opt, latent_dim):
    """One alternating step written by hand: D on real + fresh noise, then G on fresh noise."""
    batch = real.shape[0]

    z = keras.random.normal((batch, latent_dim), seed=seed_generator)
    with tf.GradientTape() as tape:
        fake = generator(z, training=True)
        real_logits = discriminator(real, training=True)
        fake_logits = discriminator(fake, training=True)
        d_loss = tf.reduce_mean(tf.nn.softplus(-real_logits)) + tf.reduce_mean(tf.nn.softplus(fake_logits))
    grads = tape.gradient(d_loss, discriminator.trainable_variables)
    d_opt.apply_gradients(zip(grads, discriminator.trainable_variables))

    z = keras.random.normal((batch, latent_dim), seed=seed_generator)
    with tf.GradientTape() as tape:
        g_loss = tf.reduce_mean(tf.nn.softplus(-discriminator(generator(z, training=True), training=True)))
    grads = tape.gradient(g_loss, generator.trainable_variables)
    g_opt.apply_gradients(zip(grads, generator.trainable_variables))


@pytest.mark.parametrize("jit", [True, False])
def test_step_matches_a_handwritten_gradient_tape_step(jit):
    registry = get_registry()
    keras.utils.set_random_seed(0)
    gan = build_gan(RunConfig(arch="dense", arch_options=TINY, data="digits", seed=5, jit_compile=jit), SPEC, registry)
    twin = registry.build("architecture", "dense", TINY, SPEC)
    twin.generator.set_weights(gan.generator.get_weights())
    twin.discriminator.set_weights(gan.discriminator.get_weights())
    before_g = [w.copy() for w in gan.generator.get_weights()]
    before_d = [w.copy() for w in gan.discriminator.get_weights()]

    real = np.random.default_rng(0).uniform(size=(16, 8, 8, 1)).astype("float32")
    gan.fit(tf.data.Dataset.from_tensors(real).repeat(), epochs=1, steps_per_epoch=1, verbose=0, shuffle=False)

    d_opt = keras.optimizers.Adam(2e-4, beta_1=0.5)
    g_opt = keras.optimizers.Adam(2e-4, beta_1=0.5)
    step = tf.function(handwritten_step, jit_compile=True) if jit else handwritten_step
    if jit:  # build the optimizer slots outside the compiled function, as the engine does
        d_opt.build(twin.discriminator.trainable_variables)
        g_opt.build(twin.generator.trainable_variables)
    seed_generator = keras.random.SeedGenerator(5)  # the engine's seed: same noise in the same order
    step(twin.generator, twin.discriminator, tf.constant(real), seed_generator, d_opt, g_opt, TINY["latent_dim"])

    for ours, theirs, before in ((gan.generator, twin.generator, before_g), (gan.discriminator, twin.discriminator, before_d)):
        for a, b, old in zip(ours.get_weights(), theirs.get_weights(), before):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        changed = [not np.array_equal(a, old) for a, old in zip(ours.get_weights(), before)]
        assert any(changed), f"{ours.name} did not change in one step"


def test_seeded_runs_are_reproducible(tmp_path):
    first = ganframe.train(tiny_config(tmp_path / "a"), progress=False)
    second = ganframe.train(tiny_config(tmp_path / "b"), progress=False)
    for a, b in zip(first.gan.generator.get_weights(), second.gan.generator.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(first.generate(8, seed=1), second.generate(8, seed=1))
    assert not np.array_equal(first.generate(8, seed=1), first.generate(8, seed=2))


def test_resume_continues_exactly_where_it_stopped(tmp_path):
    compiled = {"steps": 8, "jit_compile": True}  # the path production uses
    whole = ganframe.train(tiny_config(tmp_path / "whole", **compiled), progress=False)
    ganframe.train(tiny_config(tmp_path / "split", **{**compiled, "steps": 4}), progress=False)
    resumed = ganframe.train({"steps": 8}, resume=tmp_path / "split" / "run", progress=False)

    assert resumed.step == whole.step == 8
    for network in ("generator", "discriminator"):
        for a, b in zip(getattr(whole.gan, network).variables, getattr(resumed.gan, network).variables):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-6, err_msg=a.path)
    with open(tmp_path / "split" / "run" / "metrics.csv") as handle:
        steps = [int(row["step"]) for row in csv.DictReader(handle)]
    assert steps == [2, 4, 6, 8]


def test_load_run_generate_and_export(tmp_path):
    run = ganframe.train(tiny_config(tmp_path), progress=False)
    loaded = ganframe.load_run(run.path)
    assert loaded.step == 6
    np.testing.assert_allclose(loaded.generate(5, seed=7), run.generate(5, seed=7), atol=1e-6)
    images = loaded.generate(5, seed=7)
    assert images.shape == (5, 8, 8, 1) and images.min() >= 0 and images.max() <= 1

    path = loaded.export(tmp_path / "g.keras")
    generator = keras.saving.load_model(path)
    noise = np.random.default_rng(7).standard_normal((5, TINY["latent_dim"])).astype("float32")
    np.testing.assert_allclose(generator(noise, training=False), images, atol=1e-6)


def test_a_corrupted_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, capsys):
    run = ganframe.train(tiny_config(tmp_path), progress=False)
    checkpoints = sorted((run.path / "checkpoints").glob("ckpt-*.npz"))
    assert [p.name for p in checkpoints] == ["ckpt-000000003.npz", "ckpt-000000006.npz"]
    checkpoints[-1].write_bytes(checkpoints[-1].read_bytes()[:1000])  # truncated
    loaded = ganframe.load_run(run.path)
    assert loaded.step == 3
    assert "ckpt-000000006.npz" in capsys.readouterr().err


def test_architecture_and_data_ranges_must_match(tmp_path):
    config = tiny_config(tmp_path, arch_options={**TINY, "output_activation": "tanh"})
    with pytest.raises(ganframe.ConfigError, match=r"'dense' generates values in \[-1, 1\].*'digits' lies in \[0, 1\]"):
        ganframe.train(config, progress=False)
    assert not (tmp_path / "run").exists(), "a refused run must leave nothing behind"


def test_n_critic_takes_fresh_real_slices_and_counts_steps(tmp_path):
    run = ganframe.train(tiny_config(tmp_path, n_critic=3, steps=4), progress=False)
    assert run.step == 4
    assert int(run.gan.d_optimizer.iterations.numpy()) == 12


def test_existing_output_directory_is_refused_without_overwrite(tmp_path):
    ganframe.train(tiny_config(tmp_path, steps=2), progress=False)
    (tmp_path / "run" / "notes.txt").write_text("mine")
    with pytest.raises(ganframe.ConfigError, match="not empty.*--resume.*--overwrite"):
        ganframe.train(tiny_config(tmp_path, steps=2), progress=False)
    ganframe.train(tiny_config(tmp_path, steps=2), overwrite=True, progress=False)
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"


class ConstantPenalty(ganframe.Penalty):
    """Adds a known constant, so its presence in d_loss is visible."""

    def __call__(self, critic, real, fake):
        return keras.ops.convert_to_tensor(100.0)


class Blank(ganframe.Augmentation):
    """Replaces every image by zeros: D then cannot tell real from fake."""

    def __call__(self, images, seed):
        return images * 0.0  # (zero gradients for G, but gradients)


class ExtraComponents:
    @staticmethod
    @ganframe.hookimpl
    def ganframe_register_losses(register):
        register("constant", lambda spec, options: ConstantPenalty(), "Adds 100 to D's loss.")

    @staticmethod
    @ganframe.hookimpl
    def ganframe_register_augmentations(register):
        register("blank", lambda spec, options: Blank(), "Zeroes images before D.")


def test_input_gradients_of_a_linear_critic_is_its_weight_vector():
    w = np.arange(1.0, 65.0, dtype="float32").reshape(8, 8, 1) / 64.0
    critic = lambda x: keras.ops.sum(x * w, axis=(1, 2, 3))  # noqa: E731
    x = tf.constant(np.random.default_rng(0).normal(size=(4, 8, 8, 1)).astype("float32"))
    grads = ganframe.input_gradients(critic, x)
    np.testing.assert_allclose(grads, np.broadcast_to(w, (4, 8, 8, 1)), rtol=1e-6)
    r1 = keras.ops.mean(keras.ops.sum(grads**2, axis=(1, 2, 3)))  # R1 of a linear critic is ||w||^2
    np.testing.assert_allclose(r1, np.sum(w**2), rtol=1e-5)


def test_penalties_and_augmentations_from_a_plugin_reach_the_step(tmp_path):
    registry = ganframe.load_plugins(extra=[("extras", ExtraComponents)])
    config = tiny_config(tmp_path, steps=2, penalties={"constant": {}}, augmentations={"blank": {}})
    run = ganframe.train(config, registry=registry, progress=False)
    history = run.history.history
    assert history["d_loss"][0] > 100.0
    assert history["d_real"][0] == pytest.approx(history["d_fake"][0])

    misplaced = tiny_config(tmp_path / "b", steps=2, loss="constant")
    with pytest.raises(ganframe.ConfigError, match="'constant' is not an adversarial loss"):
        ganframe.train(misplaced, registry=registry, progress=False)


def test_a_frozen_network_is_refused_with_a_clear_message():
    registry = get_registry()
    networks = registry.build("architecture", "dense", TINY, SPEC)
    networks.discriminator.trainable = False  # the seed's habit; the engine owns variables itself
    gan = ganframe.GAN(networks, registry.build("loss", "nonsaturating", {}, SPEC))
    with pytest.raises(ganframe.ConfigError, match="discriminator has no trainable variables"):
        gan.compile(keras.optimizers.Adam(), keras.optimizers.Adam())


def test_steps_per_execution_and_a_time_budget(tmp_path):
    run = ganframe.train(tiny_config(tmp_path / "spe", steps=6, steps_per_execution=3), progress=False)
    assert run.step == 6
    with open(run.path / "metrics.csv") as handle:
        assert [int(row["step"]) for row in csv.DictReader(handle)] == [3, 6]  # callbacks see every 3rd step

    budget = ganframe.train(tiny_config(tmp_path / "time", steps=None, max_time=2), progress=False)
    assert 0 < budget.step < 100_000
    assert sorted(p.name for p in (budget.path / "checkpoints").iterdir())[-1] == f"ckpt-{budget.step:09d}.npz"
