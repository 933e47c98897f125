"""A trained image-conditioned run applied to files (``ganframe translate``), sampled and scored after training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits
from typer.testing import CliRunner

import ganframe
from ganframe.cli import _print_scores, app
from ganframe.pairs import derive_conditions
from tinyrun import tiny_config, translator_config, translator_registry

runner = CliRunner()


@pytest.fixture(scope="module")
def registry():
    return translator_registry()


@pytest.fixture(scope="module")
def paired_run(registry, tmp_path_factory) -> Path:
    """A finished 2-step run of the tiny translator on digits paired with their masked copies, with its sample grid."""
    config = translator_config(tmp_path_factory.mktemp("paired"))
    config["callbacks"]["samples"] = {"every": 2}
    return ganframe.train(config, registry=registry, progress=False).path


@pytest.fixture(scope="module")
def noise_run(tmp_path_factory) -> ganframe.Run:
    """A finished 2-step run of a tiny GAN that generates from noise alone."""
    return ganframe.train(tiny_config(tmp_path_factory.mktemp("noise"), steps=2), progress=False)


@pytest.fixture
def cli(registry, monkeypatch):
    """The CLI in-process, with the translator registered."""
    monkeypatch.setattr(ganframe.plugins, "_REGISTRY", registry)
    return lambda *args: runner.invoke(app, list(map(str, args)))


def digits(n: int = 5) -> np.ndarray:
    return (load_digits().images[:n] / 16.0).astype(np.float32)[..., None]


def test_translate_a_folder_into_a_folder_of_the_outputs_for_those_conditions(paired_run, registry, cli, tmp_path):
    """Subfolders are read too (as the folder data set reads them), and each output goes to its input's path."""
    conditions = derive_conditions(digits(), ganframe.load_run(paired_run, registry=registry).config.pairs,
                                   ganframe.DataSpec((8, 8, 1)))
    (tmp_path / "in" / "more").mkdir(parents=True)
    for index, condition in enumerate(conditions):
        name = f"more/digit{index}.png" if index == 4 else f"digit{index}.png"
        Image.fromarray(np.rint(condition[..., 0] * 255).astype(np.uint8)).save(tmp_path / "in" / name)
    done = cli("translate", paired_run, "--input", tmp_path / "in", "--out", tmp_path / "out")
    assert done.exit_code == 0, done.output
    assert "translated 5 images" in done.output
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png"))
    assert written == [f"digit{index}.png" for index in range(4)] + ["more/digit4.png"]
    run = ganframe.load_run(paired_run, registry=registry)
    read = np.stack([np.asarray(Image.open(tmp_path / "in" / name)) for name in written])[..., None] / np.float32(255)
    expected = np.rint(run.generate(5, conditions=read.astype(np.float32))[..., 0] * 255)
    np.testing.assert_array_equal(np.stack([np.asarray(Image.open(tmp_path / "out" / name)) for name in written]),
                                  expected.astype(np.uint8))


def test_translate_an_npz_into_an_npz_and_a_grid_with_derived_conditions(paired_run, registry, cli, tmp_path):
    np.savez(tmp_path / "in.npz", images=(digits() * 255).astype(np.uint8))
    done = cli("translate", paired_run, "--input", tmp_path / "in.npz", "--out", tmp_path / "out.npz", "--derive")
    assert done.exit_code == 0, done.output
    run = ganframe.load_run(paired_run, registry=registry)
    originals = (digits() * 255).astype(np.uint8).astype(np.float32) / 255
    expected = run.generate(5, conditions=derive_conditions(originals, run.config.pairs, run.spec))
    np.testing.assert_allclose(np.load(tmp_path / "out.npz")["images"], expected, atol=1e-6)
    done = cli("translate", paired_run, "--input", tmp_path / "in.npz", "--out", tmp_path / "grid.png", "--derive")
    assert done.exit_code == 0, done.output
    assert "5 rows (input | output | original)" in done.output
    assert Image.open(tmp_path / "grid.png").size[1] > Image.open(tmp_path / "grid.png").size[0]  # 5 rows of 3


