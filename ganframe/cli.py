"""The ``ganframe`` command: a thin Typer face over the Python API.

Commands parse their flags, build a config and call the same functions a
Python user calls. ``--help``, ``--version`` and ``plugins`` never import
TensorFlow, nor does a command given a path that does not exist. Every
deliberate error is one ``error:`` message on stderr and an exit code: 2 bad
input or usage, 1 failure at run time; an interruption says where it stopped
and how to resume, exit 130.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import tomllib
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from ganframe import __version__
from ganframe.contract import CONTRACT_VERSION, KINDS
from ganframe.config import BACKENDS, check_components, check_run_dir, resolve_config
from ganframe.errors import ConfigError, GanframeError, Interrupted, UnknownComponentError, did_you_mean
from ganframe.plugins import ALIASES, get_registry, listed_kind, options_model_summary, reset_registry
from ganframe.quiet import VERBOSE_ENV

app = typer.Typer(
    name="ganframe",
    help="Train, sample and export GANs; every component is a plugin.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _fail(message: str, code: int, label: str = "error: ") -> None:
    typer.echo(f"{label}{message}", err=True)
    raise typer.Exit(code)


def reports_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn ganframe's deliberate errors into one message and the exit code they carry."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except Interrupted as error:  # the user's own doing, not an error: where it stopped and how to go on
            _fail(str(error), error.exit_code, label="")
        except GanframeError as error:
            _fail(str(error), error.exit_code)
        except BrokenPipeError:  # the reader left (`ganframe plugins | head -1`): stop quietly, as Unix tools do
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
            raise typer.Exit(141)  # 128 + SIGPIPE, what a shell reports for a tool its pipe stopped
        except OSError as error:  # the file system at run time (no space, no permission): a message, not a traceback
            where = f" ({error.filename})" if error.filename else ""
            _fail(f"file system error{where}: {error.strerror or error}", 1)
        except KeyboardInterrupt:
            _fail("interrupted", 130, label="")

    return wrapper


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ganframe {__version__} (plugin contract {CONTRACT_VERSION})")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version and exit."),
    strict: bool = typer.Option(False, "--strict", help="Make any plugin failure fatal (same as GANFRAME_STRICT_PLUGINS=1)."),
    verbose: bool = typer.Option(False, "--verbose", help="Show TensorFlow's start-up and info log on stderr "
                                                          "(same as GANFRAME_VERBOSE=1)."),
) -> None:
    """ganframe: a plugin-based GAN framework on TensorFlow and Keras 3."""
    if strict:
        os.environ["GANFRAME_STRICT_PLUGINS"] = "1"
        reset_registry()  # a registry loaded earlier in this process was not strict
    if verbose:
        os.environ[VERBOSE_ENV] = "1"  # read when TensorFlow is first imported (ganframe.quiet)


def _key_values(items: list[str] | None, flag: str) -> dict[str, Any]:
    """``["width=64", "widths=[8, 16]", "act=tanh"]`` -> values parsed as TOML, else kept as text."""
    parsed: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} {item!r}: expected KEY=VALUE, e.g. {flag} width=64")
        try:
            parsed[key.strip()] = tomllib.loads(f"value = {raw}")["value"]
        except (tomllib.TOMLDecodeError, RecursionError):  # tomllib recurses into nested arrays
            parsed[key.strip()] = raw
    return parsed


#: Options that hold a penalty's weight, the first a penalty has: gradient_penalty's lambda, R1's and R2's gamma.
PENALTY_WEIGHTS = ("weight", "gamma")


def _penalties(items: list[str] | None, registry: Any) -> dict[str, Any]:
    """``--penalty r1`` and ``--penalty gradient_penalty=10`` as overrides: WEIGHT goes to the penalty's weight option.

    A name alone adds the penalty with its default options, as ``--augment`` does an augmentation.
    """
    losses = registry.components["loss"]
    weights = {name: option for name, component in losses.items()
               if (option := next((o for o in PENALTY_WEIGHTS if o in component.options.model_fields), None))}
    overrides: dict[str, Any] = {}
    for item in items or []:
        name, sep, raw = (part.strip() for part in item.partition("="))
        if name not in losses:
            message = f"unknown penalty {name!r}; available: {', '.join(sorted(weights)) or '(none)'}"
            close = did_you_mean(name, weights, {alias: target for alias, (target, _) in ALIASES["loss"].items()})
            raise UnknownComponentError(message + (f" (did you mean {close!r}?)" if close else ""))
        if not sep:
            overrides[f"penalties.{name}"] = {}
            continue
        if name not in weights:
            raise ConfigError(f"--penalty {item!r}: {name!r} has no weight option ({' or '.join(PENALTY_WEIGHTS)}); "
                              f"give its options with --set penalties.{name}.KEY=VALUE")
        try:
            overrides[f"penalties.{name}.{weights[name]}"] = float(raw)
        except ValueError:
            raise ConfigError(f"--penalty {item!r}: the weight {raw!r} is not a number, e.g. --penalty {name}=10") from None
    return overrides


#: Panels of `ganframe train --help`; options without one (--config, --help) come first.
DATA, MODEL, TRAINING, OUTPUT, ADVANCED = "Data", "Model", "Training", "Output and evaluation", "Advanced"


@app.command()
@reports_errors
def train(
    config: Optional[Path] = typer.Option(None, "--config", "-c", metavar="TOML", help="Run config file; flags override it."),
    arch: Optional[str] = typer.Option(None, metavar="NAME", rich_help_panel=MODEL,
                                       help="Architecture (see `ganframe plugins`). Default: dense."),
    arch_option: Optional[list[str]] = typer.Option(None, "--arch-option", metavar="KEY=VALUE", rich_help_panel=MODEL,
                                                    help="Architecture option (repeatable)."),
    conditional: bool = typer.Option(False, "--conditional", rich_help_panel=MODEL,
                                     help="Class-conditional G and D (labelled data; arch option conditional = true)."),
    loss: Optional[str] = typer.Option(None, metavar="NAME", rich_help_panel=MODEL,
                                       help="Adversarial loss. Default: nonsaturating."),
    loss_option: Optional[list[str]] = typer.Option(None, "--loss-option", metavar="KEY=VALUE", rich_help_panel=MODEL,
                                                    help="Loss option (repeatable)."),
    penalty: Optional[list[str]] = typer.Option(None, "--penalty", metavar="NAME", rich_help_panel=MODEL,
                                                help="Add a penalty: r1, r2, gradient_penalty, or a plugin's; "
                                                     "NAME=WEIGHT sets its gamma or lambda. Repeatable."),
    data: Optional[str] = typer.Option(None, metavar="NAME", rich_help_panel=DATA,
                                       help="mnist, fashion_mnist, cifar10, digits, npz, folder, or a plugin's. Default: mnist."),
    data_option: Optional[list[str]] = typer.Option(None, "--data-option", metavar="KEY=VALUE", rich_help_panel=DATA,
                                                    help="Dataset option (repeatable)."),
    data_dir: Optional[Path] = typer.Option(None, metavar="DIR", rich_help_panel=DATA,
                                            help="Local data directory. Default: config data_dir, else GANFRAME_DATA_DIR."),
    pairs: Optional[str] = typer.Option(None, "--pairs", metavar="DERIVE", rich_help_panel=DATA,
                                        help="Pair each image with a condition made from it, for image-to-image G: "
                                             "downscale, mask, edges or grayscale (config pairs.derive). Default: none."),
    augment: Optional[list[str]] = typer.Option(None, "--augment", metavar="NAME", rich_help_panel=DATA,
                                                help="Apply this augmentation (a plugin's, e.g. diffaugment) to real "
                                                     "and fake images. Repeatable."),
    steps: Optional[int] = typer.Option(None, metavar="N", rich_help_panel=TRAINING,
                                        help="Train steps (one generator update each). Default: 10000."),
    epochs: Optional[int] = typer.Option(None, metavar="N", rich_help_panel=TRAINING,
                                         help="Train for this many passes over the data instead of --steps."),
    max_time: Optional[str] = typer.Option(None, metavar="TIME", rich_help_panel=TRAINING,
                                           help="Wall-time budget, e.g. 90s, 15m, 1h30m. Default: none."),
    batch_size: Optional[int] = typer.Option(None, metavar="N", rich_help_panel=TRAINING,
                                             help="Images per batch. Default: 128."),
    n_critic: Optional[int] = typer.Option(None, metavar="N", rich_help_panel=TRAINING,
                                           help="Discriminator steps per generator step. Default: 1."),
    lr: Optional[float] = typer.Option(None, metavar="RATE", rich_help_panel=TRAINING,
                                       help="Learning rate of both optimizers. Default: 2e-4."),
    g_lr: Optional[float] = typer.Option(None, "--g-lr", metavar="RATE", rich_help_panel=TRAINING,
                                         help="Generator's learning rate; wins over --lr."),
    d_lr: Optional[float] = typer.Option(None, "--d-lr", metavar="RATE", rich_help_panel=TRAINING,
                                         help="Discriminator's learning rate; wins over --lr."),
    ema: Optional[float] = typer.Option(None, metavar="DECAY", rich_help_panel=TRAINING,
                                        help="Keep an average of G's weights with this decay (e.g. 0.999) to "
                                             "sample, evaluate and export. Default: none."),
    seed: Optional[int] = typer.Option(None, metavar="N", rich_help_panel=TRAINING,
                                       help="Random seed; a seeded run is reproducible. Default: 0."),
    out: Optional[Path] = typer.Option(None, metavar="DIR", rich_help_panel=OUTPUT,
                                       help="Run directory. Default: runs/ARCH-DATA-TIME."),
    resume: Optional[Path] = typer.Option(None, metavar="RUN", rich_help_panel=OUTPUT,
                                          help="Continue the run in this directory from its last checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", rich_help_panel=OUTPUT,
                                   help="Replace the run in a non-empty --out directory."),
    sample_every: Optional[int] = typer.Option(None, metavar="N", rich_help_panel=OUTPUT,
                                               help="Steps between sample grids (0: off). Default: 500."),
    checkpoint_every: Optional[int] = typer.Option(None, metavar="N", rich_help_panel=OUTPUT,
                                                   help="Steps between checkpoints. Default: 1000."),
    log_every: Optional[int] = typer.Option(None, metavar="N", rich_help_panel=OUTPUT,
                                            help="Steps between metrics.csv rows (0: off). Default: 50."),
    metric: Optional[list[str]] = typer.Option(None, "--metric", metavar="NAME", rich_help_panel=OUTPUT,
                                               help="Score samples with this metric during training "
                                                    "(evaluations.csv). Repeatable."),
    eval_every: Optional[int] = typer.Option(None, metavar="N", rich_help_panel=OUTPUT,
                                             help="Steps between evaluations of --metric (0: at the end). Default: 1000."),
    health_every: Optional[int] = typer.Option(None, metavar="N", rich_help_panel=OUTPUT,
                                               help="Steps between health probes (0: off). Default: 500, or a "
                                                    "tenth of a shorter run."),
    jit: Optional[bool] = typer.Option(None, "--jit/--no-jit", rich_help_panel=ADVANCED,
                                       help="XLA-compile the train step. Default: on."),
    steps_per_execution: Optional[int] = typer.Option(None, metavar="N", rich_help_panel=ADVANCED,
                                                      help="Steps per compiled call. Default: 1."),
    strategy: Optional[str] = typer.Option(None, metavar="NAME", rich_help_panel=ADVANCED,
                                           help="default (one device, XLA), mirrored (this machine's devices) or "
                                                "multiworker (the machines in TF_CONFIG; tensorflow only). Default: default."),
    backend: Optional[str] = typer.Option(None, metavar="NAME", rich_help_panel=ADVANCED,
                                          help="The Keras backend that trains: tensorflow or jax. Default: "
                                               "KERAS_BACKEND, else tensorflow."),
    precision: Optional[str] = typer.Option(None, metavar="NAME", rich_help_panel=ADVANCED,
                                            help="The networks' arithmetic: float32, mixed_float16 (with loss "
                                                 "scaling) or mixed_bfloat16. Default: float32."),
    set_: Optional[list[str]] = typer.Option(None, "--set", metavar="KEY=VALUE", rich_help_panel=ADVANCED,
                                             help="Any config field, KEY dotted (e.g. d_optimizer.beta_1=0.9), VALUE "
                                                  "read as TOML. Repeatable; wins over the other flags."),
) -> None:
    """Train a GAN, e.g. `ganframe train --arch dense --data mnist --steps 3000`."""
    overrides: dict[str, Any] = {
        "arch": arch,
        "arch_options.conditional": True if conditional else None,
        "data": data,
        "data_dir": data_dir,
        "pairs.derive": pairs,
        "loss": loss,
        "steps": steps,
        "epochs": epochs,
        "max_time": max_time,
        "batch_size": batch_size,
        "n_critic": n_critic,
        "d_optimizer.learning_rate": lr if d_lr is None else d_lr,
        "g_optimizer.learning_rate": lr if g_lr is None else g_lr,
        "ema": ema,
        "seed": seed,
        "out": out,
        "jit_compile": jit,
        "steps_per_execution": steps_per_execution,
        "strategy": strategy,
        "precision": precision,
        "backend": backend,
        "callbacks.samples.every": sample_every,
        "callbacks.checkpoint.every": checkpoint_every,
        "callbacks.metrics.every": log_every,
        "evaluation.every": eval_every,
        "health.every": health_every,
        **{f"augmentations.{name}": {} for name in augment or ()},
        **{f"metrics.{name}": {} for name in metric or ()},
    }
    for prefix, items, flag in (("arch_options", arch_option, "--arch-option"),
                                ("data_options", data_option, "--data-option"),
                                ("loss_options", loss_option, "--loss-option")):
        overrides.update({f"{prefix}.{k}": v for k, v in _key_values(items, flag).items()})
    registry = get_registry()
    overrides.update(_penalties(penalty, registry))
    overrides.update(_key_values(set_, "--set"))

    if resume is not None:
        if config is not None:
            raise ConfigError("--resume continues a run with its saved config; --config cannot be combined with it")
        check_run_dir(resume)  # before TensorFlow loads
        run_config: Any = overrides
    else:
        run_config = resolve_config(config, overrides, registry)
        check_components(run_config, registry)  # before importing TensorFlow: a typo costs milliseconds
    failed = [record.label for record in registry.plugins if record.status == "failed"]
    if failed:  # not fatal (unless --strict), but never silent
        typer.echo(f"warning: {len(failed)} plugin(s) failed to load and are skipped (see `ganframe plugins`): "
                   f"{', '.join(failed)}", err=True)
    _select_backend(run_config.get("backend") if isinstance(run_config, dict) else run_config.backend)
    typer.echo(f"loading {'JAX' if os.environ.get('KERAS_BACKEND') == 'jax' else 'TensorFlow'} ...", err=True)
    from ganframe.run import train as train_run

    run = train_run(run_config, resume=resume, overwrite=overwrite, registry=registry)
    typer.echo(run.stopped or f"run finished at step {run.step}: {run.path}")
    samples = sorted((run.path / "samples").glob("step_*.png"))
    if samples:
        typer.echo(f"latest samples: {samples[-1]}")
    typer.echo(f"more samples:   ganframe sample {run.path} --n 64 --out samples.png")


def _backend_of_run(run: Path) -> None:
    """Load Keras on the backend ``run`` trained on (its run.json), unless ``KERAS_BACKEND`` names one: a JAX run
    then loads where TensorFlow is not installed. Checkpoints are the same on both backends."""
    if "KERAS_BACKEND" in os.environ or "keras" in sys.modules:  # chosen already
        return
    try:
        backend = json.loads((run / "run.json").read_text()).get("backend")
    except (OSError, ValueError, AttributeError):
        return  # load_run reports a missing or damaged run.json
    if backend in BACKENDS:
        os.environ["KERAS_BACKEND"] = backend


def _select_backend(name: str | None) -> None:
    """Have Keras load on backend ``name`` (when given): it reads ``KERAS_BACKEND`` once, on first import."""
    if name is None:
        return
    if name not in BACKENDS:
        raise ConfigError(f"--backend: got {name!r}; choose one of {', '.join(BACKENDS)}")
    os.environ["KERAS_BACKEND"] = name


@app.command()
@reports_errors
def plugins(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    show_options: bool = typer.Option(False, "--options", help="Show each component's options with types and defaults."),
) -> None:
    """List plugins, the components each registers, and the ones that failed and why."""
    registry = get_registry()
    if as_json:
        listing = {
            "ganframe": __version__,
            "contract": CONTRACT_VERSION,
            "plugins": [
                {
                    "name": record.name,
                    "distribution": record.distribution,
                    "version": record.version,
                    "status": record.status,
                    "error": record.error,
                    "components": [
                        {
                            "kind": kind,  # the hook it registers through: where the registry keeps it
                            "listed_as": listed_kind(registry.components[kind][name]),  # a loss or a penalty
                            "name": name,
                            "description": registry.components[kind][name].description,
                            "options": options_model_summary(registry.components[kind][name].options),
                        }
                        for kind, name in record.components
                    ],
                }
                for record in registry.plugins
            ],
        }
        typer.echo(json.dumps(listing, indent=2))
        return
    typer.echo(f"ganframe {__version__} (plugin contract {CONTRACT_VERSION})")
    for record in registry.plugins:
        status = {"loaded": "", "disabled": "  [disabled]", "failed": "  [FAILED]"}[record.status]
        typer.echo(f"\n{record.name}  ({record.distribution} {record.version}){status}")
        if record.error:
            typer.echo(f"    error: {record.error}")
        for kind in KINDS:
            for component_kind, name in record.components:
                if component_kind == kind:
                    component = registry.components[kind][name]
                    typer.echo(f"    {listed_kind(component):<18} {name:<14} {component.description}")
                    if show_options:
                        for option, summary in options_model_summary(component.options).items():
                            typer.echo(f"        {option}: {summary}")
    failed = [record for record in registry.plugins if record.status == "failed"]
    if failed:
        typer.echo(f"\n{len(failed)} plugin(s) failed to load; the others work. Fix or disable them "
                   "(GANFRAME_DISABLE_PLUGINS=name,...).", err=True)


def _check_output(out: Path, suffixes: dict[str, str]) -> None:
    """Refuse an ``--out`` that cannot become such a file before loading a run (and TensorFlow) for nothing."""
    if out.suffix.lower() not in suffixes:
        allowed = " or ".join(f"{suffix} ({what})" for suffix, what in suffixes.items())
        raise ConfigError(f"--out {str(out)!r}: the extension must be {allowed}")
    if out.is_dir():
        raise ConfigError(f"--out {str(out)!r} is a directory; give a file name, e.g. --out {out / ('out' + next(iter(suffixes)))}")
    blocking = next((parent for parent in out.parents if parent.exists() and not parent.is_dir()), None)
    if blocking is not None:
        raise ConfigError(f"--out {str(out)!r}: {str(blocking)!r} is a file, not a directory; choose another path")


def _load_run(run: Path, checkpoint: str | None = None) -> Any:
    check_run_dir(run)  # before TensorFlow loads: a wrong path costs milliseconds
    _backend_of_run(run)
    from ganframe.run import load_run

    return load_run(run, checkpoint=checkpoint)


CHECKPOINT_HELP = "Which checkpoint: 'best' (by evaluation.best), or a checkpoint file. Default: the newest good one."


@app.command()
@reports_errors
def sample(
    run: Path = typer.Argument(..., metavar="RUN", help="Run directory."),
    n: int = typer.Option(64, "--n", min=1, max=100_000, help="Number of images."),
    out: Path = typer.Option(Path("samples.png"), "--out", "-o", help=".png for a grid, .npz for the raw array."),
    seed: int = typer.Option(0, help="Noise seed; the same seed gives the same images."),
    checkpoint: Optional[str] = typer.Option(None, help=CHECKPOINT_HELP),
    class_: Optional[int] = typer.Option(None, "--class", help="Only this class (a conditional run's, 0 .. classes-1). "
                                                               "Default: a grid with one class per row."),
) -> None:
    """Generate images from a run's latest checkpoint."""
    _check_output(out, {".png": "a grid", ".npz": "the array"})
    path = _load_run(run, checkpoint).save_samples(out, n=n, seed=seed, label=class_)
    typer.echo(f"wrote {n} samples{'' if class_ is None else f' of class {class_}'} to {path}")


