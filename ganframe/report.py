"""``ganframe report RUN``: a run you understand by looking at it.

:func:`write_report` turns a run directory into one HTML page and its PNG figures, in one folder
(default ``RUN/report/``) that refers to nothing outside itself, so it can be copied, mailed or
archived as it is: sample grids over time, the losses (``metrics.csv``), the scores and their
protocol (``evaluations.csv``/``.json`` during training, ``scores.json`` from ``ganframe evaluate
RUN``), the training-health probes and their warnings
(``health.csv``/``.json``), divergence rollbacks, the run's metadata (``run.json``) and its
resolved config. A short or old run, or one with a callback switched off, lacks some of these
files: the report says which and why that may be, rather than failing, and treats a file it
cannot parse the same way. Everything taken from the files is HTML-escaped; every file is
written atomically. It needs matplotlib (Agg, no display), never TensorFlow.
"""

from __future__ import annotations

import csv
import html
import json
import math
import re
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ganframe import __version__
from ganframe.config import check_run_dir
from ganframe.errors import ConfigError
from ganframe.files import atomic_write

REPORT_FILE = "report.html"
#: Where ``ganframe evaluate RUN`` writes its scores and their protocol, and where the report finds them.
SCORES_FILE = "scores.json"
FIGURES = "figures"
#: At most this many sample grids, evenly spaced over the run, the first and the last included.
MAX_GRIDS = 8
#: What the report writes into ``figures/``; older files of these names that this report does not use are removed.
OWN_FIGURE = re.compile(r"^(losses|scores|health|samples_step_\d+)\.png$")
SAMPLE_FILE = re.compile(r"^step_(\d+)\.png$")

#: Why a run may lack a file, shown in place of what it would have given.
MISSING = {
    "run.json": "the run's metadata (versions, plugins, data shape) was never written: the run stopped before training began",
    "metrics.csv": "no loss log: callbacks.metrics.every = 0, or the run stopped before its first row",
    "evaluations.csv": "no scores during training: the run had no [metrics] (e.g. ganframe train --metric fid)",
    "evaluations.json": "the scores' protocol (extractor, sample counts) is unknown",
    "health.csv": "no health probes: health.every = 0, the run stopped before the first probe, or it predates them",
    "health.json": "no health warnings or summary",
    "samples": "no sample grids: callbacks.samples.every = 0, or the run stopped before the first grid",
}

#: Panels of the loss and health figures: title, columns, fixed y-limits. Other columns share one last panel.
LOSS_PANELS = (
    ("losses", ("d_loss", "g_loss"), None),
    ("D's raw output, mean on real and generated images", ("d_real", "d_fake"), None),
    ("speed (steps/s; the first interval includes compiling)", ("steps_per_s",), None),
)
HEALTH_PANELS = (
    ("D's accuracy on real and on generated images", ("d_acc_real", "d_acc_fake"), (-0.03, 1.03)),
    ("D's margin: mean D(real) - mean D(generated)", ("d_margin",), None),
    ("gradient norms of D's and G's losses", ("d_grad_norm", "g_grad_norm"), None),
    ("sample diversity (generated / real pairwise distance)", ("diversity",), None),
    ("class coverage (effective number of classes)", ("coverage",), None),
    ("relative weight change since the previous probe", ("d_change", "g_change"), None),
)
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
MARK_COLOURS = ("#e6550d", "#756bb1", "#31a354", "#de2d26", "#3182bd", "#636363")


# -- reading the run ---------------------------------------------------------------------------------------


@dataclass
class StepLog:
    """A CSV log by step (metrics.csv, evaluations.csv, health.csv), each column a float array (empty cell: NaN)."""

    columns: dict[str, np.ndarray]

    @property
    def steps(self) -> np.ndarray:
        return self.columns["step"]

    def has(self, name: str) -> bool:
        """The column exists and holds at least one finite value."""
        return name in self.columns and bool(np.isfinite(self.columns[name]).any())

    def last(self, name: str) -> tuple[int, float] | None:
        """(step, value) of the column's last finite value."""
        finite = np.flatnonzero(np.isfinite(self.columns.get(name, np.array([]))))
        return None if not len(finite) else (int(self.steps[finite[-1]]), float(self.columns[name][finite[-1]]))


