"""The tiny run the engine, reliability and evaluation tests share: seconds on 2 CPU cores.

Importable from tests because pyproject's pytest settings put ``tests/`` on ``pythonpath``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

import ganframe
from ganframe import DataSpec, Networks

SPEC = DataSpec((8, 8, 1))  # scikit-learn's digits
#: Whether the test runs compile their step: on TensorFlow XLA costs seconds to compile a tiny model (the
#: compiled path has its own tests); on JAX, compiling takes about a second and its eager mode is the slow one.
COMPILE = os.environ.get("KERAS_BACKEND", "tensorflow") == "jax"
TINY = {"g_widths": [16, 32], "d_widths": [32, 16], "latent_dim": 8, "dropout": 0.0}

#: The run the data-parallel tests train over two devices and over one (test_distribute.py on TensorFlow,
#: test_distribute_jax.py on JAX): no dropout, and SGD keeps each update a plain multiple of the gradient,
#: so the two differ only by float rounding. Checkpoints every 5 steps; the tests add seed and strategy.
MIRRORED_RUN = {
    "arch": "dense", "arch_options": TINY, "data": "digits", "batch_size": 16, "n_critic": 2, "steps": 5,
    "d_optimizer": {"name": "sgd", "learning_rate": 0.05}, "g_optimizer": {"name": "sgd", "learning_rate": 0.05},
    "callbacks": {"samples": {"every": 0}, "checkpoint": {"every": 5}, "metrics": {"every": 5}},
}


def tiny_config(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    """A dense GAN a few layers wide on digits, 6 steps, written to ``tmp_path / "run"``."""
    config = {
        "arch": "dense",
        "arch_options": dict(TINY),
        "data": "digits",
        "batch_size": 32,
        "steps": 6,
        "seed": 3,
        "jit_compile": COMPILE,
        "out": str(tmp_path / "run"),
        "callbacks": {"samples": {"every": 0}, "checkpoint": {"every": 3}, "metrics": {"every": 2}},
    }
    config.update(changes)
    return config


#: The counter Keras appends to a repeated layer or optimizer name (dense_3, adam_1).
_NAME_COUNTER = re.compile(r"_\d+")


def build_translator(spec: DataSpec, options: Any) -> Networks:
    """A tiny image-conditioned GAN for paired data: G maps the condition (no noise) to an image, D sees
    the image beside its condition."""
    import keras

    condition = keras.Input(spec.condition_shape)
    x = keras.layers.Dense(16, activation="relu")(keras.layers.Flatten()(condition))
    generator = keras.Model(condition, keras.layers.Reshape(spec.shape)(keras.layers.Dense(spec.size, activation="sigmoid")(x)))
    image, seen = keras.Input(spec.shape), keras.Input(spec.condition_shape)
    y = keras.layers.Concatenate()([keras.layers.Flatten()(image), keras.layers.Flatten()(seen)])
    discriminator = keras.Model([image, seen], keras.layers.Dense(1)(keras.layers.Dense(16, activation="relu")(y)))
    return Networks(generator, discriminator, latent_dim=0, output_range=(0.0, 1.0), takes_condition=True)


def translator_registry(*extra: tuple[str, Any]) -> Any:
    """ganframe's registry plus an in-process plugin registering :func:`build_translator` as ``translator``
    (and the ``extra`` (name, plugin) pairs)."""
    class Translator:
        @staticmethod
        @ganframe.hookimpl
        def ganframe_register_architectures(register: Any) -> None:
            register("translator", build_translator, "A tiny image-conditioned GAN (tests).")

    return ganframe.load_plugins(extra=[("translator", Translator), *extra])


def translator_config(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    """:func:`tiny_config` for the ``translator``: digits paired with their masked copies, 2 steps."""
    return tiny_config(tmp_path, arch="translator", arch_options={}, pairs={"derive": "mask", "hole": 4}, steps=2,
                       penalties={"reconstruction": {}}, callbacks={"samples": {"every": 0}, "checkpoint": {"every": 2}},
                       **changes)


def training_variables(gan: Any) -> dict[str, Any]:
    """Every variable a training step moves, keyed ``<group>/<index> <path>`` with Keras's name counters dropped.

    Built from the GAN's public attributes, not from ``ganframe.checkpoints``, so a variable the
    checkpoints forget still shows up here; two GANs built alike, in one process or two, have the same keys.
    """
    groups = {
        "generator": gan.generator.variables,  # weights, BatchNorm statistics, dropout seed states
        "discriminator": gan.discriminator.variables,
        "d_optimizer": gan.d_optimizer.variables,  # iterations, learning rate, slots
        "g_optimizer": gan.g_optimizer.variables,
        "seed": [gan.seed_generator.state],
        "guard": [gan.skip_state[name] for name in sorted(gan.skip_state)],
        "ema": gan.ema_weights,
        "schedules": [gan.schedules[net].scale for net in sorted(gan.schedules)],  # learning-rate scales
    }
    return {f"{group}/{index:03d} {_NAME_COUNTER.sub('', variable.path)}": variable
            for group, variables in groups.items() for index, variable in enumerate(variables)}


def training_state(gan: Any) -> dict[str, np.ndarray]:
    """:func:`training_variables`' values, copied to the host."""
    return {key: np.array(variable.numpy()) for key, variable in training_variables(gan).items()}


def assert_same_state(actual: dict[str, Any], expected: dict[str, Any], rtol: float = 0.0, atol: float = 0.0) -> None:
    """The same keys, and each value within ``atol + rtol·|expected|``; raises AssertionError naming the key."""
    assert sorted(actual) == sorted(expected), "the states hold different variables"
    for key, value in expected.items():
        np.testing.assert_allclose(np.asarray(actual[key]), np.asarray(value), rtol=rtol, atol=atol, err_msg=key)


def read_events(run_dir: Path) -> Any:
    """Every event of the run's TensorBoard files, none sampled away, as TensorBoard loads them (an EventAccumulator)."""
    from tensorboard.backend.event_processing import plugin_event_accumulator

    events = plugin_event_accumulator.EventAccumulator(
        str(run_dir / "tensorboard"), size_guidance=plugin_event_accumulator.STORE_EVERYTHING_SIZE_GUIDANCE)
    events.Reload()
    return events


def curve(events: Any, tag: str) -> tuple[list[int], list[float]]:
    """A scalar tag's steps and values, after checking that TensorBoard's scalars dashboard claims it."""
    from tensorboard.util import tensor_util

    assert events.SummaryMetadata(tag).plugin_data.plugin_name == "scalars", tag
    points = events.Tensors(tag)
    return [point.step for point in points], [float(tensor_util.make_ndarray(point.tensor_proto)) for point in points]
