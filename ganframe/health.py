"""Training-health alarms: probe the GAN every N steps and warn when a known failure shows.

A GAN's losses say little about whether it is learning: a discriminator that wins outright,
a generator that collapses onto a few images and a discriminator that never moves (the seed's
``trainable = False`` trap) all give plausible loss curves. So every ``health.every`` steps the
:class:`HealthMonitor` looks at the networks themselves, outside the compiled step, on a fixed
batch of real images and a fresh batch of generated ones (``health.samples`` each):

=============  ===========================================================================
d_acc_real     share of real images D calls real (raw output above the loss's decision boundary)
d_acc_fake     share of generated images D calls fake
d_margin       mean D(real) - mean D(fake), raw outputs
d_grad_norm    global L2 norm of the gradient of D's loss w.r.t. D's trainable weights
g_grad_norm    the same for G's loss and G's weights
diversity      mean pairwise L2 distance of the generated images / that of the real ones; for a
               conditional GAN the mean of that ratio within each class (a G that ignores its
               noise makes one image per class: 0, though its batch still spans the classes)
coverage       28x28x1 data: effective number of classes the ``mnist`` classifier sees in the
               generated images (exp of the entropy of its class histogram); else empty
d_change       ||w - w_prev|| / ||w_prev|| of D's trainable weights since the previous probe
g_change       the same for G
=============  ===========================================================================

Rows go to ``<run>/health.csv``; :func:`check` judges each new row against the ones before it,
and alarms go to ``<run>/health.json`` and, once when they first fire, to the output. The probe
runs every network in inference mode and draws its noise from its own generator, so it changes
nothing training depends on: a run with and without it trains the same weights. docs/health.md
has the rules and why they are what they are.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import keras
import numpy as np

from ganframe import backends
from ganframe.config import HealthConfig
from ganframe.contract import CallbackContext, DataSpec
from ganframe.errors import GanframeError
from ganframe.examples import Data, sample
from ganframe.files import CsvLog, atomic_write
from ganframe.plugins import Registry

COLUMNS = ("step", "d_acc_real", "d_acc_fake", "d_margin", "d_grad_norm", "g_grad_norm", "diversity", "coverage",
           "d_change", "g_change")
KINDS = ("discriminator_wins", "mode_collapse", "low_coverage", "divergence", "frozen_discriminator")

#: Probes every EVERY steps, or every tenth of a shorter run (at least MIN_EVERY steps apart).
EVERY = 500
MIN_EVERY = 10
#: Warm-up: the first WARMUP probes and every probe before step WARMUP_STEPS (or before half of a
#: shorter run) only set the baseline. An untrained G makes near-identical images and D wins easily;
#: the dense MNIST GAN's samples cover one or two classes until about step 200. Collapse, low
#: coverage and D winning are judged after it.
WARMUP = 2
WARMUP_STEPS = 500
#: Consecutive probes a collapse or a frozen D must persist before it is called one.
PATIENCE = 2
#: ... and D winning outright, a stretch of which is normal now and then.
WIN_PATIENCE = 3
WIN_ACCURACY = 0.99
#: G's gradient has vanished below this share of its largest value in the run.
VANISHED = 0.1
#: Collapse: diversity or coverage below this share of the best level it reached after the warm-up
#: (counted up to the real data's level), or below FLOOR of the real data's level.
COLLAPSE = 0.5
FLOOR = 0.25
#: Low coverage: G's samples span fewer than this share of the real data's effective classes.
LOW_COVERAGE = 0.7
#: Divergence: a gradient norm this many times its median over the earlier probes.
EXPLODE = 1e3
#: Frozen D: D's weights moved less than this (relative) while G's moved more than MOVING.
FROZEN = 1e-6
MOVING = 1e-4

ADVICE = {
    "discriminator_wins": "G has nothing left to learn from: lower D's learning rate or capacity, use the "
                          "non-saturating loss rather than minimax, add label smoothing (loss option "
                          "label_smoothing), an r1 penalty or an augmentation of D's input",
    "mode_collapse": "G produces a few kinds of image only: check that D learns (see frozen_discriminator), try a "
                     "gradient penalty (r1, or wasserstein with gradient_penalty), a lower learning rate for G, "
                     "a larger batch, or an EMA of G's weights (ema = 0.999)",
    "low_coverage": "G makes some of the data's classes rarely or never: train longer, try a convolutional "
                    "architecture (dcgan), an EMA of G's weights (ema = 0.999), a gradient penalty (r1) or a larger "
                    "batch; docs/recipes/ has configs that cover every class",
    "divergence": "lower both learning rates, add a gradient penalty (r1), and check the data for extreme values; "
                  "the divergence guard rolls back non-finite updates (docs/reliability.md)",
    "frozen_discriminator": "D's weights do not change while G's do, so G chases a fixed target and collapses onto "
                            "what D scores highest: check d_optimizer.learning_rate and that D's architecture sets "
                            "no layer trainable = False",
}

Row = dict[str, Any]  # COLUMNS -> float, or None where a value does not exist (coverage without a classifier)


@dataclass(frozen=True)
class Alarm:
    """One warning in ``health.json``: the probe's step where it first fired, what and what to do."""

    step: int
    kind: str
    message: str
    advice: str


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _held(rows: Sequence[Row], count: int, condition: Any) -> bool:
    """``condition(row)`` for each of the last ``count`` rows, there being that many."""
    return len(rows) >= count and all(condition(row) for row in rows[-count:])