def read_step_log(path: Path) -> StepLog:
    """Parse a step log; a file that is not one (no ``step`` column, a cell that is no number) raises ValueError."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    if not rows or not rows[0] or rows[0][0] != "step":
        raise ValueError("its first line is not a header starting with 'step'")
    header, body = rows[0], [row for row in rows[1:] if row]
    values = np.full((len(body), len(header)), np.nan)
    for line, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise ValueError(f"line {line} has {len(row)} cells, the header {len(header)}")
        try:
            values[line - 2] = [float(cell) if cell.strip() else math.nan for cell in row]
        except ValueError as error:
            raise ValueError(f"line {line}: {error}") from None
    return StepLog({name: values[:, index] for index, name in enumerate(header)})


def _read_object(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, found {type(data).__name__}")
    return data


def _read_scores(path: Path) -> dict[str, Any]:
    data = _read_object(path)
    scores, higher = data.get("scores"), data.get("higher_is_better", {})
    if not isinstance(scores, dict) or not all(isinstance(value, (int, float)) for value in scores.values()):
        raise ValueError("'scores' is not an object of numbers")
    if not isinstance(higher, dict) or not isinstance(data.get("protocol", {}), dict):
        raise ValueError("'higher_is_better' or 'protocol' is not an object")
    return data


def _read_health(path: Path) -> dict[str, Any]:
    data = _read_object(path)
    warnings = data.get("warnings", [])
    if not isinstance(warnings, list) or not all(isinstance(item, dict) for item in warnings):
        raise ValueError("'warnings' is not a list of objects")
    return data


@dataclass
class RunFiles:
    """What a run directory holds, each piece None when missing or unreadable, and notes on what is not there."""

    path: Path
    config_text: str
    config: dict[str, Any]
    meta: dict[str, Any] | None
    metrics: StepLog | None
    evaluations: StepLog | None
    protocol: dict[str, Any] | None
    evaluated: dict[str, Any] | None  # scores.json of ``ganframe evaluate RUN``; no note when absent
    health: StepLog | None
    health_info: dict[str, Any] | None
    grids: list[tuple[int, Path]]
    notes: list[tuple[str, str]] = field(default_factory=list)

    @property
    def warnings(self) -> list[dict[str, Any]]:
        return list((self.health_info or {}).get("warnings", []))

    @property
    def rollbacks(self) -> list[dict[str, Any]]:
        rollbacks = (self.meta or {}).get("rollbacks", [])
        return [item for item in rollbacks if isinstance(item, dict)] if isinstance(rollbacks, list) else []

    @property
    def last_step(self) -> int | None:
        steps = [int(log.steps.max()) for log in (self.metrics, self.evaluations, self.health) if log and len(log.steps)]
        steps += [step for step, _ in self.grids]
        return max(steps) if steps else None


def read_run(run_dir: Path) -> RunFiles:
    """Everything the report shows, from ``run_dir``; a missing or damaged file becomes a note, not an error."""
    check_run_dir(run_dir)
    notes: list[tuple[str, str]] = []

    def load(name: str, read: Callable[[Path], Any]) -> Any:
        path = run_dir / name
        if not path.exists():
            notes.append((name, MISSING[name]))
            return None
        try:
            return read(path)
        except (OSError, ValueError, csv.Error) as error:  # JSON, TOML and decoding errors are ValueErrors
            notes.append((name, f"cannot be read, so it is left out ({error})"))
            return None

    config_text = (run_dir / "config.toml").read_text(encoding="utf-8", errors="replace")
    try:
        config = tomllib.loads(config_text)
    except tomllib.TOMLDecodeError as error:
        notes.append(("config.toml", f"is not valid TOML ({error}); shown as it is"))
        config = {}
    grids = sorted((int(match.group(1)), path) for path in (run_dir / "samples").glob("step_*.png")
                   if (match := SAMPLE_FILE.match(path.name)))
    if not grids:
        notes.append(("samples/", MISSING["samples"]))
    return RunFiles(
        path=run_dir,
        config_text=config_text,
        config=config,
        meta=load("run.json", _read_object),
        metrics=load("metrics.csv", read_step_log),
        evaluations=load("evaluations.csv", read_step_log),
        protocol=load("evaluations.json", _read_object),
        evaluated=load(SCORES_FILE, _read_scores) if (run_dir / SCORES_FILE).exists() else None,
        health=load("health.csv", read_step_log),
        health_info=load("health.json", _read_health),
        grids=grids,
        notes=notes,
    )


# -- figures -----------------------------------------------------------------------------------------------


@dataclass
class Series:
    label: str
    steps: np.ndarray
    values: np.ndarray
    spread: np.ndarray | None = None  # drawn as a band of ± this


@dataclass
class Panel:
    title: str
    series: list[Series]
    limits: tuple[float, float] | None = None
    better: str | None = None  # "higher" or "lower": the best point gets a star


@dataclass(frozen=True)
class Mark:
    """A vertical line at a step on every panel: a health warning or a rollback, labelled as in the page's tables."""

    step: float
    label: str
    kind: str


