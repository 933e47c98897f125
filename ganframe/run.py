"""Runs: ``train(config) -> Run`` and ``load_run(path) -> Run``, the API the CLI is a face of.

A run directory holds everything about one training run:

    config.toml      the resolved config (CLI > TOML > defaults), None values dropped
    run.json         data spec, versions of Python, TensorFlow, Keras, ganframe and every plugin used
    metrics.csv      the metrics log
    samples/         sample grids from fixed noise (or fixed conditions)
    conditions.npz   the conditions sample grids translate and their images, for a generator that takes them
    checkpoints/     resumable checkpoints (see ganframe.checkpoints)

Training is one ``fit`` unless the divergence guard trips: then the run rolls back to
its newest checkpoint, lowers the learning rates and fits the remaining steps
(docs/reliability.md).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import keras
import numpy as np

from ganframe import __version__
from ganframe.checks import check_before_training
from ganframe.checkpoints import (
    BEST,
    latest_checkpoint,
    load_checkpoint,
    restore_arrays,
    restore_latest,
    save_checkpoint,
    state_arrays,
)
from ganframe.config import (RunConfig, apply_overrides, check_components, check_run_dir, config_to_toml, read_toml,
                             validate_config)
from ganframe import feed
from ganframe.backends import check_backend
from ganframe.contract import AdversarialLoss, CallbackContext, DataContext, DataSpec, ImageData, Penalty
from ganframe.distribute import get_strategy, run_strategy, strategy_scope, tf_strategy, writes_run_dir
from ganframe.engine import GAN, precision_policy
from ganframe.guard import DivergenceGuard, Diverged
from ganframe.errors import ConfigError, Interrupted, RunError
from ganframe.evaluation import Evaluator
from ganframe.examples import Data, check_batch, sample, size_of
from ganframe.health import HealthMonitor
from ganframe.files import atomic_write
from ganframe.images import save_image_grid
from ganframe.plugins import Registry, get_registry
from ganframe.progress import Progress, TimeBudget, duration
from ganframe.schedules import StepSchedule, learning_rate, scale_learning_rate
from ganframe.python_models import PYTHON_ARCH, check_models_for, check_python_settings, python_models, with_models
from ganframe.report import SCORES_FILE

#: The conditions a run's sample grids translate (array ``conditions``) and their examples' images (``images``,
#: shown beside the outputs), so that a loaded run samples alike.
CONDITIONS_FILE = "conditions.npz"
#: What ganframe writes into a run directory (and all that ``overwrite`` removes).
RUN_FILES = ("config.toml", "run.json", CONDITIONS_FILE, "metrics.csv", "evaluations.csv", "evaluations.json", "health.csv",
             "health.json", "samples", "checkpoints", "tensorboard", "generator.keras", "report", SCORES_FILE)

#: Conditions of the data a run keeps for sample grids, when its generator takes one.
SAMPLE_CONDITIONS = 256

#: Settings a resumed run may change: they do not touch what the checkpoints hold or how steps are computed.
RESUMABLE = ("steps", "epochs", "max_time", "callbacks", "metrics", "evaluation", "health", "divergence", "jit_compile",
             "steps_per_execution", "strategy", "data_dir", "out", "backend")


@dataclass
class Run:
    """A trained (or loaded) run: its directory, config, data spec and the GAN itself."""

    path: Path
    config: RunConfig
    spec: DataSpec
    gan: GAN
    history: keras.callbacks.History | None = None
    #: One entry per divergence rollback: {"step", "network", "value", "skips", "restored_step"}.
    rollbacks: list[dict[str, Any]] = field(default_factory=list)
    #: Why training stopped before its length, and how to go on (the wall-time budget ran out); else None.
    stopped: str | None = None

    @property
    def generator(self) -> keras.Model:
        return self.gan.generator

    @property
    def step(self) -> int:
        return self.gan.global_step

    def generate(self, n: int, seed: int = 0, labels: Any = None, conditions: Any = None) -> np.ndarray:
        """``n`` images within the data's value range; the same seed gives the same images.

        A conditional run generates class ``labels[i]`` as image ``i`` (default: the classes in turn);
        a run whose generator takes a condition, image ``i`` from ``conditions[i]`` (default: the
        data's conditions the run keeps for its grids, while it trains).
        """
        return self.gan.generate(n, seed=seed, labels=labels, conditions=conditions)

    def save_samples(self, out: str | Path, n: int = 64, seed: int = 0, label: int | None = None) -> Path:
        """A PNG grid (``.png``) or the raw float32 array (``.npz``, key ``images``; ``labels`` if conditional).

        ``label`` generates only that class; without it, a conditional run's grid has one class per row.
        """
        out = Path(out)
        if out.suffix.lower() not in (".png", ".npz"):
            raise ConfigError(f"sample output {str(out)!r}: the extension must be .png (a grid) or .npz (the array)")
        if out.suffix.lower() == ".png" and self.spec.channels not in (1, 3):
            raise ConfigError(f"sample output {str(out)!r}: this run's data of shape {self.spec.shape} are not "
                              "images (1 or 3 channels); write the array with a .npz path instead")
        labels = None if label is None else np.full(n, label)
        if out.suffix.lower() == ".png":
            # one class: a square grid; else a conditional run's has one class per row
            images, columns = self.gan.sample_grid(n, seed) if label is None else (self.generate(n, seed, labels), None)
            save_image_grid(images, out, self.spec.value_range, columns=columns)
        else:
            labels = self.gan.sample_labels(n, labels)
            arrays = {"images": self.generate(n, seed=seed, labels=labels)}
            if labels is not None:
                arrays["labels"] = labels
            with atomic_write(out) as handle:
                np.savez(handle, **arrays)
        return out

    def export(self, path: str | Path | None = None) -> Path:
        """The generator alone as a ``.keras`` file (default: ``<run>/generator.keras``); its EMA weights if kept."""
        path = Path(path) if path is not None else self.path / "generator.keras"
        if path.suffix != ".keras":
            raise ConfigError(f"export path {str(path)!r} must end in .keras")
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.stem}.tmp.keras")
        with self.gan.sampling_weights():  # the EMA weights, when the run keeps them
            self.generator.save(temporary)
        os.replace(temporary, path)
        return path


def build_gan(config: RunConfig, spec: DataSpec, registry: Registry) -> GAN:
    """Build the components a config names for data of ``spec``, wire them into a compiled GAN.

    Under the config's ``strategy`` (ganframe.distribute) all of it is built in the strategy's scope,
    so that ``fit`` distributes, and without XLA; under its ``precision``'s dtype policy.
    """
    strategy = run_strategy(config)
    with strategy_scope(strategy), precision_policy(config.precision):
        networks = registry.build("architecture", config.arch, config.arch_options, spec)
        if tuple(map(float, networks.output_range)) != tuple(map(float, spec.value_range)):
            low, high = networks.output_range
            raise ConfigError(
                f"architecture {config.arch!r} generates values in [{low:g}, {high:g}] but data set "
                f"{config.data!r} lies in [{spec.value_range[0]:g}, {spec.value_range[1]:g}]; "
                "set the arch option output_activation (tanh for [-1, 1], sigmoid for [0, 1]) or the data option value_range"
            )
        loss = registry.build("loss", config.loss, config.loss_options, spec)
        if not isinstance(loss, AdversarialLoss):
            raise ConfigError(f"loss {config.loss!r} is not an adversarial loss (is it a penalty? put it under penalties)")
        penalties = [registry.build("loss", name, options, spec) for name, options in config.penalties.items()]
        for name, penalty in zip(config.penalties, penalties):
            if not isinstance(penalty, Penalty):
                raise ConfigError(f"penalties: {name!r} is not a penalty (use it as `loss` instead)")
        augmentations = [registry.build("augmentation", n, o, spec) for n, o in config.augmentations.items()]
        # D's optimizer updates n_critic times per step; its schedule still follows the train step.
        rates = {"d": learning_rate(config.d_optimizer, config.n_critic), "g": learning_rate(config.g_optimizer, 1)}
        gan = GAN(
            networks,
            loss,
            penalties=penalties,
            augmentations=augmentations,
            n_critic=config.n_critic,
            num_classes=spec.num_classes,
            seed=config.seed,
            guard=config.divergence.enabled,
            ema=config.ema,
            schedules={net: rate for net, rate in rates.items() if isinstance(rate, StepSchedule)},
        )
        gan.compile(
            _optimizer(config.d_optimizer, rates["d"]),
            _optimizer(config.g_optimizer, rates["g"]),
            jit_compile=config.jit_compile and tf_strategy(strategy) is None,
            steps_per_execution=config.steps_per_execution,
        )
        check_before_training(gan, spec, registry.describe("architecture", config.arch),
                              registry.describe("loss", config.loss),
                              [(registry.describe("loss", name), penalty) for name, penalty in zip(config.penalties, penalties)])
    return gan


def _on_this_backend(config: RunConfig) -> RunConfig:
    """``config`` with its ``backend`` set to the one Keras runs on here; refuses another, and a strategy
    this backend has not got (ganframe.distribute)."""
    if config.backend is not None:
        check_backend(config.backend)
    get_strategy(config.strategy)
    return config.model_copy(update={"backend": keras.backend.backend()})


def _optimizer(config: Any, rate: float | StepSchedule) -> keras.optimizers.Optimizer:
    if config.name == "adam":
        return keras.optimizers.Adam(rate, beta_1=config.beta_1, beta_2=config.beta_2)
    if config.name == "rmsprop":
        return keras.optimizers.RMSprop(rate, momentum=config.momentum)
    return keras.optimizers.SGD(rate, momentum=config.momentum)


def _absolute_data_dir(config: RunConfig) -> RunConfig:
    """``data_dir`` made absolute for the run's config.toml, so that resuming or evaluating the run from
    another working directory still finds its data."""
    if config.data_dir is None:
        return config
    return config.model_copy(update={"data_dir": Path(os.path.abspath(config.data_dir))})


def _data_dir(config: RunConfig) -> Path | None:
    if config.data_dir is not None:
        return config.data_dir
    env = os.environ.get("GANFRAME_DATA_DIR")
    return Path(env) if env else None


def _new_run_dir(config: RunConfig, overwrite: bool) -> Path:
    """Where a new run goes; refuses a file, or a directory holding something unless ``overwrite``."""
    path = config.out or Path("runs") / f"{config.arch}-{config.data}-{time.strftime('%Y%m%d-%H%M%S')}"
    if path.exists() and not path.is_dir():
        raise ConfigError(f"output {str(path)!r} exists and is not a directory")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise ConfigError(
            f"output directory {str(path)!r} is not empty; resume it with `--resume {path}`, "
            "replace its run with `--overwrite`, or choose another `--out`"
        )
    return path


def _clear_run_dir(path: Path) -> None:
    """Create ``path``, removing a previous run's files (only what ganframe wrote; a user's own files stay)."""
    for name in RUN_FILES:
        target = path / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    path.mkdir(parents=True, exist_ok=True)


def _worker_scratch() -> Path:
    """A non-chief worker's run directory: a scratch copy of the chief's, removed when the process exits.

    Every worker runs the same callbacks, and a rollback reads the worker's own checkpoints,
    so the workers stay in lockstep; only the chief's copy is kept.
    """
    path = Path(tempfile.mkdtemp(prefix="ganframe-worker-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def _run_config(path: Path) -> RunConfig:
    check_run_dir(path)
    return validate_config(read_toml(path / "config.toml"))


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _check_resumable(run_dir: Path, saved: RunConfig, config: RunConfig) -> None:
    """Refuse overrides that the run's checkpoints cannot honour (a different model, data or optimizer)."""
    before, after = _flatten(saved.model_dump(mode="json")), _flatten(config.model_dump(mode="json"))
    changed = sorted(key for key in before.keys() | after.keys()
                     if before.get(key) != after.get(key) and key.split(".")[0] not in RESUMABLE)
    if changed:
        what = ", ".join(f"{key} ({before.get(key)!r} -> {after.get(key)!r})" for key in changed)
        raise ConfigError(
            f"cannot resume {str(run_dir)!r}: changing {what} is incompatible with the run's checkpoints. "
            f"A resumed run may change only {', '.join(RESUMABLE)}; to train with other settings, start a "
            "new run (another --out)"
        )