@app.command()
@reports_errors
def translate(
    run: Path = typer.Argument(..., metavar="RUN", help="Run directory of an image-conditioned GAN (e.g. pix2pix)."),
    input_: Path = typer.Option(..., "--input", "-i", help="A folder of images (subfolders too) or an .npz/.npy "
                                                            "(array x, images, x_train or its only one): uint8, "
                                                            "or floats in [0, 1]."),
    out: Path = typer.Option(..., "--out", "-o", help="A folder (one PNG per input), an .npz (array 'images') or "
                                                       "a .png grid of input | output rows."),
    derive: bool = typer.Option(False, "--derive", help="The inputs are whole images: make their conditions as the "
                                                        "run's [pairs] does, and show the originals in a grid."),
    seed: int = typer.Option(0, help="Noise seed, for generators that take noise besides the condition."),
    checkpoint: Optional[str] = typer.Option(None, help=CHECKPOINT_HELP),
) -> None:
    """Apply a run's generator to your own condition images."""
    from ganframe import translate as translation

    if out.suffix and out.suffix.lower() not in (".npz", ".png"):
        raise ConfigError(f"--out {str(out)!r}: give a folder, an .npz file or a .png grid")
    if out.suffix:
        _check_output(out, {out.suffix.lower(): "the output"})
    check_run_dir(run)
    inputs = translation.read_inputs(input_)  # before the run: a bad file or header costs no TensorFlow
    loaded = _load_run(run, checkpoint)
    conditions, originals, outputs = translation.translate(loaded, inputs, derive=derive, seed=seed)
    written = translation.write_outputs(out, conditions, originals, outputs, inputs.names, loaded.spec.value_range)
    typer.echo(f"translated {len(outputs)} images: wrote {written}")


