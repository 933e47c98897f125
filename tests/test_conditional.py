"""Conditional generation end to end: training on labelled data, chosen classes, class-by-row grids, the CLI."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import ganframe
from ganframe.cli import app
from tinyrun import TINY, tiny_config

runner = CliRunner()
CLASSES = 10  # digits


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny conditional dense GAN on digits, with a 12-image sample grid at its last step."""
    config = tiny_config(tmp_path_factory.mktemp("conditional"), steps=4,
                         arch_options={**TINY, "conditional": True, "spectral_norm": True})
    config["callbacks"] = {**config["callbacks"], "samples": {"every": 4, "n": 12}}
    return ganframe.train(config, progress=False)


def test_a_conditional_run_trains_and_generates_a_chosen_class(run):
    assert run.gan.conditional and run.gan.num_classes == CLASSES
    assert np.isfinite(run.history.history["d_loss"]).all()
    threes = run.generate(8, seed=1, labels=[3] * 8)
    assert threes.shape == (8, 8, 8, 1) and 0 <= threes.min() and threes.max() <= 1
    fives = run.generate(8, seed=1, labels=np.full(8, 5))
    assert not np.allclose(threes, fives), "the label must reach G"
    np.testing.assert_array_equal(run.generate(8, seed=1, labels=[3] * 8), threes)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ([11, 3], "class 11 is not one of this run's 10 classes \\(0..9\\)"),
        ([-1, 3], "class -1 is not one of this run's 10 classes"),
        ([3], "labels must be 2 integer class ids"),
        ([0.5, 1.5], "labels must be 2 integer class ids"),
    ],
)
def test_bad_labels_are_refused(run, labels, message):
    with pytest.raises(ganframe.ConfigError, match=message):
        run.generate(2, labels=labels)


def test_the_sample_grid_has_one_class_per_row(run):
    images, columns = run.gan.sample_grid(12, seed=0)
    # 12 images over 10 classes: classes 0 and 1 get two, the others one and a blank cell
    labels = np.array([0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    expected = run.generate(12, seed=0, labels=labels)
    assert columns == 2 and images.shape == (CLASSES * 2, 8, 8, 1)
    for index, label in enumerate(labels):
        column = index - int(np.argmax(labels == label))
        np.testing.assert_array_equal(images[label * columns + column], expected[index])
    assert (images[2 * columns + 1] == 0).all()  # class 2's blank cell, the lowest value
    grid = Image.open(run.path / "samples" / "step_0000004.png")
    assert grid.size == ((2 * 10 + 2) * 3, (10 * 10 + 2) * 3)  # 2 columns, 10 rows of 8+2 pixels, enlarged 3x


def test_cli_sample_one_class(run, tmp_path):
    out = tmp_path / "three.png"
    result = runner.invoke(app, ["sample", str(run.path), "--class", "3", "--n", "16", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "of class 3" in result.output and Image.open(out).size == ((4 * 10 + 2) * 3,) * 2

    arrays = np.load(_sample(run, tmp_path / "all.npz", "--n", "5"))
    np.testing.assert_array_equal(arrays["labels"], [0, 1, 2, 3, 4])
    np.testing.assert_allclose(arrays["images"], run.generate(5, seed=0), atol=1e-6)


def _sample(run, out, *flags):
    result = runner.invoke(app, ["sample", str(run.path), "--out", str(out), *flags])
    assert result.exit_code == 0, result.output
    return out


def test_cli_sample_refuses_a_class_the_run_does_not_have(run, tmp_path):
    out = tmp_path / "eleven.png"
    result = runner.invoke(app, ["sample", str(run.path), "--class", "11", "--out", str(out)])
    assert result.exit_code == 2
    assert "class 11 is not one of this run's 10 classes (0..9)" in result.output
    assert "Traceback" not in result.output and not out.exists()


def test_cli_sample_class_needs_a_conditional_run(tmp_path):
    plain = ganframe.train(tiny_config(tmp_path, steps=2), progress=False)
    result = runner.invoke(app, ["sample", str(plain.path), "--class", "3", "--out", str(tmp_path / "x.png")])
    assert result.exit_code == 2 and "not conditional" in result.output


def test_cli_train_conditional(tmp_path):
    result = runner.invoke(app, [
        "train", "--arch", "dense", "--conditional", "--data", "digits", "--steps", "2", "--batch-size", "16",
        "--no-jit", "--sample-every", "0", "--arch-option", "g_widths=[16]", "--arch-option", "d_widths=[16]",
        "--arch-option", "latent_dim=8", "--out", str(tmp_path / "run"),
    ])
    assert result.exit_code == 0, result.output
    assert "conditional = true" in (tmp_path / "run" / "config.toml").read_text()
    assert ganframe.load_run(tmp_path / "run").gan.conditional


def test_conditional_resnet_on_a_labelled_npz(tmp_path):
    """ResNet needs 32x32: a tiny synthetic labelled data set in an .npz, each class its own brightness."""
    labels = np.arange(16) % 4
    images = np.random.default_rng(0).random((16, 32, 32, 3)) * 0.2 + labels[:, None, None, None] * 0.2
    np.savez(tmp_path / "tiny.npz", x=images.astype(np.float32), y=labels)
    config = tiny_config(tmp_path, arch="resnet", steps=2, batch_size=8, data="npz",
                         data_options={"path": str(tmp_path / "tiny.npz"), "key": "x", "labels_key": "y"},
                         arch_options={"g_channels": 4, "d_channels": 4, "latent_dim": 8, "conditional": True})
    run = ganframe.train(config, progress=False)
    assert run.gan.num_classes == 4 and np.isfinite(run.history.history["d_loss"]).all()
    assert run.generate(4, labels=[3, 3, 3, 3]).shape == (4, 32, 32, 3)
