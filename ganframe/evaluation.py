"""Scoring a run while it trains: the metrics under ``[metrics]``, and the best checkpoint.

Every ``evaluation.every`` steps (and when training ends, and at step 0 of a new run, as
a baseline that also checks the configuration early) the :class:`Evaluator` draws
``evaluation.samples`` images from fixed noise (a generator that takes conditions translates
those of the real images instead), scores them against as many real images
with every configured metric, appends a row to ``evaluations.csv`` and prints it. When
``evaluation.best`` names one of the scores, each improvement is saved to
``checkpoints/best.npz`` (a named slot that rotation never removes). What the scores depend on
(each metric's extractor, its weights' hash, preprocessing, the sample counts) goes to
``evaluations.json`` beside the CSV.

:func:`evaluate` scores samples outside training (a run, an array file, an image folder)
against a named real data set; ``ganframe evaluate`` is its face (docs/evaluation.md).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import keras
import numpy as np

from ganframe import __version__
from ganframe.checkpoints import BEST, save_checkpoint
from ganframe.config import EvaluationConfig, read_toml, validate_config
from ganframe.contract import DataContext, DataSpec, DataStream, Metric
from ganframe.errors import ConfigError, DataError
from ganframe.examples import Data, sample, take
from ganframe.files import CsvLog, atomic_write
from ganframe.images import read_images, rescale, samples_kind
from ganframe.plugins import Registry, get_registry
from ganframe.report import SCORES_FILE


def metric_protocol(metric: Metric) -> dict[str, Any]:
    """What a metric's values depend on: its own ``protocol()`` (the built-ins: extractor, weights' hash,
    preprocessing, options) where it has one, else just its direction."""
    protocol = getattr(metric, "protocol", None)
    return protocol() if callable(protocol) else {"higher_is_better": metric.higher_is_better}


def compute_scores(metrics: dict[str, Metric], real: np.ndarray, fake: np.ndarray
                   ) -> tuple[dict[str, float], dict[str, bool]]:
    """Every metric's values for these sets, and whether higher is better for each; a key two metrics report is refused."""
    scores: dict[str, float] = {}
    higher: dict[str, bool] = {}
    for name, metric in metrics.items():
        for key, value in metric.compute(real, fake).items():
            if key in scores:
                raise ConfigError(f"metrics: {name!r} reports {key!r}, which another metric reports too")
            scores[key], higher[key] = float(value), metric.higher_is_better
    return scores, higher


class Evaluator(keras.callbacks.Callback):
    """Scores samples with ``metrics`` every N steps; keeps the best checkpoint by one score."""

    def __init__(self, metrics: dict[str, Metric], real: Data, run_dir: Path, config: EvaluationConfig,
                 seed: int) -> None:
        super().__init__()
        self.metrics = metrics
        self.config = config
        self.seed = seed
        reference = sample(real, config.samples, seed)
        #: The real images, and their conditions, which G translates, for a G that takes one (else None).
        self.real, self.conditions = reference.images, reference.conditions
        self.log = CsvLog(run_dir / "evaluations.csv")
        self.checkpoints = run_dir / "checkpoints"
        self.best: float | None = None
        self.best_step: int | None = None
        self.last_step = 0
        self.evaluated_step = -1

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.write_protocol()
        self.last_step = self.model.global_step
        if self.last_step == 0 and self.evaluated_step != 0:  # a new run (not a rollback to its start)
            self.evaluate(0)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        step, every = self.model.global_step, self.config.every
        if every and step // every > self.last_step // every:
            self.evaluate(step)
        self.last_step = step

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.model.global_step != self.evaluated_step:
            self.evaluate(self.model.global_step)

    def score(self) -> tuple[dict[str, float], dict[str, bool]]:
        """Every metric's values on fresh samples from fixed noise, and whether higher is better for each."""
        conditions = self.conditions if self.model.sampler.takes_condition else None
        fake = self.model.generate(len(self.real), seed=self.seed + 1, conditions=conditions)
        return compute_scores(self.metrics, self.real, fake)

    def write_protocol(self) -> None:
        """``evaluations.json``: what the scores in ``evaluations.csv`` depend on."""
        fake = (f"the real images' conditions translated, output i against real image i (noise seed {self.seed + 1})"
                if self.model.sampler.takes_condition else f"generated from fixed noise, seed {self.seed + 1}")
        protocol = {
            "ganframe": __version__,
            "real": f"a random subset of the run's training data (config.toml: data, data_options), seed {self.seed}",
            "fake": fake,
            "n_real": len(self.real),
            "n_fake": len(self.real),
            "metrics": {name: metric_protocol(metric) for name, metric in self.metrics.items()},
        }
        with atomic_write(self.log.path.with_suffix(".json"), "w") as handle:
            handle.write(json.dumps(protocol, indent=2) + "\n")

    def evaluate(self, step: int) -> None:
        started = time.perf_counter()
        scores, higher = self.score()
        best = self.config.best
        if best is not None and best not in scores:
            raise ConfigError(f"evaluation.best: {best!r} is not among the scores of the configured metrics "
                              f"({', '.join(sorted(scores)) or 'none'})")
        note = ""
        if best is not None and step > 0:
            value = scores[best]
            if self.best is None or (value > self.best if higher[best] else value < self.best):
                self.best, self.best_step = value, step
                save_checkpoint(self.model, self.checkpoints, name=BEST, extra={"score": {best: value}})
                note = f"  (best {best}: saved {self.checkpoints / BEST})"
        self.log.append({"step": step, **scores, "seconds": time.perf_counter() - started})
        values = "  ".join(f"{key} {value:.4g}" for key, value in scores.items())
        print(f"evaluation at step {step}: {values}{note}", flush=True)
        self.evaluated_step = step

    def get_state(self) -> dict[str, Any]:
        return {"best": self.best, "best_step": self.best_step}

    def set_state(self, state: dict[str, Any], step: int) -> None:
        self.best, self.best_step = state.get("best"), state.get("best_step")
        self.log.truncate_after(step)