def _metadata(config: RunConfig, spec: DataSpec, registry: Registry, rollbacks: list[dict[str, Any]] = ()
              ) -> dict[str, Any]:
    used = {config.arch, config.data, config.loss, *config.penalties, *config.augmentations, *config.callbacks,
            *config.metrics}
    plugins = {
        record.name: {"distribution": record.distribution, "version": record.version}
        for record in registry.plugins
        if any(name in used for _, name in record.components)
    }
    return {
        "ganframe": __version__,
        "backend": keras.backend.backend(),
        **{name: module.__version__ for name in ("tensorflow", "jax") if (module := sys.modules.get(name)) is not None},
        "keras": keras.__version__,
        "python": platform.python_version(),
        "plugins": plugins,
        "spec": {"shape": list(spec.shape), "value_range": list(spec.value_range), "num_classes": spec.num_classes,
                 "condition_shape": None if spec.condition_shape is None else list(spec.condition_shape)},
        "rollbacks": list(rollbacks),
    }


class _StopOnSignal(keras.callbacks.Callback):
    """SIGINT (Ctrl-C) and SIGTERM (a scheduler) ask training to stop after the current execution.

    The handlers only set a flag; this callback turns it into ``stop_training``, so no exception
    ever lands inside TensorFlow, and ``train`` then writes a checkpoint and raises
    :class:`Interrupted`. A second signal gets the default behaviour (Ctrl-C twice: stop now).
    """

    def __init__(self) -> None:
        super().__init__()
        self.signal: int | None = None

    @contextlib.contextmanager
    def installed(self) -> Iterator["_StopOnSignal"]:
        if threading.current_thread() is not threading.main_thread():  # signals only reach the main thread
            yield self
            return

        def request_stop(signum: int, frame: Any) -> None:
            self.signal = signum
            signal.signal(signum, previous[signum])

        previous = {signum: signal.signal(signum, request_stop) for signum in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.signal is not None:
            self.model.stop_training = True


def _write_text(path: Path, text: str) -> None:
    with atomic_write(path, "w") as handle:
        handle.write(text)


def train(
    config: RunConfig | dict[str, Any] | None = None,
    *,
    resume: str | Path | None = None,
    overwrite: bool = False,
    registry: Registry | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    progress: bool = True,
    generator: keras.Model | None = None,
    discriminator: keras.Model | None = None,
    output_range: tuple[float, float] | None = None,
) -> Run:
    """Train a GAN as ``config`` describes and return the run.

    With ``resume=RUN_DIR``, continue that run from its newest good checkpoint;
    ``config`` may then hold overrides of the saved config, keys dotted (e.g. ``{"steps": 5000}``).

    ``generator`` and ``discriminator`` (both or neither) are your own Keras models, trained in place
    of the config's ``arch``; the run records them as arch ``python``, so resuming or loading it takes
    freshly built models of the same architecture again (docs/python.md). ``output_range`` is the
    interval G's output lies in; by default read from G's last activation (sigmoid or tanh).
    """
    models = python_models(generator, discriminator)
    if output_range is not None and models is None:
        raise ConfigError("output_range= describes the output of generator=: pass it with generator= and discriminator=")
    registry = with_models(registry or get_registry(), models)
    if resume is not None:
        run_dir = Path(resume)
        if isinstance(config, RunConfig):
            raise ConfigError("with resume, pass overrides of the saved config as a dict, e.g. {'steps': 5000}")
        saved = _run_config(run_dir)
        check_models_for(run_dir, saved, models)
        overrides = dict(config or {})
        if output_range is not None:  # refused below unless it is the range the run recorded
            overrides["arch_options.output_range"] = [float(value) for value in output_range]
        overrides.setdefault("backend", keras.backend.backend())  # a run trained on one backend resumes on another
        config = validate_config(apply_overrides(saved.model_dump(exclude_none=True), overrides), registry)
        _check_resumable(run_dir, saved, config)
    else:
        config = validate_config(config or {}, registry)
        if models is not None:
            given = sorted({"arch", "arch_options"} & config.model_fields_set)
            if given:
                raise ConfigError(f"the config sets {' and '.join(given)}, but generator= and discriminator= are the "
                                  "architecture: leave them out of the config")
            config = config.model_copy(update={"arch": PYTHON_ARCH, "arch_options": models.arch_options(output_range)})
    if models is not None:
        check_python_settings(config)
    check_components(config, registry)
    config = _on_this_backend(config)

    keras.utils.set_random_seed(config.seed)
    data = registry.build("dataset", config.data, config.data_options, DataContext(_data_dir(config), config.seed))
    if config.pairs is not None:  # here only: training, grids, evaluation, run.json and resume all see these pairs
        from ganframe.pairs import derive_pairs  # a derivation is TensorFlow ops

        data = derive_pairs(data, config.pairs)
    size = size_of(data, counted=config.epochs is not None)
    if size is None and config.epochs is not None:
        raise ConfigError(f"config 'epochs': got {config.epochs}; data set {data.name!r} is a stream of unknown size, "
                          "so an epoch is no number of steps: give steps or max_time instead")
    gan = build_gan(config, data.spec, registry)
    if gan.sampler.takes_condition:  # what sample grids translate: a seeded sample of the data's pairs
        reference = sample(data, SAMPLE_CONDITIONS, config.seed)
        gan.sampler.conditions, gan.sampler.targets = reference.conditions, reference.images
    metrics = {name: registry.build("metric", name, options, data.spec) for name, options in config.metrics.items()}
    check_batch(data, config.batch_size, config.n_critic)
    total = config.total_steps(size)
    chief = writes_run_dir(get_strategy(config.strategy))
    if resume is None and chief:
        run_dir = _new_run_dir(config, overwrite)

    restored: dict[str, Any] = {}
    if resume is not None:
        restored = restore_latest(gan, run_dir / "checkpoints")
        if restored is None:
            raise RunError(f"run {str(run_dir)!r} has no usable checkpoint to resume from; start it anew with --overwrite")
    if not chief:
        run_dir = _worker_scratch()
    start = gan.global_step

    context = CallbackContext(run_dir=run_dir, spec=data.spec, seed=config.seed, total_steps=total)
    named = _named_callbacks(config, registry, context, metrics, data)
    gan.state_callbacks = {name: callback for name, callback in named.items() if hasattr(callback, "get_state")}
    if resume is not None:
        _restore_callbacks(gan, restored)
    all_callbacks = list(named.values())
    if resume is None:  # only now, so that a bad config, data set or component leaves nothing behind
        _clear_run_dir(run_dir)
    _write_text(run_dir / "config.toml", config_to_toml(_absolute_data_dir(config)))
    _write_text(run_dir / "run.json", json.dumps(_metadata(config, data.spec, registry), indent=2) + "\n")
    if gan.sampler.conditions is not None:
        with atomic_write(run_dir / CONDITIONS_FILE) as handle:
            np.savez(handle, conditions=gan.sampler.conditions, images=gan.sampler.targets)
    if config.divergence.enabled:  # first, so that it acts before a checkpoint can save a diverging state
        all_callbacks.insert(0, DivergenceGuard(config.divergence.max_skips))
    budget = TimeBudget(config.max_time) if config.max_time is not None else None
    if budget is not None:
        all_callbacks.append(budget)
    if progress:
        all_callbacks.append(Progress(total))
    all_callbacks.extend(callbacks)

    run = Run(run_dir, config, data.spec, gan)
    if total is not None and start >= total:
        print(f"run {run_dir} is already at step {start} of {total}; nothing to do")
        return run
    if resume is not None:
        print(f"resuming from step {start}{'' if total is None else f' of {total}'}: {run_dir}", flush=True)
    stop = _StopOnSignal()
    try:
        with stop.installed():
            run.history = _fit_with_rollbacks(run, data, total, [stop, *all_callbacks])
    except KeyboardInterrupt:  # a second Ctrl-C: stop at once, but still keep what was trained
        stop.signal = signal.SIGINT
    finally:
        if run.rollbacks:
            _write_text(run_dir / "run.json", json.dumps(_metadata(config, data.spec, registry, run.rollbacks), indent=2) + "\n")
    if stop.signal is not None:
        found = latest_checkpoint(run_dir / "checkpoints")
        if found is None or found[0]["step"] != gan.global_step:
            save_checkpoint(gan, run_dir / "checkpoints")
        raise Interrupted(f"interrupted at step {gan.global_step} ({signal.Signals(stop.signal).name}): a checkpoint "
                          f"was written; {_resume_hint(run_dir)}")
    if budget is not None and budget.ran_out:
        run.stopped = (f"stopped at step {gan.global_step}: the time budget of {duration(config.max_time)} ran out; "
                       f"{_resume_hint(run_dir)}")
    if not chief:  # the run is the chief's directory; this worker's scratch copy goes when it exits
        run.path = Path(resume) if resume is not None else config.out or run.path
    return run


def _resume_hint(run_dir: Path) -> str:
    return f"resume with: ganframe train --resume {run_dir}"


def _named_callbacks(config: RunConfig, registry: Registry, context: CallbackContext, metrics: dict[str, Any],
                     data: Data) -> dict[str, keras.callbacks.Callback]:
    """The configured callbacks by name, in config order but checkpoints last, after the evaluator and the
    health probe (if any).

    A checkpoint then holds every other callback's state, and the best score, as of its own step.
    """
    order = sorted(config.callbacks, key=lambda name: name == "checkpoint")
    named = {name: registry.build("callback", name, config.callbacks[name], context) for name in order}
    if metrics:
        named = {"evaluation": Evaluator(metrics, data, context.run_dir, config.evaluation, config.seed), **named}
    if config.health.every != 0:
        named = {"health": HealthMonitor(config.health, data, context, registry), **named}
    return named


def _fit_with_rollbacks(run: Run, data: Any, total: int | None, callbacks: list[Any]) -> keras.callbacks.History:
    """``fit`` to ``total`` steps; when the divergence guard trips, roll back and fit the rest again.

    The rollback target is the newest good checkpoint, or the state training started from
    (kept in memory) while there is none. At most ``divergence.max_rollbacks`` times; then
    :class:`RunError` names the step, the network and the non-finite value.
    """
    gan, config, policy = run.gan, run.config, run.config.divergence
    initial = state_arrays(gan) if policy.enabled and policy.max_rollbacks else None
    while True:
        batches, read_errors = _training_batches(gan, config, data)
        try:
            with read_errors, strategy_scope(get_strategy(config.strategy)):  # Keras's JAX trainer reads it in fit
                return gan.fit(
                    batches,
                    epochs=1,
                    steps_per_epoch=None if total is None else total - gan.global_step,
                    callbacks=callbacks,
                    shuffle=False,  # the pipeline shuffles, seeded
                    verbose=0,
                )
        except Diverged as diverged:
            if len(run.rollbacks) >= policy.max_rollbacks:
                raise RunError(
                    f"training diverged: {diverged.describe()}; gave up after {len(run.rollbacks)} rollback(s) "
                    f"(divergence.max_rollbacks = {policy.max_rollbacks}). Lower the learning rates or check "
                    f"the data and components; the checkpoints in {run.path / 'checkpoints'} hold finite weights"
                ) from None
            restored = _roll_back(gan, run.path / "checkpoints", initial, policy.lr_factor, callbacks)
            run.rollbacks.append({"step": diverged.step, "network": diverged.network, "value": diverged.value,
                                  "skips": diverged.skips, "restored_step": restored})
            print(
                f"warning: training diverging: {diverged.describe()}; rolled back to "
                f"step {restored}, learning rates x{policy.lr_factor:g} "
                f"(rollback {len(run.rollbacks)} of {policy.max_rollbacks})",
                file=sys.stderr,
                flush=True,
            )


def _training_batches(gan: GAN, config: RunConfig, data: Data
                      ) -> tuple[Iterable[Any], contextlib.AbstractContextManager[object]]:
    """What ``fit`` reads from the GAN's step on, and the context that reports a failed read as the data set's.

    Data in memory on JAX: numpy batches (:mod:`ganframe.feed`), TensorFlow not imported. Else ``tf.data``
    (:mod:`ganframe.pipeline`), in the same order.
    """
    start = gan.global_step
    if keras.backend.backend() == "jax" and isinstance(data, ImageData):
        batches = feed.batches(data, config.batch_size, n_critic=config.n_critic, seed=config.seed, start_step=start)
        return ((batch,) for batch in batches), contextlib.nullcontext()  # Keras takes a generator's elements as (inputs,)
    from ganframe import pipeline

    dataset = pipeline.make_dataset(data, config.batch_size, n_critic=config.n_critic, seed=config.seed,
                                    start_step=start, noise=gan.noise_spec,
                                    strategy=tf_strategy(get_strategy(config.strategy)))
    return dataset, pipeline.read_errors(data, config.seed, config.batch_size * config.n_critic,
                                         lambda: gan.global_step)


def _restore_callbacks(gan: GAN, manifest: dict[str, Any] | None) -> None:
    """Give each stateful callback its state from ``manifest`` (or none) and the step training continues from."""
    saved = (manifest or {}).get("callbacks", {})
    for name, callback in gan.state_callbacks.items():
        callback.set_state(saved.get(name, {}), gan.global_step)


def _roll_back(gan: GAN, directory: Path, initial: dict[str, np.ndarray] | None, lr_factor: float,
               callbacks: list[Any]) -> int:
    """Restore the newest good checkpoint (else ``initial``), scale both learning rates; the step restored."""
    manifest = restore_latest(gan, directory)
    if manifest is None and initial is not None:
        restore_arrays(gan, initial)
    _restore_callbacks(gan, manifest)
    for net in ("d", "g"):  # after loading: checkpoints hold the rates and the schedules' scales
        scale_learning_rate(getattr(gan, f"{net}_optimizer"), gan.schedules.get(net), lr_factor)
    gan.reset_metrics()  # the interval means of the metrics log start again from zero
    for callback in callbacks:  # the wall-time budget is the run's, not each fit's
        if isinstance(callback, TimeBudget) and hasattr(callback, "deadline"):
            callback.seconds = max(callback.deadline - time.perf_counter(), 1e-3)
    return gan.global_step


def run_spec(path: str | Path) -> DataSpec:
    """The data spec a run trained on, as its run.json records it (a :class:`RunError` if that file is missing or damaged)."""
    file = Path(path) / "run.json"
    try:
        meta = json.loads(file.read_text())
        condition = meta["spec"].get("condition_shape")  # absent from runs written before conditions existed
        return DataSpec(tuple(meta["spec"]["shape"]), tuple(meta["spec"]["value_range"]), meta["spec"]["num_classes"],
                        None if condition is None else tuple(condition))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise RunError(f"{file} is missing or damaged ({error})") from None


def load_run(path: str | Path, *, checkpoint: str | Path | None = None, registry: Registry | None = None,
             generator: keras.Model | None = None, discriminator: keras.Model | None = None) -> Run:
    """A finished or interrupted run, restored from its newest good checkpoint (no data needed).

    ``checkpoint="best"`` restores the best-scoring one instead (``checkpoints/best.npz``, kept
    when ``evaluation.best`` is set); a path restores that file. A run trained on models passed
    from Python needs ``generator`` and ``discriminator`` again: freshly built, the same architecture.
    """
    path = Path(path)
    config = _run_config(path)
    models = python_models(generator, discriminator)
    check_models_for(path, config, models)
    registry = with_models(registry or get_registry(), models)
    spec = run_spec(path)
    keras.utils.set_random_seed(config.seed)
    gan = build_gan(config, spec, registry)
    if gan.sampler.takes_condition and (path / CONDITIONS_FILE).is_file():
        with np.load(path / CONDITIONS_FILE) as saved:
            gan.sampler.conditions = saved["conditions"]
            gan.sampler.targets = saved["images"] if "images" in saved.files else None  # absent from older runs
    if checkpoint is not None:
        file = path / "checkpoints" / BEST if str(checkpoint) == "best" else Path(checkpoint)
        if str(checkpoint) == "best" and not file.is_file():
            raise RunError(f"run {str(path)!r} has no best checkpoint ({file}): set evaluation.best and [metrics]")
        load_checkpoint(gan, file)
    elif restore_latest(gan, path / "checkpoints") is None:
        raise RunError(f"run {str(path)!r} has no usable checkpoint")
    return Run(path, config, spec, gan)
