"""Tests of old-gan's ganframe components. Run them with `python -m pytest` after `pip install -e .`.

Each component goes through ganframe's conformance kit (`ganframe.testing`), which checks it
against the plugin contract the way a run uses it: options, output shapes and dtypes, a few real
training steps, a checkpoint round-trip, ... A failure names the component and what is wrong.
"""

import numpy as np
import pytest

import ganframe
from ganframe.testing import (
    check_architecture,
    check_dataset,
)

ENTRY_POINT = "old_gan"
COMPONENTS = {
    ("architecture", "old-gan-mlp"),
    ("dataset", "old-gan-shapes"),
}


@pytest.fixture
def ganframe_plugins():
    """What the kit's `ganframe_registry` fixture loads: ganframe's built-ins plus this package only."""
    return [ENTRY_POINT]


def test_the_plugin_registers_its_components(ganframe_registry):
    assert set(ganframe_registry.record(ENTRY_POINT).components) == COMPONENTS


def test_architecture_honours_the_contract(ganframe_registry):
    networks = check_architecture("old-gan-mlp", {"latent_dim": 4, "width": 8}, registry=ganframe_registry)
    assert networks.output_range == (0.0, 1.0)


def test_dataset_honours_the_contract(ganframe_registry):
    data = check_dataset("old-gan-shapes", {"count": 16}, registry=ganframe_registry)
    assert data.images.shape == (16, 8, 8, 1) and set(data.labels) <= {0, 1}


def test_a_short_training_run(ganframe_registry, tmp_path):
    config = {
        "arch": "old-gan-mlp",
        "data": "old-gan-shapes",
        "data_options": {"count": 256},
        "callbacks": {"samples": {"every": 5}, "checkpoint": {"every": 5}, "metrics": {"every": 5}},
        "steps": 10,
        "batch_size": 16,
        "jit_compile": False,
        "out": tmp_path / "run",
    }
    run = ganframe.train(config, registry=ganframe_registry, progress=False)
    assert run.step == 10
    assert sorted(p.name for p in (tmp_path / "run" / "samples").glob("*.png"))
    images = run.generate(4, seed=0)
    assert images.shape[0] == 4 and np.isfinite(images).all()


def test_the_shipped_config_learns_the_digits(ganframe_registry, tmp_path):
    """`ganframe train --config ganframe.toml` as shipped must learn, not only run: a classifier fitted on
    the real 8x8 digits finds most of the ten classes among its samples, which vary about as digits do.
    (A generator that collapsed makes one or two classes, with a pixel spread near 0.)"""
    from pathlib import Path

    from sklearn.datasets import load_digits
    from sklearn.svm import SVC

    config = ganframe.resolve_config(Path(__file__).parents[1] / "ganframe.toml",
                                     {"data": "digits", "out": str(tmp_path / "run")}, ganframe_registry)
    run = ganframe.train(config, registry=ganframe_registry, progress=False)

    digits = load_digits()
    real = digits.images / 16.0  # as ganframe's `digits` data set: 8x8 in [0, 1]
    judge = SVC().fit(real.reshape(len(real), -1), digits.target)
    samples = run.generate(1000, seed=1)
    shares = np.bincount(judge.predict(samples.reshape(len(samples), -1)), minlength=10) / len(samples)
    assert (shares >= 0.02).sum() >= 8, f"the classes' shares of 1000 samples: {np.round(shares, 3)}"
    spread = samples.reshape(len(samples), -1).std(axis=0).mean() / real.reshape(len(real), -1).std(axis=0).mean()
    assert spread > 0.6, f"the samples' pixel spread is {spread:.2f} of the real digits'"