# -- scoring samples outside training: ganframe evaluate -------------------------------------------------


@dataclass
class Evaluation:
    """Scores of one set of samples against one real set, and the protocol they hold under."""

    scores: dict[str, float]
    higher_is_better: dict[str, bool]
    protocol: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"scores": self.scores, "higher_is_better": self.higher_is_better, "protocol": self.protocol}

    def save(self, path: str | Path) -> Path:
        """Write :meth:`to_json` to ``path`` whole or not at all: a run's ``scores.json`` is what its report shows."""
        path = Path(path)
        with atomic_write(path, "w") as handle:
            handle.write(json.dumps(self.to_json(), indent=2) + "\n")
        return path


def parse_against(text: str) -> tuple[str, dict[str, Any]]:
    """``"mnist:test"`` -> ``("mnist", {"split": "test"})``; ``"digits"`` -> ``("digits", {})``."""
    name, colon, split = text.partition(":")
    if not name or (colon and not split):
        raise ConfigError(f"--against {text!r}: expected NAME or NAME:SPLIT, e.g. mnist:test")
    return name, {"split": split} if colon else {}


def _kind(samples: Any) -> str:
    """:func:`samples_kind`, and ``"run"`` for a :class:`ganframe.Run` too."""
    from ganframe.run import Run  # run imports this module

    return "run" if isinstance(samples, Run) else samples_kind(samples)