@app.command()
@reports_errors
def export(
    run: Path = typer.Argument(..., metavar="RUN", help="Run directory."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Where to write the .keras file. Default: RUN/generator.keras."),
    checkpoint: Optional[str] = typer.Option(None, help=CHECKPOINT_HELP),
) -> None:
    """Write a run's generator as a standalone .keras model."""
    if out is not None:
        _check_output(out, {".keras": "a Keras model"})
    path = _load_run(run, checkpoint).export(out)
    typer.echo(f"wrote the generator to {path} (load it with keras.saving.load_model)")


def _metric_options(names: list[str], extractor: str | None, items: list[str] | None, registry: Any) -> dict[str, dict]:
    """Each metric's options from ``--extractor`` (for metrics that take one) and ``--metric-option METRIC.KEY=VALUE``."""
    options: dict[str, dict[str, Any]] = {name: {} for name in names}
    for name in names:
        if extractor is not None and "extractor" in registry.get("metric", name).options.model_fields:
            options[name]["extractor"] = extractor
    for key, value in _key_values(items, "--metric-option").items():
        name, dot, field = key.partition(".")
        if not dot or name not in options:
            raise ConfigError(f"--metric-option {key}={value}: expected METRIC.KEY=VALUE for one of the --metric "
                              f"names ({', '.join(names)}), e.g. kid.subsets=10")
        options[name][field] = value
    for name, values in options.items():
        registry.options("metric", name, values)
    return options


def _print_scores(evaluation: Any) -> None:
    """The scores as a table (rich when installed), then what they were measured on."""
    rows = [(key, f"{value:.6g}", "higher" if evaluation.higher_is_better[key] else "lower")
            for key, value in evaluation.scores.items()]
    protocol = evaluation.protocol
    real, fake = protocol["real"], protocol["fake"]
    extractors = sorted({f"{m.get('extractor')} (weights sha256 {str(m.get('weights_hash'))[:12]})"
                         for m in protocol["metrics"].values() if m.get("extractor")})
    options = "".join(f" {key}={value}" for key, value in real["options"].items())
    where = f" {fake['path']}" if "path" in fake else ""
    made = (f" translated the conditions of those {fake['images']} real images: {fake['conditions']}"
            if "conditions" in fake else f", {fake['images']} images")
    notes = [f"real: {real['data']}{options}, {real['images']} images ({real['subset']})",
             f"fake: {fake['source']}{where}{made}",
             *(f"features: {text}" for text in extractors)]
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        width = max(len(row[0]) for row in rows)
        typer.echo("\n".join(f"{key:<{width}}  {value:>12}  ({better} is better)" for key, value, better in rows))
    else:
        table = Table("score", "value", "better")
        for row in rows:
            table.add_row(*row)
        Console(highlight=False).print(table)
    typer.echo("\n".join(notes))


@app.command()
@reports_errors
def evaluate(
    samples: Path = typer.Argument(..., metavar="RUN_OR_SAMPLES", help="A run directory (its generator makes --n "
                                   "images), an .npz (key images, x or the only array) or .npy file, or a folder of PNG/JPEG images."),
    metric: Optional[list[str]] = typer.Option(None, "--metric", "-m", help="fid, kid, inception_score, precision_recall, "
                                                                            "density_coverage, or a plugin's. Repeatable. Default: fid."),
    against: str = typer.Option("mnist:test", help="The real data: a dataset NAME or NAME:SPLIT, e.g. mnist:train."),
    against_option: Optional[list[str]] = typer.Option(None, "--against-option", help="Real dataset option KEY=VALUE (repeatable)."),
    data_dir: Optional[Path] = typer.Option(None, help="The real data's directory (else, against a run's own data set, "
                                                       "the run's data_dir; else GANFRAME_DATA_DIR)."),
    extractor: Optional[str] = typer.Option(None, help="Feature extractor of every metric that has one: mnist (default) or inception."),
    metric_option: Optional[list[str]] = typer.Option(None, "--metric-option", help="METRIC.KEY=VALUE, e.g. kid.subsets=10 (repeatable)."),
    n: int = typer.Option(10_000, "--n", min=2, max=100_000, help="Images per set (fewer if either set has fewer)."),
    seed: int = typer.Option(0, help="Seed of the run's noise and of the real subset."),
    checkpoint: Optional[str] = typer.Option(None, help=CHECKPOINT_HELP),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Where to write the scores and their protocol (JSON). "
                                                                "Default: RUN/scores.json (shown by `ganframe report RUN`), "
                                                                "else scores.json."),
) -> None:
    """Score a run's samples, or images in a file or folder, against real data, e.g. `ganframe evaluate RUN --metric fid --metric kid`."""
    from ganframe.images import samples_kind
    from ganframe.report import SCORES_FILE

    if out is None:
        out = samples / SCORES_FILE if (samples / "config.toml").is_file() else Path(SCORES_FILE)
    _check_output(out, {".json": "scores and their protocol"})
    registry = get_registry()
    options = _metric_options(metric or ["fid"], extractor, metric_option, registry)
    samples_kind(samples)  # a missing or unusable path is refused before TensorFlow loads
    if (samples / "config.toml").is_file():
        _backend_of_run(samples)
    typer.echo(f"loading {'JAX' if os.environ.get('KERAS_BACKEND') == 'jax' else 'TensorFlow'} ...", err=True)
    from ganframe.evaluation import evaluate as evaluate_samples

    result = evaluate_samples(samples, against, options, n=n, against_options=_key_values(against_option, "--against-option"),
                              data_dir=data_dir, seed=seed, checkpoint=checkpoint, registry=registry, out=out)
    _print_scores(result)
    typer.echo(f"wrote the scores and their protocol to {out}")


