"""Tests of old-plugin's ganframe components. Run them with `python -m pytest` after `pip install -e .`.

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
    check_loss,
    check_callback,
    check_augmentation,
    check_metric,
    check_feature_extractor,
)

ENTRY_POINT = "old_plugin"
COMPONENTS = {
    ("architecture", "old-plugin-mlp"),
    ("dataset", "old-plugin-shapes"),
    ("loss", "old-plugin-lsq"),
    ("callback", "old-plugin-log"),
    ("augmentation", "old-plugin-flip"),
    ("metric", "old-plugin-pixel-gap"),
    ("feature_extractor", "old-plugin-pool"),
}


@pytest.fixture
def ganframe_plugins():
    """What the kit's `ganframe_registry` fixture loads: ganframe's built-ins plus this package only."""
    return [ENTRY_POINT]


def test_the_plugin_registers_its_components(ganframe_registry):
    assert set(ganframe_registry.record(ENTRY_POINT).components) == COMPONENTS


def test_architecture_honours_the_contract(ganframe_registry):
    networks = check_architecture("old-plugin-mlp", {"latent_dim": 4, "width": 8}, registry=ganframe_registry)
    assert networks.output_range == (0.0, 1.0)


def test_dataset_honours_the_contract(ganframe_registry):
    data = check_dataset("old-plugin-shapes", {"count": 16}, registry=ganframe_registry)
    assert data.images.shape == (16, 8, 8, 1) and set(data.labels) <= {0, 1}


def test_loss_honours_the_contract_and_is_lowest_when_the_discriminator_is_right(ganframe_registry):
    loss = check_loss("old-plugin-lsq", registry=ganframe_registry)
    ones, zeros = np.ones((4, 1), np.float32), np.zeros((4, 1), np.float32)
    assert float(loss.discriminator_loss(ones, zeros)) == pytest.approx(0.0)
    assert float(loss.discriminator_loss(zeros, ones)) > 0.5
    assert float(loss.generator_loss(ones)) == pytest.approx(0.0)


def test_callback_honours_the_contract_and_logs_every_n_steps(ganframe_registry, tmp_path):
    check_callback("old-plugin-log", {"every": 2}, registry=ganframe_registry, steps=4, run_dir=tmp_path)
    lines = (tmp_path / "old_plugin.log").read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["step=2", "step=4"]
    assert all("d_loss=" in line and "g_loss=" in line for line in lines)


def test_augmentation_honours_the_contract(ganframe_registry):
    check_augmentation("old-plugin-flip", registry=ganframe_registry)


def test_metric_honours_the_contract_and_is_zero_for_identical_sets(ganframe_registry, tiny_image_data):
    metric = check_metric("old-plugin-pixel-gap", registry=ganframe_registry)
    images = tiny_image_data.images
    assert metric.compute(images, images.copy()) == {"mean_gap": 0.0, "std_gap": 0.0}


def test_feature_extractor_honours_the_contract(ganframe_registry, tiny_image_data):
    extract = check_feature_extractor("old-plugin-pool", {"grid": 2}, registry=ganframe_registry)
    assert extract(tiny_image_data.images).shape == (len(tiny_image_data), 2 * 2 * 1)


def test_a_short_training_run(ganframe_registry, tmp_path):
    config = {
        "arch": "old-plugin-mlp",
        "data": "old-plugin-shapes",
        "data_options": {"count": 256},
        "loss": "old-plugin-lsq",
        "augmentations": {"old-plugin-flip": {}},
        "callbacks": {"samples": {"every": 5}, "checkpoint": {"every": 5}, "metrics": {"every": 5}, "old-plugin-log": {"every": 5}},
        "steps": 10,
        "batch_size": 16,
        "jit_compile": False,
        "out": tmp_path / "run",
    }
    run = ganframe.train(config, registry=ganframe_registry, progress=False)
    assert run.step == 10
    assert sorted(p.name for p in (tmp_path / "run" / "samples").glob("*.png"))
    assert "step=" in (tmp_path / "run" / "old_plugin.log").read_text()
    images = run.generate(4, seed=0)
    assert images.shape[0] == 4 and np.isfinite(images).all()
