"""The tensorboard callback, read back with TensorBoard's own reader.

Its curves must hold the very numbers of ``metrics.csv``, ``health.csv`` and ``evaluations.csv``
(one meaning for every number), its grid must be the run's fixed-noise grid, writing must work
without the ``tensorboard`` package, and a resumed run must continue the same step axis.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing import plugin_event_accumulator
from tensorboard.util import tensor_util

import ganframe
from ganframe.images import image_grid
from tinyrun import curve, read_events, tiny_config

SEED = 3  # tiny_config's
D_RATE, G_RATE = 3e-4, 1e-4
LOSSES = {"loss/d_loss": "d_loss", "loss/g_loss": "g_loss", "d_output/d_real": "d_real", "d_output/d_fake": "d_fake"}


def csv_columns(path: Path) -> tuple[list[int], dict[str, list[float]]]:
    rows = ganframe.CsvLog(path).rows()
    columns = [column for column in rows[0] if column != "step"]
    return [row["step"] for row in rows], {column: [row[column] for row in rows] for column in columns}


def assert_matches_csv(events: plugin_event_accumulator.EventAccumulator, section: str, path: Path,
                       skip: tuple[str, ...] = ()) -> None:
    """Each column of the CSV is the curve ``<section>/<column>``: same steps, same values."""
    steps, columns = csv_columns(path)
    for column, values in columns.items():
        if column in skip:
            continue
        present = [(step, value) for step, value in zip(steps, values) if value is not None]
        if not present:  # an empty column (coverage without a classifier) has no curve
            assert f"{section}/{column}" not in events.Tags()["tensors"], column
            continue
        logged_steps, logged = curve(events, f"{section}/{column}")
        assert logged_steps == [step for step, _ in present], column
        np.testing.assert_allclose(logged, [value for _, value in present], rtol=1e-5, err_msg=column)


def test_the_event_files_hold_the_runs_numbers_and_grid_and_a_resume_continues_them(tmp_path, monkeypatch):
    config = tiny_config(
        tmp_path, steps=12, metrics={"fid": {}}, evaluation={"every": 6, "samples": 100},
        health={"every": 3, "samples": 32}, d_optimizer={"learning_rate": D_RATE}, g_optimizer={"learning_rate": G_RATE},
        callbacks={"samples": {"every": 0}, "checkpoint": {"every": 6}, "metrics": {"every": 2}, "tensorboard": {"every": 2, "images_every": 5, "n": 9}},
    )
    with monkeypatch.context() as blocked:  # writing must not need the tensorboard package
        for name in [name for name in sys.modules if name == "tensorboard" or name.startswith("tensorboard.")]:
            blocked.setitem(sys.modules, name, None)
        run = ganframe.train(config, progress=False)
    events = read_events(run.path)

    metrics_steps, metrics = csv_columns(run.path / "metrics.csv")
    assert metrics_steps == [2, 4, 6, 8, 10, 12]
    for tag, column in LOSSES.items():
        steps, values = curve(events, tag)
        assert steps == metrics_steps, tag
        np.testing.assert_allclose(values, metrics[column], rtol=1e-5, err_msg=tag)
    for tag, rate in {"learning_rate/d": D_RATE, "learning_rate/g": G_RATE}.items():
        steps, values = curve(events, tag)
        assert steps == metrics_steps and values == pytest.approx([rate] * len(steps), rel=1e-6), tag

    assert csv_columns(run.path / "health.csv")[0] == [3, 6, 9, 12]
    assert_matches_csv(events, "health", run.path / "health.csv")
    assert csv_columns(run.path / "evaluations.csv")[0] == [0, 6, 12]
    assert_matches_csv(events, "scores", run.path / "evaluations.csv", skip=("seconds",))
    assert "scores/seconds" not in events.Tags()["tensors"]  # what an evaluation cost is no score

    assert events.SummaryMetadata("samples").plugin_data.plugin_name == "images"
    grids = events.Tensors("samples")
    assert [grid.step for grid in grids] == [5, 10, 12]  # every 5 steps and at the end
    width, height, png = tensor_util.make_ndarray(grids[-1].tensor_proto)
    images, columns = run.gan.sample_grid(9, seed=SEED)  # the samples callback's fixed noise, as the run ends
    expected = image_grid(images, run.gan.output_range, columns)
    assert (int(width), int(height)) == (expected.shape[1], expected.shape[0]) == (32, 32)  # 3 x 3 of 8x8, padded
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png)))[..., None], expected)

    resumed = ganframe.train({"steps": 20}, resume=run.path, progress=False)
    events = read_events(resumed.path)
    metrics_steps, metrics = csv_columns(resumed.path / "metrics.csv")
    assert metrics_steps == list(range(2, 21, 2))
    for tag, column in LOSSES.items():
        steps, values = curve(events, tag)
        assert steps == metrics_steps, tag  # increasing, no step twice: the curves continue
        np.testing.assert_allclose(values, metrics[column], rtol=1e-5, err_msg=tag)
    assert_matches_csv(events, "health", resumed.path / "health.csv")
    assert csv_columns(resumed.path / "evaluations.csv")[0] == [0, 6, 12, 18, 20]
    assert_matches_csv(events, "scores", resumed.path / "evaluations.csv", skip=("seconds",))
    assert [grid.step for grid in events.Tensors("samples")] == [5, 10, 12, 15, 20]
    assert len(list((resumed.path / "tensorboard").iterdir())) == 2  # one event file per training session


def test_switched_off_it_writes_nothing(tmp_path):
    run = ganframe.train(tiny_config(tmp_path, callbacks={"metrics": {"every": 2}, "tensorboard": {"every": 0, "images_every": 0}}), progress=False)
    assert (run.path / "metrics.csv").is_file()
    assert not (run.path / "tensorboard").exists()