@app.command()
@reports_errors
def report(
    run: Path = typer.Argument(..., metavar="RUN", help="Run directory."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for report.html and its figures. Default: RUN/report."),
) -> None:
    """Write a self-contained HTML report of a run: samples over time, losses, scores, health, config."""
    from ganframe.report import write_report  # matplotlib only for this command

    path = write_report(run, out)
    typer.echo(f"wrote the report to {path} (open it in a browser; the folder {path.parent} is self-contained)")


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


@app.command()
@reports_errors
def new(
    name: str = typer.Argument(..., metavar="NAME", help="Distribution name, e.g. my-gan; the package is my_gan."),
    template: str = typer.Option("project", "--template", "-t", help="project (a GAN project with a run config) or plugin (a plugin package)."),
    author: Optional[str] = typer.Option(None, help="Author for pyproject.toml. Default: none (asked when interactive)."),
    description: Optional[str] = typer.Option(None, help="One-line description. Default: generic (asked when interactive)."),
    kinds: Optional[str] = typer.Option(None, help="Component kinds to include, comma-separated, from: architecture, "
                                                   "dataset, loss, callback, augmentation, metric, feature_extractor. Default: architecture,dataset "
                                                   "(project), architecture,dataset,loss,callback (plugin)."),
    directory: Path = typer.Option(Path("."), "--dir", help="Parent directory; the project goes in DIR/NAME."),
    force: bool = typer.Option(False, "--force", help="Write into a non-empty directory (overwrites template files, deletes nothing)."),
) -> None:
    """Create a project (or, with --template plugin, a plugin package) from ganframe's templates."""
    from ganframe import scaffold  # jinja2 only for this command

    scaffold.check_name(name)  # before asking anything
    if _interactive():
        if author is None:
            author = typer.prompt("Author", default="", show_default=False)
        if description is None:
            description = typer.prompt("Description", default=f"A ganframe {template}: {name}.")
        if kinds is None and template == "plugin":
            kinds = typer.prompt("Component kinds", default=",".join(scaffold.DEFAULT_KINDS["plugin"]))
    made = scaffold.render(name, template, parent=directory, author=author or "", description=description, kinds=kinds)
    written = scaffold.write(made, force=force)
    typer.echo(f"created {template} {name!r} in {made.target} ({len(written)} files; package {made.variables['module']}, "
               f"components: {', '.join(made.variables['components'].values()) or 'none'})")
    typer.echo("next:")
    typer.echo(f"  cd {made.target}")
    typer.echo("  pip install -e .")
    if template == "project":
        typer.echo("  ganframe train --config ganframe.toml")
    else:
        typer.echo("  ganframe plugins")
    typer.echo("  python -m pytest")


def main() -> None:
    """Console-script entry point."""
    app(prog_name="ganframe")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