def _panels(log: StepLog, layout: Sequence[tuple[str, Sequence[str], tuple[float, float] | None]]) -> list[Panel]:
    """The layout's panels that have data, then one panel with the log's other columns."""
    panels, used = [], {"step"}
    for title, names, limits in layout:
        present = [name for name in names if log.has(name)]
        used.update(names)
        if present:
            panels.append(Panel(title, [Series(name, log.steps, log.columns[name]) for name in present], limits))
    others = [name for name in log.columns if name not in used and log.has(name)]
    if others:
        panels.append(Panel("other logged values", [Series(name, log.steps, log.columns[name]) for name in others]))
    return panels


def _direction(key: str, protocol: dict[str, Any] | None) -> str | None:
    """'higher' or 'lower' is better for a score, from the protocol of the metric that reports it."""
    metrics = (protocol or {}).get("metrics")
    for name, entry in metrics.items() if isinstance(metrics, dict) else ():
        if isinstance(entry, dict) and "higher_is_better" in entry and (
                key == name or key.startswith(name + "_") or key in name.split("_")):
            return "higher" if entry["higher_is_better"] else "lower"
    return None


def _score_keys(log: StepLog) -> list[str]:
    """The scores of ``evaluations.csv``: not the step, the evaluation's duration, nor ``X_std`` beside ``X``."""
    return [key for key in log.columns if key not in ("step", "seconds") and log.has(key)
            and not (key.endswith("_std") and key[:-4] in log.columns)]


def _best(values: np.ndarray, better: str) -> int | None:
    """Index of the best finite value ("higher" or "lower" is better)."""
    finite = np.flatnonzero(np.isfinite(values))
    if not len(finite):
        return None
    return int(finite[np.argmax(values[finite]) if better == "higher" else np.argmin(values[finite])])


def _score_panels(log: StepLog, protocol: dict[str, Any] | None) -> list[Panel]:
    """One panel per score, ``X_std`` as a band around ``X``."""
    panels = []
    for key in _score_keys(log):
        better = _direction(key, protocol)
        title = f"{key} ({better} is better)" if better else key
        panels.append(Panel(title, [Series(key, log.steps, log.columns[key], log.columns.get(f"{key}_std"))],
                            better=better))
    return panels


def _log_scale(panel: Panel) -> bool:
    """Values spanning orders of magnitude (gradient norms, weight changes) read better on a log axis."""
    values = np.concatenate([series.values[np.isfinite(series.values)] for series in panel.series])
    return bool(len(values)) and bool((values > 0).all()) and values.max() / values.min() >= 100


