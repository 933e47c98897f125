"""Own Keras models trained from Python (``train(generator=, discriminator=)``), their runs resumed and
loaded with fresh models, and runs evaluated from Python; docs/python.md runs as written."""

from __future__ import annotations

import json
import re
import shutil
import tomllib
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from typer.testing import CliRunner

import ganframe
from ganframe.cli import app
from tinyrun import assert_same_state, tiny_config, training_state

DOC = Path(__file__).resolve().parents[1] / "docs" / "python.md"
LATENT = 4
#: A few steps, checkpoints every 3, no grids or health probes: seconds on 2 cores.
SHORT = {"data": "digits", "batch_size": 16, "steps": 4, "jit_compile": False, "health": {"every": 0},
         "callbacks": {"samples": {"every": 0}, "checkpoint": {"every": 3}}}


def generator(shape: tuple[int, ...] = (8, 8, 1), activation: str = "sigmoid") -> keras.Model:
    noise = keras.Input((LATENT,))
    values = keras.layers.Dense(int(np.prod(shape)), activation=activation)(keras.layers.Dense(8, activation="relu")(noise))
    return keras.Model(noise, keras.layers.Reshape(shape)(values))


def discriminator(shape: tuple[int, ...] = (8, 8, 1)) -> keras.Model:
    image = keras.Input(shape)
    return keras.Model(image, keras.layers.Dense(1)(keras.layers.Dense(8, activation="relu")(keras.layers.Flatten()(image))))


def train_own(out: Path, **changes: Any) -> ganframe.Run:
    return ganframe.train({**SHORT, "out": str(out), **changes}, generator=generator(), discriminator=discriminator(),
                          progress=False)