@pytest.mark.parametrize(("inputs", "flags", "message"), [
    (np.zeros((2, 6, 6), np.uint8), (), "the input images are 6x6x1, but this run translates conditions of 8x8x1"),
    (np.full((2, 8, 8), 2.0, np.float32), (), "float pixel values span [2, 2]; expected floats in [0, 1]"),
    (np.where(np.eye(8) > 0, np.nan, 0.5).astype(np.float32)[None], (), "8 pixel values are NaN or infinite, in 1"),
    (np.zeros((2, 6, 6), np.uint8), ("--derive",), "translates images (to derive conditions from) of 8x8x1"),
])
def test_translate_refuses_inputs_the_run_cannot_take(paired_run, cli, tmp_path, inputs, flags, message):
    np.savez(tmp_path / "in.npz", images=inputs)
    done = cli("translate", paired_run, "--input", tmp_path / "in.npz", "--out", tmp_path / "out.npz", *flags)
    assert done.exit_code == 2 and message in done.output, done.output
    assert not (tmp_path / "out.npz").exists()


def test_translate_refuses_a_run_that_takes_no_condition(noise_run, cli, tmp_path):
    np.savez(tmp_path / "in.npz", images=np.zeros((2, 8, 8), np.uint8))
    done = cli("translate", noise_run.path, "--input", tmp_path / "in.npz", "--out", tmp_path / "out.npz")
    assert done.exit_code == 2 and "does not translate images: its generator takes no condition" in done.output


def test_a_loaded_paired_run_samples_the_conditions_it_trained_with(paired_run, registry):
    run = ganframe.load_run(paired_run, registry=registry)
    saved = np.load(paired_run / "conditions.npz")
    np.testing.assert_allclose(run.generate(4), run.generate(4, conditions=saved["conditions"][:4]))
    np.testing.assert_allclose(saved["conditions"], derive_conditions(saved["images"], run.config.pairs, run.spec))


def test_a_paired_runs_sample_grids_show_each_output_between_its_condition_and_its_image(paired_run, registry,
                                                                                          tmp_path):
    run = ganframe.load_run(paired_run, registry=registry)
    saved = np.load(paired_run / "conditions.npz")
    cells, columns = run.gan.sample_grid(4, seed=1)  # what the samples and tensorboard callbacks save
    assert columns == 3
    np.testing.assert_array_equal(cells[0::3], saved["conditions"][:4])
    np.testing.assert_array_equal(cells[1::3], run.generate(4, seed=1))
    np.testing.assert_array_equal(cells[2::3], saved["images"][:4])
    trained = np.asarray(Image.open(paired_run / "samples" / "step_0000002.png"))  # 64 samples, the run's seed
    assert trained.shape == (1926, 96)  # 64 rows of 3 8x8 cells with 2-pixel borders, enlarged 3 times
    np.testing.assert_array_equal(np.asarray(Image.open(run.save_samples(tmp_path / "grid.png", n=64, seed=3))), trained)


def test_a_noise_runs_sample_grid_is_its_samples_alone(noise_run):
    images, columns = noise_run.gan.sample_grid(9, seed=1)
    assert columns is None
    np.testing.assert_array_equal(images, noise_run.generate(9, seed=1))
    assert Image.open(noise_run.save_samples(noise_run.path / "grid.png", n=9, seed=1)).size == (96, 96)  # 3 x 3


def test_evaluating_a_paired_run_compares_each_output_with_its_own_target(paired_run, registry, capsys):
    """Against digits, the outputs are G's for each real digit's masked copy, scored against that digit."""

    class MeanGap(ganframe.Metric):
        def compute(self, real, fake):
            return {"gap": float(np.abs(real - fake).mean())}

    class Plugin:
        @staticmethod
        @ganframe.hookimpl
        def ganframe_register_metrics(register):
            register("gap", lambda spec, options: MeanGap(), "Mean absolute difference, pair by pair (tests).")

    with_gap = translator_registry(("gap", Plugin))
    scores = ganframe.evaluate(paired_run, "digits", ["gap"], n=50, seed=3, registry=with_gap, out=paired_run / "s.json")
    run = ganframe.load_run(paired_run, registry=with_gap)
    real = ganframe.pipeline.take(with_gap.build("dataset", "digits", {}, ganframe.DataContext(None, 3)),
                                  np.sort(np.random.default_rng(3).choice(1797, 50, replace=False))).images
    fake = run.generate(50, seed=3, conditions=derive_conditions(real, run.config.pairs, run.spec))
    assert scores.scores["gap"] == pytest.approx(float(np.abs(real - fake).mean()), rel=1e-6)
    assert scores.protocol["fake"]["conditions"] == ("made from each real image by the run's [pairs] (derive = 'mask'), "
                                                     "output i against real image i")
    _print_scores(scores)
    assert (f"fake: run {paired_run} translated the conditions of those 50 real images: made from each real image"
            in capsys.readouterr().out)