def draw(panels: Sequence[Panel], marks: Sequence[Mark], path: Path) -> None:
    """Panels in a grid (two per row), with every mark on each, as one PNG written atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.transforms import blended_transform_factory

    columns = 1 if len(panels) == 1 else 2
    rows = math.ceil(len(panels) / columns)
    figure = Figure(figsize=(11, 0.6 + 3.0 * rows), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    kinds = list(dict.fromkeys(mark.kind for mark in marks))
    colour = {kind: MARK_COLOURS[index % len(MARK_COLOURS)] for index, kind in enumerate(kinds)}
    for index, panel in enumerate(panels):
        axes = figure.add_subplot(rows, columns, index + 1)
        for number, series in enumerate(panel.series):
            line_colour = PALETTE[number % len(PALETTE)]
            few = np.isfinite(series.values).sum() <= 30
            axes.plot(series.steps, series.values, color=line_colour, label=series.label, linewidth=1.6,
                      marker="o" if few else None, markersize=3)
            if series.spread is not None and np.isfinite(series.spread).any():
                axes.fill_between(series.steps, series.values - series.spread, series.values + series.spread,
                                  color=line_colour, alpha=0.2, linewidth=0, label=f"± {series.label}_std")
            best = _best(series.values, panel.better) if panel.better else None
            if best is not None:
                axes.plot(series.steps[best], series.values[best], marker="*", markersize=13, color="#f2b705",
                          markeredgecolor="#333333", linestyle="none", label=f"best {series.values[best]:.4g} "
                          f"(step {int(series.steps[best])})")
        if _log_scale(panel):
            axes.set_yscale("log")
        if panel.limits:
            axes.set_ylim(*panel.limits)
        top = blended_transform_factory(axes.transData, axes.transAxes)
        for mark in marks:
            axes.axvline(mark.step, color=colour[mark.kind], linestyle="--", linewidth=1.1, alpha=0.85)
            if len(marks) <= 24:
                axes.text(mark.step, 1.0, mark.label, transform=top, color=colour[mark.kind], fontsize=8,
                          ha="center", va="bottom", fontweight="bold", clip_on=False)
        axes.set_title(panel.title, fontsize=10, pad=14 if marks else 6)
        axes.set_xlabel("step", fontsize=9)
        axes.tick_params(labelsize=8)
        axes.grid(True, alpha=0.3)
        if len(panel.series) > 1 or panel.better or any(series.spread is not None for series in panel.series):
            axes.legend(fontsize=8, loc="best", framealpha=0.8)
    if kinds:
        handles = [Line2D([], [], color=colour[kind], linestyle="--") for kind in kinds]
        figure.legend(handles, kinds, loc="outside lower center", ncols=min(len(kinds), 4), fontsize=9, frameon=False)
    with atomic_write(path) as handle:
        figure.savefig(handle, format="png")


# -- the page ----------------------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _number(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], css: str = "") -> str:
    head = "".join(f"<th>{_e(cell)}</th>" for cell in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(_number(cell))}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _pairs(rows: Sequence[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><th>{_e(key)}</th><td>{_e(_number(value))}</td></tr>" for key, value in rows)
    return f'<table class="pairs"><tbody>{body}</tbody></table>'


def _flatten(data: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Nested JSON as ``a.b`` keys and scalar values (a list of scalars as one text)."""
    def key(part: Any) -> str:
        return f"{prefix}.{part}" if prefix else str(part)

    if isinstance(data, dict) and data:
        return [pair for name, value in data.items() for pair in _flatten(value, key(name))]
    if isinstance(data, list) and any(isinstance(item, (dict, list)) for item in data):
        return [pair for index, value in enumerate(data) for pair in _flatten(value, key(index))]
    if isinstance(data, (list, dict)):
        return [(prefix, ", ".join(map(_number, data)))]
    return [(prefix, "" if data is None else data)]


def _blocks(data: dict[str, Any]) -> str:
    """A JSON object as small tables side by side: its plain values in one, each nested object in its own."""
    plain = {key: value for key, value in data.items() if not (isinstance(value, dict) and value)}
    tables = [_pairs(_flatten(plain))] if plain else []
    tables += [f"<div><h4>{_e(key)}</h4>{_pairs(_flatten(value))}</div>" for key, value in data.items()
               if isinstance(value, dict) and value]
    return f'<div class="blocks">{"".join(tables)}</div>'


