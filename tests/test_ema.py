"""Generator EMA: the recurrence, what samples and exports use, checkpoints and exact resume."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import ganframe
from ganframe import RunConfig, get_registry
from ganframe.checkpoints import read_checkpoint
from ganframe.run import build_gan
from tinyrun import SPEC, TINY, assert_same_state, tiny_config, training_state

DECAY = 0.9


def weights(variables) -> list[np.ndarray]:
    return [np.array(variable.numpy()) for variable in variables]


def assert_close(ours, theirs, tolerance: float = 0.0) -> None:
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=tolerance, atol=tolerance)


def test_the_average_follows_the_recurrence_inside_the_compiled_step():
    keras.utils.set_random_seed(0)
    config = RunConfig(arch="dense", arch_options=TINY, data="digits", ema=DECAY, jit_compile=True)
    gan = build_gan(config, SPEC, get_registry())
    real = tf.data.Dataset.from_tensors(np.random.default_rng(0).random((16, 8, 8, 1), np.float32)).repeat()
    expected = weights(gan.generator.trainable_variables)  # the average starts at G's initial weights
    assert_close(weights(gan.ema_weights), expected)
    for _ in range(2):  # by hand: ema = d * ema + (1 - d) * w after each G update
        gan.fit(real, epochs=1, steps_per_epoch=1, verbose=0, shuffle=False)
        now = weights(gan.generator.trainable_variables)
        expected = [DECAY * e + (1 - DECAY) * w for e, w in zip(expected, now)]
        assert_close(weights(gan.ema_weights), expected, 1e-6)
    assert all(not np.allclose(e, w) for e, w in zip(weights(gan.ema_weights), now) if e.ndim == 2)


@pytest.fixture(scope="module")
def ema_run(tmp_path_factory):
    return ganframe.train(tiny_config(tmp_path_factory.mktemp("ema"), ema=DECAY), progress=False)


def test_sampling_and_export_use_the_average_and_leave_g_alone(ema_run, tmp_path):
    gan = ema_run.gan
    own = weights(gan.generator.trainable_variables)
    images = ema_run.generate(5, seed=7)
    assert_close(weights(gan.generator.trainable_variables), own)  # bit for bit

    noise = np.random.default_rng(7).standard_normal((5, TINY["latent_dim"])).astype("float32")
    averaged = keras.models.clone_model(gan.generator)
    averaged.set_weights(gan.generator.get_weights())  # G's BatchNorm statistics ...
    for variable, average in zip(averaged.trainable_variables, gan.ema_weights):
        variable.assign(average)  # ... with the averaged weights
    np.testing.assert_allclose(images, averaged(noise, training=False), atol=1e-6)
    assert not np.allclose(images, gan.generator(noise, training=False), atol=1e-3)

    exported = keras.saving.load_model(ema_run.export(tmp_path / "g.keras"))
    np.testing.assert_allclose(exported(noise, training=False), images, atol=1e-6)
    assert_close(weights(gan.generator.trainable_variables), own)


def test_checkpoints_hold_the_average_and_load_run_restores_it(ema_run):
    _, arrays = read_checkpoint(sorted((ema_run.path / "checkpoints").glob("ckpt-*.npz"))[-1])
    stored = [arrays[key] for key in sorted(arrays) if key.startswith("ema/")]
    assert len(stored) == len(ema_run.gan.generator.trainable_variables)
    for array, variable in zip(stored, ema_run.gan.ema_weights):
        np.testing.assert_array_equal(array, variable.numpy())
    np.testing.assert_array_equal(ganframe.load_run(ema_run.path).generate(4, seed=2), ema_run.generate(4, seed=2))


def test_without_ema_nothing_changes(tmp_path):
    run = ganframe.train(tiny_config(tmp_path, steps=2), progress=False)
    assert run.gan.ema is None and run.gan.ema_weights == []
    _, arrays = read_checkpoint(sorted((run.path / "checkpoints").glob("ckpt-*.npz"))[-1])
    assert not any(key.startswith("ema/") for key in arrays)
    noise = np.random.default_rng(0).standard_normal((3, TINY["latent_dim"])).astype("float32")
    np.testing.assert_array_equal(run.generate(3, seed=0), run.generator(noise, training=False))


@pytest.mark.backends
def test_resume_continues_the_average_exactly(tmp_path):
    compiled = {"steps": 8, "jit_compile": True, "ema": DECAY}
    whole = ganframe.train(tiny_config(tmp_path / "whole", **compiled), progress=False)
    ganframe.train(tiny_config(tmp_path / "split", **{**compiled, "steps": 4}), progress=False)
    resumed = ganframe.train({"steps": 8}, resume=tmp_path / "split" / "run", progress=False)
    assert resumed.step == whole.step == 8
    # the EMA with everything else (networks, optimizers, seed, guard), by key: bit for bit, as resume
    # restores every variable and the same compiled step then runs on the same data
    assert_same_state(training_state(resumed.gan), training_state(whole.gan))


@pytest.mark.parametrize("decay", [0, 1, 1.5, -0.1])
def test_the_decay_must_lie_strictly_between_0_and_1(decay):
    with pytest.raises(ganframe.ConfigError, match="'ema'"):
        ganframe.resolve_config(None, {"ema": decay})
