"""Streams (``ganframe.DataStream``): data read front to back, of a size that may be unknown.

The worked stream of docs/datasets.md, run as written as an in-process plugin, trains by steps from
the CLI, is refused epochs (exit 2, nothing written) and resumes. The pipeline's part is checked on a
finite counting stream through :func:`ganframe.pipeline.make_dataset`: every pass holds every example
once, the order is a function of (seed, start step), workers read disjoint shares, the noise is the step's.
"""

from __future__ import annotations

import re
import types
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import ganframe
import ganframe.plugins
from ganframe import DataSpec, DataStream
from ganframe.cli import app
from ganframe.config import PairsConfig
from ganframe.pairs import derive_conditions, derive_pairs
from ganframe.pipeline import NoiseSpec, make_dataset, sample
from ganframe.testing import check_dataset
from test_pipeline import Pipelines
from tinyrun import TINY, tiny_config

DOC = Path(__file__).resolve().parents[1] / "docs" / "datasets.md"


class Counting(DataStream):
    """``total`` examples from a Python generator, example i an image whose pixel holds i, labelled i % 3;
    its size told when ``known``."""

    def __init__(self, total: int = 12, known: bool = False) -> None:
        self.spec = DataSpec((1, 1, 1), (0.0, 1.0), 3)
        self.name = "counting"
        self.total = total
        self.size = total if known else None
        self.shuffle_buffer = 4

    def examples(self, worker: int, workers: int):
        import tensorflow as tf

        def generate():
            for index in range(self.total):
                yield {"image": np.full((1, 1, 1), index, np.uint8), "label": np.int32(index % 3)}

        signature = {"image": tf.TensorSpec((1, 1, 1), tf.uint8), "label": tf.TensorSpec((), tf.int32)}
        return tf.data.Dataset.from_generator(generate, output_signature=signature).shard(workers, worker)


def numbers(batch: dict) -> list[int]:
    """Which examples a batch holds: each pixel is its example's number / 255."""
    return [int(round(value * 255)) for value in batch["image"].numpy()[:, 0, 0, 0]]


def registry_with(name: str, factory) -> ganframe.plugins.Registry:
    class Plugin:
        @staticmethod
        @ganframe.hookimpl
        def ganframe_register_datasets(register):
            register(name, factory, "a stream (tests)")

    return ganframe.load_plugins(extra=[(name, Plugin)])


def test_every_pass_holds_every_example_once_each_in_a_new_order():
    batches = list(make_dataset(Counting(), 4, seed=1).take(9))  # 3 passes of 12
    order = [number for batch in batches for number in numbers(batch)]
    passes = [order[12 * p:12 * (p + 1)] for p in range(3)]
    assert all(sorted(one) == list(range(12)) for one in passes)
    assert len({tuple(one) for one in passes}) == 3 and passes[0] != list(range(12))
    np.testing.assert_array_equal(batches[0]["label"].numpy(), np.array(numbers(batches[0])) % 3)


def test_the_order_follows_the_seed_and_the_start_step_and_the_noise_the_step():
    """A pipeline started at step 5 (a resume) begins a new pass in an order of its own; the same start
    gives the same batches, and each step's noise is the uninterrupted pipeline's."""
    noise = NoiseSpec(latent_dim=3)
    whole = list(make_dataset(Counting(), 4, seed=1, noise=noise).take(8))
    again = list(make_dataset(Counting(), 4, seed=1, noise=noise).take(8))
    resumed = list(make_dataset(Counting(), 4, seed=1, start_step=5, noise=noise).take(3))
    assert [numbers(batch) for batch in again] == [numbers(batch) for batch in whole]
    assert sorted(n for batch in resumed for n in numbers(batch)) == list(range(12))  # a whole pass, anew
    assert [numbers(batch) for batch in resumed] != [numbers(batch) for batch in whole[5:8]]
    for step, batch in enumerate(resumed, start=5):
        np.testing.assert_array_equal(batch["noise"], whole[step]["noise"])
    other_seed = [numbers(batch) for batch in make_dataset(Counting(), 4, seed=2).take(3)]
    assert other_seed != [numbers(batch) for batch in whole[:3]]


def test_each_worker_reads_its_own_share():
    workers = [list(dataset.take(6)) for dataset in make_dataset(Counting(), 4, seed=2, strategy=Pipelines(2))]
    shares = [[number for batch in batches for number in numbers(batch)] for batches in workers]
    assert all(len(numbers(batch)) == 2 for batches in workers for batch in batches)  # 4 a step, 2 a replica
    assert sorted(shares[0][:6]) == [0, 2, 4, 6, 8, 10] and sorted(shares[1][:6]) == [1, 3, 5, 7, 9, 11]


def test_samples_are_the_start_of_a_seeded_pass_and_pairs_are_made_as_read():
    some = sample(Counting(), 5, seed=0)
    assert some.images.dtype == np.float32 and len(set(some.images.ravel())) == 5
    np.testing.assert_array_equal(some.images, sample(Counting(), 5, seed=0).images)
    assert len(sample(Counting(), 100, seed=0)) == 12  # all a pass holds
    paired = derive_pairs(Counting(), PairsConfig(derive="mask", hole=1))
    assert isinstance(paired, DataStream) and paired.spec.condition_shape == (1, 1, 1)
    read = sample(paired, 12, seed=0)
    np.testing.assert_array_equal(read.conditions, derive_conditions(read.images, PairsConfig(derive="mask", hole=1),
                                                                     Counting().spec))


def test_the_conformance_kit_checks_a_stream():
    assert isinstance(check_dataset("counting", registry=registry_with("counting", lambda c, o: Counting())), Counting)


def test_epochs_of_a_stream_of_known_size(tmp_path):
    registry = registry_with("counting", lambda context, options: Counting(total=40, known=True))
    run = ganframe.train(tiny_config(tmp_path, data="counting", batch_size=8, steps=None, epochs=2, arch_options=TINY,
                                     health={"every": 0}), registry=registry, progress=False)
    assert run.step == 10  # 2 epochs of 40 // 8 steps


@pytest.fixture
def documented_stream(monkeypatch):
    """The streaming source of docs/datasets.md, as written there, registered in the CLI's registry."""
    block = re.search(r"### A stream of your own.*?```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    plugin = types.ModuleType("squares_plugin")
    exec(compile(block, str(DOC), "exec"), plugin.__dict__)
    monkeypatch.setattr(ganframe.plugins, "_REGISTRY", ganframe.load_plugins(extra=[("squares", plugin)]))


def test_the_documented_stream_trains_by_steps_resumes_and_has_no_epochs(documented_stream, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tiny = ["--arch", "dense", "--arch-option", "g_widths=[8]", "--arch-option", "d_widths=[8]", "--arch-option",
            "latent_dim=4", "--batch-size", "8", "--no-jit", "--sample-every", "0", "--data", "squares", "--out", "RUN"]
    refused = CliRunner().invoke(app, ["train", *tiny, "--epochs", "3"])
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    assert ("config 'epochs': got 3; data set 'squares' is a stream of unknown size, so an epoch is no number of steps: "
            "give steps or max_time instead") in refused.output
    assert not list(tmp_path.iterdir())  # nothing written
    trained = CliRunner().invoke(app, ["train", *tiny, "--steps", "2", "--checkpoint-every", "2"])
    assert trained.exit_code == 0, trained.output
    resumed = CliRunner().invoke(app, ["train", "--resume", "RUN", "--steps", "4"])
    assert resumed.exit_code == 0, resumed.output
    assert ganframe.load_run(tmp_path / "RUN").step == 4