def _figure(name: str, alt: str) -> str:
    return f'<figure><img src="{FIGURES}/{name}" alt="{_e(alt)}"></figure>'


def _missing(text: str) -> str:
    return f'<p class="missing">{_e(text)}</p>'


def _better(higher: Any) -> str:
    return "higher" if higher is True else "lower" if higher is False else ""


def _against(scores: dict[str, Any]) -> str:
    """The real data a scores.json was measured against, e.g. ``mnist (split=test), 10000 images``."""
    real = scores.get("protocol", {}).get("real")
    if not isinstance(real, dict):
        return "unknown real data"
    options = real.get("options") if isinstance(real.get("options"), dict) else {}
    text = f"{real.get('data', '?')}" + (f" ({', '.join(f'{k}={v}' for k, v in options.items())})" if options else "")
    return text + (f", {real['images']} images" if "images" in real else "")


def _protocol(protocol: dict[str, Any]) -> str:
    """What scores depend on, as tables: the general entries, then each metric's (its weights' hash shortened)."""
    general = {key: value for key, value in protocol.items() if key != "metrics"}
    body = _pairs(_flatten(general))
    metrics = protocol.get("metrics") if isinstance(protocol.get("metrics"), dict) else {}
    for name, entry in metrics.items():
        entry = dict(entry) if isinstance(entry, dict) else {"value": entry}
        entry.pop("spec", None)
        if isinstance(entry.get("weights_hash"), str):
            entry["weights_hash"] = entry["weights_hash"][:16] + "…"
        body += f"<h4>metric <code>{_e(name)}</code></h4>" + _pairs(_flatten(entry))
    return body + ("<p>Scores compare only with scores of the same protocol (same extractor and weights, "
                   "preprocessing, sample counts).</p>")


def _grid_steps(grids: list[tuple[int, Path]]) -> list[tuple[int, Path]]:
    if len(grids) <= MAX_GRIDS:
        return grids
    picks = np.unique(np.rint(np.linspace(0, len(grids) - 1, MAX_GRIDS)).astype(int))
    return [grids[index] for index in picks]