def load_samples(samples: Any, n: int, spec: DataSpec, *, registry: Registry, seed: int = 0,
                 checkpoint: str | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Up to ``n`` images to score, in ``spec``'s value range, and where they came from.

    A run directory generates ``n`` from noise seeded by ``seed`` (its checkpoint: the newest good
    one, or ``checkpoint``), a :class:`ganframe.Run` from its weights as they are; an ``.npz``/``.npy``
    file or an image folder gives its first ``n`` images (:func:`ganframe.images.read_images`, a folder
    resized to ``spec``'s size).
    """
    kind = _kind(samples)
    if kind == "array":
        return samples[:n], {"source": "array"}
    if kind == "run":
        from ganframe.run import load_run  # run imports this module

        if isinstance(samples, (str, Path)):
            run = load_run(samples, checkpoint=checkpoint, registry=registry)
        elif checkpoint is not None:
            raise ConfigError("checkpoint= picks a checkpoint of a run directory; a Run is scored with the weights "
                              "it has: pass ganframe.load_run(path, checkpoint=...) instead")
        else:
            run, checkpoint = samples, "in memory"
        images = rescale(run.generate(n, seed=seed), run.spec.value_range, spec.value_range)
        return images, {"source": "run", "path": str(run.path), "step": run.step,
                        "checkpoint": checkpoint or "latest", "seed": seed}
    if kind == "folder":
        images, _ = read_images(samples, registry, limit=n, size=(spec.height, spec.width), channels=spec.channels)
        where = {"source": "folder", "path": str(samples), "resized_to": [spec.height, spec.width]}
    else:
        images, _ = read_images(samples, registry, limit=n)
        where = {"source": "file", "path": str(samples)}
    return rescale(images, (0.0, 1.0), spec.value_range), where


def _translator(samples: Any, kind: str, checkpoint: str | None, registry: Registry) -> Any:
    """The :class:`ganframe.Run` of ``samples`` when its generator takes conditions (its scores compare each
    output with its input's own target), else None."""
    if kind != "run":
        return None
    if isinstance(samples, (str, Path)):
        from ganframe.run import load_run, run_spec  # run imports this module

        if run_spec(samples).condition_shape is None:
            return None
        return load_run(samples, checkpoint=checkpoint, registry=registry)
    return samples if samples.gan.sampler.takes_condition else None


def _translate(run: Any, examples: Any, spec: DataSpec, against: str, seed: int,
               checkpoint: str | None) -> tuple[np.ndarray, dict[str, Any]]:
    """``run``'s outputs for the conditions of ``examples`` (their own, or made as the run's ``[pairs]`` makes
    them), in ``spec``'s value range, and where they came from."""
    if examples.conditions is not None:
        conditions = rescale(examples.conditions, spec.value_range, run.spec.value_range)
        made = "each real image's own"
    elif run.config.pairs is not None:
        from ganframe.pairs import derive_conditions

        images = rescale(examples.images, spec.value_range, run.spec.value_range)
        conditions = derive_conditions(images, run.config.pairs, run.spec)
        made = f"made from each real image by the run's [pairs] (derive = {run.config.pairs.derive!r})"
    else:
        raise ConfigError(f"run {str(run.path)!r} translates conditions, but {against} has none and the run made none "
                          "([pairs]): score it against paired data")
    if tuple(conditions.shape[1:]) != tuple(run.spec.condition_shape):
        raise DataError(f"{against}'s conditions are {'x'.join(map(str, conditions.shape[1:]))}, but the run translates "
                        f"{'x'.join(map(str, run.spec.condition_shape))}; score it against data of its own shape")
    fake = rescale(run.generate(len(conditions), seed=seed, conditions=conditions), run.spec.value_range,
                    spec.value_range)
    return fake, {"source": "run", "path": str(run.path), "step": run.step, "checkpoint": checkpoint or "latest",
                  "seed": seed, "conditions": f"{made}, output i against real image i"}


def _run_data_dir(run: Path, data: str) -> Path | None:
    """The directory a run read ``data`` from, if it trained on that data set: where its real images lie."""
    config = validate_config(read_toml(run / "config.toml"))
    return config.data_dir if config.data == data else None


def evaluate(samples: Any, against: str = "mnist:test",
             metrics: Sequence[str] | dict[str, dict[str, Any]] = ("fid",), *, n: int = 10_000,
             against_options: dict[str, Any] | None = None, data_dir: str | Path | None = None, seed: int = 0,
             checkpoint: str | None = None, registry: Registry | None = None,
             out: str | Path | None = None) -> Evaluation:
    """Score ``samples`` (a run directory or :class:`ganframe.Run`, an .npz/.npy, an image folder or an array)
    against real data, and write the scores with their protocol to ``out`` (JSON).

    ``against`` names a dataset, optionally with a split (``mnist:test``); ``against_options`` are
    more of its options, ``data_dir`` its directory (else, against a run's own data set, the run's
    ``data_dir``; else ``GANFRAME_DATA_DIR``). Both sets hold
    the same number of images: ``n``, or fewer when either has fewer; a larger real set gives a
    random subset drawn with ``seed``. ``metrics`` are names, or names with options. ``out`` defaults,
    for a run, to ``<run>/scores.json``, which ``ganframe report`` shows; other samples get no file unless asked.
    """
    registry = registry or get_registry()
    requested = dict.fromkeys(metrics, {}) if not isinstance(metrics, dict) else metrics
    for name, options in requested.items():
        registry.options("metric", name, options)  # every name and option checked before any work
    kind = _kind(samples)
    run_dir = Path(getattr(samples, "path", samples)) if kind == "run" else None
    name, options = parse_against(against)
    options.update(against_options or {})
    directory = (data_dir or (_run_data_dir(run_dir, name) if run_dir is not None else None)
                 or os.environ.get("GANFRAME_DATA_DIR") or None)
    real = registry.build("dataset", name, options, DataContext(Path(directory) if directory else None, seed))
    if isinstance(real, DataStream):  # no indices to draw from: the first n of a shuffled pass, in memory
        real = sample(real, n, seed)
    translator = _translator(samples, kind, checkpoint, registry)
    if translator is None:
        fake, source = load_samples(samples, min(n, len(real)), real.spec, registry=registry, seed=seed,
                                    checkpoint=checkpoint)
        if tuple(fake.shape[1:]) != tuple(real.spec.shape):
            raise DataError(f"the samples are {'x'.join(map(str, fake.shape[1:]))} images but {against} holds "
                            f"{'x'.join(map(str, real.spec.shape))}; score them against data of their own shape")
    count = min(n, len(real)) if translator is not None else min(n, len(real), len(fake))
    picked = np.sort(np.random.default_rng(seed).choice(len(real), count, replace=False)) if count < len(real) else None
    examples = take(real, np.arange(len(real)) if picked is None else picked)
    real_images = examples.images
    if translator is not None:  # G's output for each real example's condition, against that example
        fake, source = _translate(translator, examples, real.spec, against, seed, checkpoint)
    built = {metric: registry.build("metric", metric, values, real.spec) for metric, values in requested.items()}
    started = time.perf_counter()
    scores, higher = compute_scores(built, real_images, fake[:count])
    protocol = {
        "ganframe": __version__,
        "real": {"data": name, "options": options, "images": count,
                 "subset": "all" if picked is None else f"random, seed {seed}, of {len(real)}"},
        "fake": {**source, "images": count},
        "n_real": count,
        "n_fake": count,
        "metrics": {metric: metric_protocol(built[metric]) for metric in built},
        "seconds": round(time.perf_counter() - started, 3),
    }
    evaluation = Evaluation(scores, higher, json.loads(json.dumps(protocol, default=str)))
    if out is not None or run_dir is not None:
        evaluation.save(out if out is not None else run_dir / SCORES_FILE)
    return evaluation