@pytest.fixture(scope="module")
def own_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run trained on models passed from Python; tests copy it before changing it."""
    path = tmp_path_factory.mktemp("own") / "run"
    train_own(path)
    return path


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_the_python_walkthrough_runs_as_written(tmp_path, monkeypatch):
    blocks = python_blocks(DOC.read_text())
    assert len(blocks) >= 6
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": "docs_python"}
    for index, block in enumerate(blocks):
        exec(compile(block, f"{DOC.name} block {index + 1}", "exec"), namespace)

    for made in ("samples.png", "later.png", "generator.keras", "runs/my-gan/scores.json"):
        assert (tmp_path / made).is_file(), made
    assert tomllib.loads((tmp_path / "runs/my-gan/config.toml").read_text())["steps"] == 75  # resumed to its new length
    assert namespace["run"].gan.conditional and namespace["sevens"].shape == (8, 8, 8, 1)


def test_own_models_train_and_the_run_records_where_they_came_from(tmp_path):
    g, d = generator(), discriminator()
    before = [np.array(w) for w in g.get_weights()], [np.array(w) for w in d.get_weights()]
    run = ganframe.train({**SHORT, "out": str(tmp_path / "run")}, generator=g, discriminator=d, progress=False)

    assert run.step == 4 and run.generator is g and run.gan.discriminator is d
    for network, old in zip((g, d), before):
        changed = [not np.array_equal(a, b) for a, b in zip(network.get_weights(), old)]
        assert all(changed), f"{network.name}: weights that training left alone: {changed}"
    config = tomllib.loads((tmp_path / "run" / "config.toml").read_text())
    assert config["arch"] == "python"
    assert config["arch_options"] == {"latent_dim": LATENT, "output_range": [0.0, 1.0], "conditional": False}
    plugins = json.loads((tmp_path / "run" / "run.json").read_text())["plugins"]
    assert plugins["python"] == {"distribution": "(in process)", "version": "-"}
    assert "python" not in ganframe.get_registry().components["architecture"]  # the models stay the call's own


def test_output_range_comes_from_the_argument_when_the_activation_does_not_tell(tmp_path):
    # hard_sigmoid maps into [0, 1], but ganframe reads only sigmoid and tanh from a model
    with pytest.raises(ganframe.ConfigError, match=r"pass output_range=\(low, high\)"):
        ganframe.train({**SHORT, "out": str(tmp_path / "a")}, generator=generator(activation="hard_sigmoid"),
                       discriminator=discriminator())
    run = ganframe.train({**SHORT, "out": str(tmp_path / "b"), "steps": 1}, generator=generator(activation="hard_sigmoid"),
                         discriminator=discriminator(), output_range=(0, 1), progress=False)
    assert run.gan.output_range == (0.0, 1.0)


def test_a_generator_outside_the_range_given_is_refused_before_training(tmp_path):
    with pytest.raises(ganframe.ConfigError, match=r"architecture 'python' .*outside the range it declares, \[0, 1\]"):
        ganframe.train({**SHORT, "out": str(tmp_path / "a")}, generator=generator(activation="linear"),
                       discriminator=discriminator(), output_range=(0, 1))
    assert not (tmp_path / "a").exists()


def generator_weights(state: dict[str, np.ndarray]) -> list[np.ndarray]:
    return [value for key, value in sorted(state.items()) if key.startswith("generator/")]


def test_resume_with_fresh_models_restores_the_checkpoint_then_trains_on(own_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(own_run, run_dir)
    checkpoint = training_state(ganframe.load_run(run_dir, generator=generator(), discriminator=discriminator()).gan)
    fresh_g, fresh_d = generator(), discriminator()
    assert not np.array_equal(fresh_g.get_weights()[0], generator_weights(checkpoint)[0])  # a test that can fail

    class AtStart(keras.callbacks.Callback):
        def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
            self.step, self.state = self.model.global_step, training_state(self.model)

    start = AtStart()
    resumed = ganframe.train({"steps": 7}, resume=run_dir, generator=fresh_g, discriminator=fresh_d,
                             callbacks=[start], progress=False)
    assert start.step == 4 and resumed.step == 7
    assert_same_state(start.state, checkpoint)  # weights, optimizer state, seeds: bit for bit, before the first step
    assert resumed.generator is fresh_g
    assert not np.array_equal(fresh_g.get_weights()[0], generator_weights(start.state)[0])  # and then it trained on


@pytest.mark.parametrize(("models", "message"), [
    (lambda: {"generator": generator()}, "discriminator= is missing: pass both generator= and discriminator="),
    (lambda: {"generator": generator(), "discriminator": "d"}, "discriminator= must be a keras.Model, got str"),
    (lambda: {"generator": generator((28, 28, 1)), "discriminator": discriminator()},
     r"the generator outputs images of shape \(28, 28, 1\), but the data's are \(8, 8, 1\)"),
    (lambda: {"generator": generator(), "discriminator": discriminator((28, 28, 1))},
     r"the discriminator takes inputs of shapes \[\(28, 28, 1\)\], but must take the data's images \(8, 8, 1\)"),
    (lambda: {"generator": generator(activation="tanh"), "discriminator": discriminator()},
     r"the generator outputs values in \[-1.0, 1.0\] but the data lie in \[0, 1\]: end it with sigmoid"),
    (lambda: {"generator": keras.Sequential([keras.layers.Dense(64)]), "discriminator": discriminator()},
     r"has no known input shape; start it with keras.Input"),
], ids=["one-missing", "not-a-model", "generator-shape", "discriminator-shape", "output-range", "no-input"])
def test_models_that_cannot_work_are_refused_before_anything_is_written(tmp_path, models, message):
    with pytest.raises(ganframe.ConfigError, match=message):
        ganframe.train({**SHORT, "out": str(tmp_path / "run")}, **models())
    assert not (tmp_path / "run").exists()


def test_an_arch_in_the_config_conflicts_with_own_models(tmp_path):
    with pytest.raises(ganframe.ConfigError, match="the config sets arch, but generator= and discriminator= are"):
        ganframe.train({**SHORT, "arch": "dense"}, generator=generator(), discriminator=discriminator())


def test_a_run_of_own_models_without_them_says_to_pass_them(own_run, tmp_path):
    expected = "was trained on a generator and discriminator passed from Python"
    with pytest.raises(ganframe.RunError, match=expected + r".*load_run\(.*generator=G, discriminator=D\)"):
        ganframe.load_run(own_run)
    with pytest.raises(ganframe.RunError, match=expected):
        ganframe.train({"steps": 8}, resume=own_run)
    with pytest.raises(ganframe.RunError, match=expected):
        ganframe.evaluate(own_run, against="digits", metrics=["kid"], n=20)
    with pytest.raises(ganframe.ConfigError, match="the generator passed takes noise of width 5, but the run's took noise of width 4"):
        noise = keras.Input((LATENT + 1,))
        other = keras.Model(noise, keras.layers.Reshape((8, 8, 1))(keras.layers.Dense(64, activation="sigmoid")(noise)))
        ganframe.load_run(own_run, generator=other, discriminator=discriminator())
    for command in (["sample", str(own_run), "--out", str(tmp_path / "s.png")], ["evaluate", str(own_run), "--against", "digits"]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 1, result.output
        assert expected in result.output and "Traceback" not in result.output
    assert not (tmp_path / "s.png").exists()


def test_evaluate_from_python_writes_the_runs_scores(own_run, tmp_path):
    shutil.copytree(own_run, tmp_path / "run")
    run = ganframe.load_run(tmp_path / "run", generator=generator(), discriminator=discriminator())
    evaluation = ganframe.evaluate(run, against="digits", metrics=["kid"], n=40)
    written = json.loads((tmp_path / "run" / "scores.json").read_text())
    assert written == json.loads(json.dumps(evaluation.to_json()))
    assert written["protocol"]["fake"]["step"] == 4 and written["protocol"]["real"]["images"] == 40


def test_evaluate_a_run_directory_writes_its_scores_unless_told_where(tmp_path):
    """As ``ganframe evaluate RUN`` does: ``RUN/scores.json`` by default, else ``out`` (tests/test_first_hour.py
    checks that the real data come from the run's data directory)."""
    ganframe.train(tiny_config(tmp_path, steps=2, health={"every": 0}), progress=False)
    evaluation = ganframe.evaluate(tmp_path / "run", against="digits", metrics=["kid"], n=50)
    scores = tmp_path / "run" / "scores.json"
    assert json.loads(scores.read_text()) == json.loads(json.dumps(evaluation.to_json()))
    assert evaluation.protocol["fake"]["checkpoint"] == "latest" and evaluation.protocol["real"]["data"] == "digits"

    scores.unlink()
    ganframe.evaluate(tmp_path / "run", against="digits", metrics=["kid"], n=50, out=tmp_path / "elsewhere.json")
    assert json.loads((tmp_path / "elsewhere.json").read_text())["scores"] == evaluation.scores  # seeded: the same
    assert not scores.exists()