class _Page:
    """Builds the report's sections and the figures they show, remembering the figure files it wrote."""

    def __init__(self, run: RunFiles, folder: Path) -> None:
        self.run = run
        self.folder = folder
        self.written: set[str] = set()
        self.warnings = sorted(run.warnings, key=lambda item: _as_step(item.get("step")))
        marks = [Mark(_as_step(item.get("step")), f"W{index}", f"warning: {item.get('kind', '?')}")
                 for index, item in enumerate(self.warnings, start=1)]
        marks += [Mark(_as_step(item.get("step")), f"R{index}", "rollback")
                  for index, item in enumerate(run.rollbacks, start=1)]
        self.marks = [mark for mark in marks if math.isfinite(mark.step)]

    def figure(self, name: str, panels: list[Panel], alt: str) -> str:
        if not panels:
            return _missing(f"no column of the log holds a number, so there is nothing to plot ({alt})")
        draw(panels, self.marks, self.folder / FIGURES / name)
        self.written.add(name)
        return _figure(name, alt)

    def header(self) -> str:
        config, run = self.run.config, self.run
        what = " · ".join(str(config[key]) for key in ("arch", "data", "loss") if key in config)
        goal = (f"{config['steps']} steps" if "steps" in config else f"{config['epochs']} epochs" if "epochs" in config
                else "")
        reached = f"step {run.last_step} reached" if run.last_step is not None else "no step logged"
        return (f"<header><h1>ganframe run <code>{_e(run.path.resolve().name)}</code></h1>"
                f"<p class=\"sub\">{_e(what)} — {_e(goal + ' configured, ' if goal else '')}{_e(reached)}</p></header>")

    def glance(self) -> str:
        run, rows = self.run, []
        for name in run.metrics.columns if run.metrics is not None else ():
            if "loss" in name and (last := run.metrics.last(name)):
                rows.append((f"{name} (last logged)", f"{last[1]:.4g} at step {last[0]}"))
        for key in _score_keys(run.evaluations) if run.evaluations is not None else ():
            step, value = run.evaluations.last(key)
            text = f"{value:.4g} at step {step}"
            if better := _direction(key, run.protocol):
                values, best = run.evaluations.columns[key], _best(run.evaluations.columns[key], better)
                text += f"; best {values[best]:.4g} at step {int(run.evaluations.steps[best])} ({better} is better)"
            rows.append((key, text))
        if run.evaluated is not None:
            higher = run.evaluated.get("higher_is_better", {})
            for key, value in run.evaluated["scores"].items():
                better = f", {_better(higher.get(key))} is better" if key in higher else ""
                rows.append((f"{key} (ganframe evaluate)", f"{value:.4g} against {_against(run.evaluated)}{better}"))
        if run.health_info is not None or run.health is not None:
            kinds = list(dict.fromkeys(str(item.get("kind", "?")) for item in self.warnings))
            rows.append(("health warnings", f"{len(self.warnings)}: {', '.join(kinds)}" if kinds else "none"))
        if run.meta is not None:
            rows.append(("rollbacks", len(run.rollbacks)))
        if run.notes:
            rows.append(("not in this report", ", ".join(name for name, _ in run.notes)))
        return f'<section id="glance"><h2>At a glance</h2>{_pairs(rows)}</section>'

    def notes(self) -> str:
        if not self.run.notes:
            return ""
        items = "".join(f"<li><code>{_e(name)}</code>: {_e(text)}</li>" for name, text in self.run.notes)
        return f'<section id="missing"><h2>What this run does not have</h2><ul class="notes">{items}</ul></section>'

    def samples(self) -> str:
        grids = _grid_steps(self.run.grids)
        if not grids:
            return f'<section id="samples"><h2>Samples over time</h2>{_missing(MISSING["samples"])}</section>'
        cells = []
        for step, source in grids:
            name = f"samples_step_{step:07d}.png"
            with atomic_write(self.folder / FIGURES / name) as handle:
                handle.write(source.read_bytes())
            self.written.add(name)
            cells.append(f'<figure class="grid"><img src="{FIGURES}/{name}" alt="samples at step {step}">'
                         f"<figcaption>step {step}</figcaption></figure>")
        latest = cells[-1].replace('class="grid"', 'class="grid latest"', 1)
        shown = f"{len(grids)} of {len(self.run.grids)} grids" if len(grids) < len(self.run.grids) else f"{len(grids)} grids"
        spec = (self.run.meta or {}).get("spec")
        source = ("For the same conditions at every step (each row: condition | output | real image)"
                  if isinstance(spec, dict) and spec.get("condition_shape") else "From the same fixed noise at every step")
        return (f'<section id="samples"><h2>Samples over time</h2><p>{_e(source)}, so '
                f'the grids compare; {_e(shown)}, the latest first and then from the start.</p>'
                f'{latest}<div class="strip">{"".join(cells)}</div></section>')

    def losses(self) -> str:
        log = self.run.metrics
        if log is None:
            body = _missing(self._why("metrics.csv"))
        elif not len(log.steps):
            body = _missing("metrics.csv holds no rows yet")
        else:
            body = (self.figure("losses.png", _panels(log, LOSS_PANELS), "loss curves from metrics.csv")
                    + "<p>Means over each logging interval (<code>metrics.csv</code>). GAN losses alone say little "
                      "about quality: read them with the samples, the scores and the health probes.</p>")
        return f'<section id="losses"><h2>Losses</h2>{body}</section>'

    def scores(self) -> str:
        log, protocol = self.run.evaluations, self.run.protocol
        if log is None:
            body = _missing(self._why("evaluations.csv"))
        elif not len(log.steps):
            body = _missing("evaluations.csv holds no rows yet")
        else:
            body = self.figure("scores.png", _score_panels(log, protocol), "scores from evaluations.csv")
            if log.has("seconds"):
                body += f"<p>Each evaluation took {np.nanmean(log.columns['seconds']):.3g} s on average.</p>"
        if protocol is not None:
            body += "<h3>Protocol: what the scores depend on</h3>" + _protocol(protocol)
        elif log is not None:
            body += _missing(self._why("evaluations.json"))
        return f'<section id="scores"><h2>Scores</h2>{self.evaluated()}{body}</section>'

    def evaluated(self) -> str:
        """The scores ``ganframe evaluate RUN`` wrote (scores.json), with the protocol they hold under."""
        data = self.run.evaluated
        if data is None:
            return ""
        higher = data.get("higher_is_better", {})
        rows = [(key, value, _better(higher.get(key))) for key, value in data["scores"].items()]
        body = (f"<h3>From <code>ganframe evaluate</code> ({SCORES_FILE}): against {_e(_against(data))}</h3>"
                + _table(("score", "value", "better"), rows))
        if data.get("protocol"):
            body += "<h4>Protocol</h4>" + _protocol(data["protocol"])
        return body

    def health(self) -> str:
        log, info = self.run.health, self.run.health_info
        body = ""
        if log is None:
            body += _missing(self._why("health.csv"))
        elif not len(log.steps):
            body += _missing("health.csv holds no rows yet")
        else:
            body += self.figure("health.png", _panels(log, HEALTH_PANELS), "training-health probes from health.csv")
            body += ("<p>Probes of the networks every few steps (<code>health.csv</code>); dashed lines mark the "
                     "warnings (W) and rollbacks (R) listed below.</p>")
        if info is None:
            if log is not None:
                body += _missing(self._why("health.json"))
            return f'<section id="health"><h2>Training health</h2>{body}</section>'
        if self.warnings:
            rows = [(f"W{index}", item.get("step", ""), item.get("kind", ""), item.get("message", ""),
                     item.get("advice", "")) for index, item in enumerate(self.warnings, start=1)]
            body += "<h3>Warnings</h3>" + _table(("", "step", "kind", "message", "advice"), rows, "warnings")
        else:
            body += '<p class="ok">No health warnings.</p>'
        summary = info.get("summary")
        if summary:
            body += "<h3>Summary</h3>" + (_blocks(summary) if isinstance(summary, dict) else _pairs(_flatten(summary)))
        return f'<section id="health"><h2>Training health</h2>{body}</section>'

    def rollbacks(self) -> str:
        if self.run.meta is None:
            return ""
        rollbacks = self.run.rollbacks
        if not rollbacks:
            body = '<p class="ok">No divergence rollbacks.</p>'
        else:
            keys = list(dict.fromkeys(key for item in rollbacks for key in item))
            body = ("<p>Each time the divergence guard tripped, the run went back to a checkpoint and lowered "
                    "both learning rates (docs/reliability.md).</p>"
                    + _table(("", *keys), [(f"R{index}", *(item.get(key, "") for key in keys))
                                          for index, item in enumerate(rollbacks, start=1)]))
        return f'<section id="rollbacks"><h2>Rollbacks</h2>{body}</section>'

    def metadata(self) -> str:
        meta = self.run.meta
        if meta is None:
            return f'<section id="run"><h2>Run</h2>{_missing(self._why("run.json"))}</section>'
        plugins = meta.get("plugins") if isinstance(meta.get("plugins"), dict) else {}
        general = {key: value for key, value in meta.items() if key not in ("plugins", "rollbacks")}
        body = _blocks({"run directory": self.run.path.resolve().name, **general})
        if plugins:
            rows = [(name, entry.get("distribution", ""), entry.get("version", "")) if isinstance(entry, dict)
                    else (name, entry, "") for name, entry in plugins.items()]
            body += "<h3>Plugins used</h3>" + _table(("plugin", "distribution", "version"), rows)
        return f'<section id="run"><h2>Run</h2>{body}</section>'

    def config(self) -> str:
        return (f'<section id="config"><h2>Config</h2><p>The resolved <code>config.toml</code>: '
                f'<code>ganframe train --config</code> accepts it as it is.</p><pre>{_e(self.run.config_text)}</pre>'
                "</section>")

    def _why(self, name: str) -> str:
        return next((f"{name} {text}" if text.startswith("cannot") else text for file, text in self.run.notes
                     if file == name), f"{name}: {MISSING[name]}")


