"""Mixed precision (``precision``): correctness on CPU only (16-bit arithmetic is no faster here).

The networks compute in float16 or bfloat16 on float32 weights; losses, metrics and samples
stay float32; float16 scales each loss dynamically, and an overflow it causes is skipped
without counting as divergence; the scales travel in checkpoints.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from typer.testing import CliRunner

import ganframe
from ganframe import RunConfig, get_registry
from ganframe.checkpoints import state_arrays
from ganframe.cli import app
from ganframe.run import build_gan
from tinyrun import SPEC, TINY, tiny_config


class _FirstWeights(keras.callbacks.Callback):
    """Keeps both networks' weights as training begins."""

    def on_train_begin(self, logs=None):
        self.weights = {net.name: net.get_weights() for net in (self.model.generator, self.model.discriminator)}


def _float_dtypes(variables) -> set[str]:
    return {str(v.dtype) for v in variables if "int" not in str(v.dtype)}


@pytest.mark.backends
@pytest.mark.parametrize("precision, compute", [("mixed_float16", "float16"), ("mixed_bfloat16", "bfloat16")])
def test_a_mixed_precision_run_trains_in_16_bits_on_float32_weights(tmp_path, precision, compute):
    first = _FirstWeights()
    run = ganframe.train(tiny_config(tmp_path, precision=precision), callbacks=[first], progress=False)
    gan = run.gan

    assert keras.config.dtype_policy().name == "float32"  # the policy did not leak out of the run
    assert gan.generator.compute_dtype == gan.discriminator.compute_dtype == compute
    for network in (gan.generator, gan.discriminator):
        assert any(not np.array_equal(before, after)
                   for before, after in zip(first.weights[network.name], network.get_weights())), network.name
        assert _float_dtypes(network.variables) == {"float32"}
    assert _float_dtypes(gan.d_optimizer.variables + gan.g_optimizer.variables) == {"float32"}
    assert all(np.isfinite(values).all() for values in run.history.history.values())
    assert gan.skipped == {"discriminator": 0, "generator": 0}

    images = run.generate(5, seed=1)
    assert images.dtype == np.float32 and images.shape == (5, 8, 8, 1)
    assert images.min() >= 0 and images.max() <= 1  # the data's range (sigmoid output)
    scaled = {name for name in gan.skip_state if name.endswith("loss_scale")}
    if compute == "float16":  # six finite updates per network at the starting scale
        assert scaled == {"d_loss_scale", "g_loss_scale"}
        assert [int(gan.skip_state[f"{net}_scale_streak"].numpy()) for net in "dg"] == [6, 6]
    else:
        assert not scaled  # bfloat16 has float32's range: nothing to scale


def _fit(gan, images: np.ndarray, steps: int) -> None:
    gan.fit(tf.data.Dataset.from_tensors(images).repeat(), epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)


@pytest.mark.backends
def test_float16_overflow_lowers_the_loss_scale_and_only_a_non_finite_loss_counts_as_divergence():
    config = RunConfig(arch="dense", arch_options=TINY, data="digits", precision="mixed_float16", jit_compile=False)
    keras.utils.set_random_seed(0)
    gan = build_gan(config, SPEC, get_registry())
    scale = {net: gan.skip_state[f"{net}_loss_scale"] for net in "dg"}
    images = np.random.default_rng(0).uniform(size=(32, 8, 8, 1)).astype("float32")
    d_before, g_before = gan.discriminator.get_weights(), gan.generator.get_weights()

    for variable in scale.values():  # gradients × 2^40 overflow float16: both updates are skipped
        variable.assign(2.0**40)
    _fit(gan, images, 2)
    assert gan.global_step == 2 and gan.skipped == {"discriminator": 0, "generator": 0}  # the scale's search
    assert [float(scale[net].numpy()) for net in "dg"] == [2.0**38, 2.0**38]
    for before, after in ((d_before, gan.discriminator.get_weights()), (g_before, gan.generator.get_weights())):
        for old, new in zip(before, after):
            np.testing.assert_array_equal(old, new)

    for variable in scale.values():
        variable.assign(2.0**15)
    _fit(gan, np.full_like(images, np.nan), 1)  # D's loss is NaN: divergence; G's update is fine
    assert gan.skipped == {"discriminator": 1, "generator": 0}
    assert float(scale["d"].numpy()) == 2.0**14 and float(scale["g"].numpy()) == 2.0**15
    assert any(not np.array_equal(old, new) for old, new in zip(g_before, gan.generator.get_weights()))


@pytest.mark.backends
def test_a_float16_run_resumes_exactly_and_keeps_its_precision(tmp_path):
    split = tiny_config(tmp_path, precision="mixed_float16", steps=3, out=str(tmp_path / "split"))
    ganframe.train(split, progress=False)
    resumed = ganframe.train({"steps": 6}, resume=tmp_path / "split", progress=False)
    whole = ganframe.train(tiny_config(tmp_path, precision="mixed_float16", out=str(tmp_path / "whole")), progress=False)

    assert resumed.step == whole.step == 6
    ours, theirs = state_arrays(resumed.gan), state_arrays(whole.gan)
    assert sorted(ours) == sorted(theirs)
    for key in theirs:  # weights, optimizer slots, and the guard group with both loss scales
        np.testing.assert_array_equal(ours[key], theirs[key], err_msg=key)
    np.testing.assert_array_equal(resumed.generate(3, seed=2), whole.generate(3, seed=2))

    with pytest.raises(ganframe.ConfigError, match=r"changing precision \('mixed_float16' -> 'float32'\)"):
        ganframe.train({"precision": "float32"}, resume=tmp_path / "split", progress=False)


def test_precision_is_a_cli_flag_and_a_wrong_one_is_named():
    result = CliRunner().invoke(app, ["train", "--data", "digits", "--precision", "half"])
    assert result.exit_code == 2
    assert "'precision': got 'half'; input should be 'float32', 'mixed_float16' or 'mixed_bfloat16'" in result.stderr
    assert "--precision" in CliRunner().invoke(app, ["train", "--help"]).stdout
    assert RunConfig().precision == "float32"