def _collapse(judged: Sequence[Row], column: str, real: float | None) -> str | None:
    """Why ``column`` (diversity or coverage) shows a collapse in the probes after the warm-up, if it does.

    ``real`` is the real data's level (None: the column is not measured).
    """
    values = [r[column] for r in judged[-PATIENCE:]]
    if real is None or len(values) < PATIENCE or not all(_finite(value) for value in values):
        return None
    best = min(real, max(r[column] for r in judged if _finite(r[column])))
    if max(values) < FLOOR * real:
        return (f"{column} {values[-1]:.3g} is under {FLOOR:g} x the real data's level ({real:.3g}), "
                f"{PATIENCE} probes in a row")
    if max(values) < COLLAPSE * best:
        return (f"{column} {values[-1]:.3g} dropped under {COLLAPSE:g} x its best level ({best:.3g}; the real "
                f"data's: {real:.3g}), {PATIENCE} probes in a row")
    return None


def default_every(total_steps: int | None) -> int:
    """Steps between probes when ``health.every`` is not set: EVERY, or a tenth of a shorter run."""
    if not total_steps:
        return EVERY
    return min(EVERY, max(MIN_EVERY, total_steps // 10))


def warmup_steps(total_steps: int | None) -> int:
    """The step before which no probe is judged for collapse: WARMUP_STEPS, or half of a shorter run."""
    return WARMUP_STEPS if not total_steps else min(WARMUP_STEPS, total_steps // 2)


def check(rows: Sequence[Row], real_coverage: float | None = None, warmup: int = WARMUP_STEPS) -> dict[str, str]:
    """The alarms the newest of ``rows`` raises, judged with the rows before it: kind -> message.

    ``real_coverage`` is the real data's ``coverage`` (None: no classifier); ``warmup`` the step of
    :func:`warmup_steps`. Rows are the probes of one run in order; a value may be None where it does
    not exist. The rules are docs/health.md's.
    """
    alarms: dict[str, str] = {}
    row = rows[-1]
    broken = [column for column in COLUMNS[1:] if row[column] is not None and not math.isfinite(row[column])]
    if broken:
        alarms["divergence"] = f"non-finite {', '.join(broken)} at step {row['step']}"
    else:
        for column in ("d_grad_norm", "g_grad_norm"):
            earlier = [r[column] for r in rows[:-1] if _finite(r[column])]
            if len(earlier) >= WARMUP and row[column] > EXPLODE * statistics.median(earlier):
                alarms["divergence"] = (f"{column} {row[column]:.3g} is over {EXPLODE:g} times its median so far "
                                        f"({statistics.median(earlier):.3g})")

    def frozen(r: Row) -> bool:
        return _finite(r["d_change"]) and _finite(r["g_change"]) and r["d_change"] < FROZEN and r["g_change"] > MOVING

    if _held(rows, PATIENCE, frozen):
        alarms["frozen_discriminator"] = (f"D's weights changed by {row['d_change']:.2g} (relative) since the last "
                                          f"probe, G's by {row['g_change']:.2g}, {PATIENCE} probes in a row")
    if len(rows) <= WARMUP or row["step"] < warmup:
        return alarms
    judged = [r for index, r in enumerate(rows) if index >= WARMUP and r["step"] >= warmup]
    collapse = _collapse(judged, "diversity", 1.0) or _collapse(judged, "coverage", real_coverage)
    if collapse:
        alarms["mode_collapse"] = collapse
    elif real_coverage is not None and _held(judged, PATIENCE, lambda r: _finite(r["coverage"])
                                               and r["coverage"] < LOW_COVERAGE * real_coverage):
        alarms["low_coverage"] = (f"the samples span {row['coverage']:.1f} effective classes, the real data "
                                  f"{real_coverage:.1f} (under {LOW_COVERAGE:g} x), {PATIENCE} probes in a row")

    largest = max((r["g_grad_norm"] for r in rows if _finite(r["g_grad_norm"])), default=0.0)

    def d_wins(r: Row) -> bool:
        return (_finite(r["d_acc_real"]) and _finite(r["d_acc_fake"]) and min(r["d_acc_real"], r["d_acc_fake"])
                >= WIN_ACCURACY and _finite(r["g_grad_norm"]) and r["g_grad_norm"] < VANISHED * largest)

    if _held(judged, WIN_PATIENCE, d_wins):
        alarms["discriminator_wins"] = (f"D tells real from fake with accuracy {row['d_acc_real']:.3f} / "
                                        f"{row['d_acc_fake']:.3f} and G's gradient norm fell to "
                                        f"{row['g_grad_norm']:.3g} (at most {largest:.3g}), "
                                        f"{WIN_PATIENCE} probes in a row")
    return alarms


def mean_pairwise_distance(images: np.ndarray) -> float:
    """Mean L2 distance between two different images of the batch (0 for fewer than two)."""
    flat = images.reshape(len(images), -1).astype(np.float64)
    if len(flat) < 2:
        return 0.0
    squared = (flat * flat).sum(axis=1)
    distances = np.sqrt(np.maximum(squared[:, None] + squared[None, :] - 2.0 * flat @ flat.T, 0.0))
    return float(distances[np.triu_indices(len(flat), k=1)].mean())


def diversity(fake: np.ndarray, real: np.ndarray, fake_labels: np.ndarray | None = None,
              real_labels: np.ndarray | None = None) -> float | None:
    """How spread out ``fake`` is, relative to ``real``: 1 when alike, 0 for copies; None when ``real`` has no spread.

    With labels, the ratio is taken within each class both hold two images of, and averaged: the
    classes' own spread, not the spread between classes, which a conditional G keeps even when it
    makes one image per class.
    """
    if fake_labels is None or real_labels is None:
        reference = mean_pairwise_distance(real)
        return mean_pairwise_distance(fake) / reference if reference > 0 else None
    ratios = []
    for label in np.unique(fake_labels):
        of_fake, of_real = fake[fake_labels == label], real[real_labels == label]
        reference = mean_pairwise_distance(of_real)
        if len(of_fake) >= 2 and reference > 0:
            ratios.append(mean_pairwise_distance(of_fake) / reference)
    return float(np.mean(ratios)) if ratios else None


def effective_classes(probabilities: np.ndarray) -> tuple[float, int]:
    """(exp of the entropy of the predicted-class histogram, classes predicted for at least 1% of images).

    The first is the number of classes the images cover, each weighted by how evenly: K for K
    equally frequent classes, 1 for one.
    """
    counts = np.bincount(probabilities.argmax(axis=1), minlength=probabilities.shape[1])
    shares = counts[counts > 0] / counts.sum()
    return float(np.exp(-(shares * np.log(shares)).sum())), int((counts >= 0.01 * counts.sum()).sum())


def relative_change(before: Sequence[np.ndarray], after: Sequence[np.ndarray]) -> float:
    """||after - before|| / ||before|| over all the arrays together."""
    moved = sum(float(np.sum(np.square(a.astype(np.float64) - b))) for a, b in zip(after, before))
    size = sum(float(np.sum(np.square(b.astype(np.float64)))) for b in before)
    return math.sqrt(moved) / max(math.sqrt(size), 1e-30)


def _classifier(spec: DataSpec, registry: Registry) -> Any:
    """The ``mnist`` extractor's class probabilities for 28x28x1 data, else None (no coverage)."""
    if spec.shape != (28, 28, 1):
        return None
    try:
        extractor = registry.build("feature_extractor", "mnist", {}, spec)
    except GanframeError as error:  # health must not stop a run: it goes without coverage
        print(f"health: no class coverage ({error})", flush=True)
        return None
    return getattr(extractor, "probabilities", None)


class HealthMonitor(keras.callbacks.Callback):
    """Probes D, G and their samples every ``config.every`` steps; logs, judges and warns (module docstring)."""

    def __init__(self, config: HealthConfig, data: Data, context: CallbackContext, registry: Registry) -> None:
        super().__init__()
        self.every = default_every(context.total_steps) if config.every is None else config.every
        self.warmup = warmup_steps(context.total_steps)
        self.seed = context.seed
        real = sample(data, config.samples, context.seed)
        self.real, self.real_labels, self.real_conditions = real.images, real.labels, real.conditions
        self.real_distance = mean_pairwise_distance(self.real)
        self.classes = _classifier(context.spec, registry)
        self.real_coverage = None if self.classes is None else effective_classes(self.classes(self.real))[0]
        self.log = CsvLog(context.run_dir / "health.csv")
        self.json_path = context.run_dir / "health.json"
        self.rows: list[Row] = []
        self.alarms: list[Alarm] = []
        self.active: set[str] = set()
        self.covered: int | None = None
        self.measure: Any = None

    # -- when ------------------------------------------------------------------------------------

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.last_step = self.model.global_step
        self.weights = self._weights()
        if self.measure is None:
            self.measure = backends.current().compiled(self._measure, self.model.step_variables)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        step = self.model.global_step
        if self.every and step // self.every > self.last_step // self.every:
            self.probe(step)
        self.last_step = step

    # -- what ------------------------------------------------------------------------------------

    def _weights(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        return tuple([np.array(v.numpy()) for v in net.trainable_variables]
                     for net in (self.model.discriminator, self.model.generator))

    def _measure(self, real: Any, real_labels: Any, noise: Any, fake_labels: Any, condition: Any) -> tuple[Any, ...]:
        """D's raw outputs on real and generated images, the generated images, and both losses' gradient norms,
        from the updates the step would show the loss (:meth:`ganframe.GAN.forward`, in inference mode)."""
        gan = self.model
        examples = {key: value for key, value in (("image", real), ("label", real_labels), ("condition", condition))
                    if value is not None}
        step = gan.g_optimizer.iterations.value
        backend = backends.current()

        def update(network: str) -> Any:
            def compute() -> tuple[Any, Any]:
                result = gan.forward(network, examples, noise, fake_labels, step, training=False)
                return gan.adversarial_loss.update_loss(result), (result.real_logits, result.fake_logits, result.fake)
            return backend.value_and_gradients(compute, getattr(gan, network).trainable_variables)

        _, (real_logits, fake_logits, fake), d_grads = update("discriminator")
        _, _, g_grads = update("generator")
        return real_logits, fake_logits, fake, _global_norm(d_grads), _global_norm(g_grads)

    def measure_row(self, step: int) -> Row:
        """This probe's row: fresh noise seeded by the run's seed and the step, so a resumed run probes alike."""
        gan = self.model
        rng = np.random.default_rng([self.seed, step])
        noise = gan.sampler.noise(len(self.real), rng)
        fake_labels = gan.sampler.random_labels(len(self.real), rng)
        real_out, fake_out, fake, d_norm, g_norm = (np.asarray(value, np.float64) for value in self.measure(
            self.real, self.real_labels if gan.conditional else None, noise, fake_labels,
            self.real_conditions if gan.sampler.takes_condition else None))
        boundary = float(gan.adversarial_loss.decision_boundary)
        coverage = None
        if self.classes is not None:
            coverage, self.covered = effective_classes(self.classes(fake.astype(np.float32)))
        weights = self._weights()
        changes = [relative_change(before, after) for before, after in zip(self.weights, weights)]
        self.weights = weights
        return {
            "step": step,
            "d_acc_real": float(np.mean(real_out > boundary)),
            "d_acc_fake": float(np.mean(fake_out <= boundary)),
            "d_margin": float(np.mean(real_out) - np.mean(fake_out)),
            "d_grad_norm": float(d_norm),
            "g_grad_norm": float(g_norm),
            "diversity": diversity(fake, self.real, fake_labels, self.real_labels if gan.conditional else None),
            "coverage": coverage,
            "d_change": changes[0],
            "g_change": changes[1],
        }

    def probe(self, step: int) -> None:
        row = self.measure_row(step)
        self.rows.append(row)
        self.log.append(row)
        firing = check(self.rows, self.real_coverage, self.warmup)
        for kind, message in firing.items():
            if kind not in self.active:
                self.alarms.append(Alarm(step, kind, message, ADVICE[kind]))
                print(f"health warning at step {step}: {kind.replace('_', ' ')}: {message}. Advice: {ADVICE[kind]}",
                      flush=True)
        self.active = set(firing)
        self.write_json()

    # -- files and state -------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """What ``health.json`` says besides the warnings: the last probe, the real data's levels, counts."""
        return {
            "probes": len(self.rows),
            "every": self.every,
            "samples": len(self.real),
            "last": self.rows[-1] if self.rows else None,
            "classes_covered": self.covered,
            "real": {"mean_pairwise_distance": self.real_distance, "coverage": self.real_coverage},
            "warnings": {kind: sum(alarm.kind == kind for alarm in self.alarms) for kind in KINDS},
            "active": sorted(self.active),
        }

    def write_json(self) -> None:
        document = {"warnings": [asdict(alarm) for alarm in self.alarms], "summary": self.summary()}
        with atomic_write(self.json_path, "w") as handle:
            handle.write(json.dumps(document, indent=2) + "\n")

    def get_state(self) -> dict[str, Any]:
        return {"warnings": [asdict(alarm) for alarm in self.alarms], "active": sorted(self.active),
                "classes_covered": self.covered}

    def set_state(self, state: dict[str, Any], step: int) -> None:
        """Back to ``step``: the log loses later rows, and the rules see the probes up to it again."""
        self.log.truncate_after(step)
        self.rows = self.log.rows()
        self.alarms = [Alarm(**alarm) for alarm in state.get("warnings", [])]
        self.active = set(state.get("active", []))
        self.covered = state.get("classes_covered")
        if self.json_path.exists():
            self.write_json()


def _global_norm(gradients: Sequence[Any]) -> Any:
    """The norm of all ``gradients`` as one vector (None entries, variables the loss does not reach, aside)."""
    squares = [keras.ops.sum(keras.ops.square(keras.ops.convert_to_tensor(grad))) for grad in gradients if grad is not None]
    return keras.ops.sqrt(sum(squares))