def _as_step(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


STYLE = """
body{font:15px/1.5 -apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:#222;margin:0;background:#f6f7f9}
main{max-width:1120px;margin:0 auto;padding:0 24px 48px}
header{padding:24px 0 4px}h1{font-size:24px;margin:0}.sub{color:#555;margin:4px 0 0}
nav{position:sticky;top:0;background:#f6f7f9;border-bottom:1px solid #ddd;padding:8px 0;z-index:1}
nav a{margin-right:16px;color:#2456a6;text-decoration:none;font-size:14px}
section{background:#fff;border:1px solid #e2e4e8;border-radius:8px;padding:12px 20px 16px;margin:16px 0}
h2{font-size:19px;margin:4px 0 10px}h3{font-size:16px;margin:16px 0 6px}h4{font-size:14px;margin:12px 0 4px}
figure{margin:8px 0}figure img{max-width:100%;height:auto;display:block}
figure.grid{display:inline-block}.blocks{display:flex;flex-wrap:wrap;gap:4px 24px;align-items:flex-start}
.blocks h4{margin:6px 0 0}
.grid img{image-rendering:pixelated;border:1px solid #ccc;width:140px}
.grid.latest img{width:320px}.grid figcaption{font-size:12px;color:#555;text-align:center}
.strip{display:grid;grid-template-columns:repeat(auto-fill,minmax(110px,1fr));gap:10px}.strip .grid{margin:0}
.strip .grid img{width:100%}
table{border-collapse:collapse;font-size:13px;margin:6px 0}th,td{border:1px solid #e2e4e8;padding:4px 8px;text-align:left;vertical-align:top}
thead th{background:#f0f2f5}table.pairs th{background:#fafbfc;font-weight:600;white-space:nowrap}
table.warnings td:nth-child(1),table.warnings td:nth-child(2){white-space:nowrap;font-weight:600}
.missing{color:#8a5a00;background:#fff7e0;border-left:4px solid #f0b429;padding:6px 10px}
.ok{color:#1d6b2f}ul.notes li{margin:2px 0}
pre{background:#f6f8fa;border:1px solid #e2e4e8;padding:10px;overflow:auto;font-size:12.5px;max-height:520px}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.92em}
footer{color:#777;font-size:12px;text-align:center}
"""


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the report of ``run_dir`` into ``out`` (default ``run_dir/report``); return the path of its HTML page.

    The folder holds ``report.html`` and ``figures/`` and refers to nothing outside itself. Writing it
    again replaces both. A path that is not a run directory raises :class:`ConfigError`.
    """
    run_dir = Path(run_dir)
    folder = Path(out) if out is not None else run_dir / "report"
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"report folder {str(folder)!r} exists and is not a directory; choose another --out")
    run = read_run(run_dir)
    page = _Page(run, folder)
    sections = [page.glance(), page.notes(), page.samples(), page.losses(), page.scores(), page.health(),
                page.rollbacks(), page.metadata(), page.config()]
    links = [(anchor, title) for anchor, title in (("glance", "At a glance"), ("missing", "Missing"),
                                                   ("samples", "Samples"), ("losses", "Losses"), ("scores", "Scores"),
                                                   ("health", "Health"), ("rollbacks", "Rollbacks"), ("run", "Run"),
                                                   ("config", "Config"))
             if any(f'id="{anchor}"' in section for section in sections)]
    nav = "".join(f'<a href="#{anchor}">{title}</a>' for anchor, title in links)
    stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime())
    document = (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>ganframe report: {_e(run_dir.resolve().name)}</title><style>{STYLE}</style></head>\n<body><main>"
        f"{page.header()}<nav>{nav}</nav>\n" + "\n".join(section for section in sections if section)
        + f"\n<footer>written by ganframe {_e(__version__)} on {_e(stamp)} from the files in the run directory"
          "</footer></main></body></html>\n"
    )
    path = folder / REPORT_FILE
    with atomic_write(path, "w") as handle:
        handle.write(document)
    for stale in (folder / FIGURES).glob("*.png"):
        if OWN_FIGURE.match(stale.name) and stale.name not in page.written:
            stale.unlink()
    return path
