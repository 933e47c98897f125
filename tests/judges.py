"""Judges of generated samples: a classifier of the real data, how spread out the real data are, and
which real images samples must come near.

A judge tells the learning tests (``tests/test_learning*.py``) which classes a generator covers,
how evenly and how diversely (:class:`Coverage`), how many of its samples look like real images
(:meth:`Judge.precision`), and for a conditional generator how often a sample made for class k is
classified as k (:class:`ClassAccuracy`); a :class:`Criterion` says how much of each a learning test
requires. Two judges share the code: ``digits`` (an SVC trained here on scikit-learn's 8x8 digits)
and ``mnist`` (ganframe's shipped MNIST classifier, the feature extractor ``mnist``, on 28x28 images).

Importable from tests because pyproject's pytest settings put ``tests/`` on ``pythonpath``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

import ganframe
from datafiles import REAL_MNIST


NUM_CLASSES = 10
N_SAMPLES = 1000
SAMPLE_SEED = 1
SEED = 0

#: A class counts as found when at least this share of the samples is classified as it
#: (and they are diverse, below). A generator that covered the classes as the data does
#: would give each ~10% (100 of 1000 samples, binomial sd ~9.5), so 2% (20 samples) is
#: a fifth of a fair share and ~8 sd below it: a class the generator really produces is
#: not missed by chance. The digit classifier errs on ~1.3% of real digits, the MNIST one
#: on ~2-3% of the real test images it is checked on, spread over nine wrong classes, so their errors on digit-like samples cannot
#: lift a class that is not produced to 2% either. A generator collapsed onto k modes thus
#: finds at most k classes (checked on real images by the known-sample-set tests). A learning
#: test requires all ten (:class:`Criterion`) unless its measurements say otherwise.
FOUND_SHARE = 0.02

#: Diversity is a mean pairwise L2 distance over that of the real images, so real images
#: score 1.0 and copies of one image 0. It is required of the samples as a whole and of
#: each found class: samples of a class must vary about as its real images do (over that
#: class's real spread). Without the per-class part, one fixed image per class (collapse
#: within each class) would pass: measured on digits 9/10 classes at >= 2%, overall
#: diversity 0.91.
MIN_DIVERSITY = 0.6

#: "Class frequencies near uniform": the KL divergence of the class shares from the uniform
#: distribution, log(10) - entropy, in nats. Real digits and real MNIST score <= 0.005; eight
#: classes of equal share score log(10/8) = 0.22, six log(10/6) = 0.51; one class holding 55%
#: of the samples scores >= 0.6 however the rest spread. The trained generators of the learning
#: tests score 0.00-0.30 (dcgan on MNIST the most skewed: 0.23-0.30 at 1000-1400 steps).
MAX_KL_FROM_UNIFORM = 0.4

#: Fidelity, as precision (Kynkaanniemi et al., 2019) in pixel space: a sample counts as realistic
#: when it lies as close to some reference real image as that image's PRECISION_NEIGHBOUR-th nearest
#: real neighbour. Measured on the images as the run makes them, against real ones as the run sees
#: them, not at the judge's side: resizing 16x16 images up smooths noise towards real digits
#: (per-pixel Gaussian noise at 16x16 scores 0.065 resized to 28x28, 0.000 as it is).
#: Measured (share of 1000 samples): real images the judge has not seen 0.88 (digits; MNIST at 28x28
#: and at 16x16); the learning tests' trained generators 0.09 (resnet, the lowest; seeds 1, 2: 0.17,
#: 0.20), 0.14-0.24 (dense digits: ganframe and each loss, lsgan and wgan-gp on seed 1 too), 0.31
#: (conditional dense), 0.31-0.42 (dcgan, seeds 0-2), 0.56 and 0.64 (conditional resnet and dcgan);
#: noise in the data's range 0.000-0.016 (per-pixel Gaussian noise on digits the highest), real images
#: under noise, untrained generators and the seed recipe's G 0.000. MIN_PRECISION sits about 2.4x from
#: both sides. The judges' confidence (probability of the class they assign) does not separate these:
#: the MNIST classifier is 0.85 sure of uniform noise and 0.94 of per-pixel Gaussian noise (calling it
#: all an 8), 0.56-0.64 of blurred noise, and 0.65 of the resnet test's samples.
PRECISION_NEIGHBOUR = 3
MIN_PRECISION = 0.04

#: A conditional generator must make every class k recognisable as k: per class, the share of the
#: samples generated for k that the judge classifies as k. An untrained generator scores ~0.1 on
#: average; the judges score 0.96-1.00 per class on real images.
MIN_CLASS_ACCURACY = 0.8

#: The classes a conditional generator is asked for when judged: each in turn, a tenth of the samples each.
CLASS_LABELS = np.repeat(np.arange(NUM_CLASSES), N_SAMPLES // NUM_CLASSES)


@dataclass(frozen=True)
class Coverage:
    """How samples spread over the classes, and how diverse they are, overall and per class."""

    counts: np.ndarray  # samples classified as each class
    diversity: float  # mean pairwise distance of the samples / that of the real images
    class_diversity: np.ndarray  # the same per class (NaN for classes with < 2 samples)

    @property
    def shares(self) -> np.ndarray:
        return self.counts / self.counts.sum()

    @property
    def kl_from_uniform(self) -> float:
        shares = self.shares[self.shares > 0]
        return float(np.sum(shares * np.log(shares * NUM_CLASSES)))

    @property
    def found_classes(self) -> list[int]:
        diverse = np.nan_to_num(self.class_diversity) >= MIN_DIVERSITY
        return [int(label) for label in np.flatnonzero((self.shares >= FOUND_SHARE) & diverse)]

    @property
    def found(self) -> int:
        return len(self.found_classes)

    @property
    def smallest_found_share(self) -> float:
        return float(min(self.shares[self.found_classes], default=0.0))

    def failures(self, min_found: int = NUM_CLASSES) -> list[str]:
        """Why these samples fail the coverage part of a criterion needing ``min_found`` classes (empty: they pass)."""
        reasons = []
        if self.found < min_found:
            reasons.append(f"only {self.found} classes found (>= {min_found} needed)")
        if self.diversity < MIN_DIVERSITY:
            reasons.append(f"diversity {self.diversity:.3f} < {MIN_DIVERSITY}")
        if self.kl_from_uniform > MAX_KL_FROM_UNIFORM:
            reasons.append(f"class shares {self.kl_from_uniform:.3f} nats from uniform (> {MAX_KL_FROM_UNIFORM})")
        return reasons

    def __str__(self) -> str:
        classes = " ".join(
            f"{label}:{share:.3f}/{diversity:.2f}"
            for label, (share, diversity) in enumerate(zip(self.shares, self.class_diversity))
        )
        return (
            f"{self.found}/{NUM_CLASSES} classes found, smallest found share {self.smallest_found_share:.3f}, "
            f"KL from uniform {self.kl_from_uniform:.3f}, diversity {self.diversity:.3f}, "
            f"per class share/diversity {classes}"
        )


@dataclass(frozen=True)
class ClassAccuracy:
    """Per class k, the share of the samples generated for k that the judge classifies as k."""

    per_class: np.ndarray

    def failures(self, minimum: float) -> list[str]:
        low = {label: round(float(value), 3) for label, value in enumerate(self.per_class) if value < minimum}
        return [f"classes below {minimum} accuracy: {low}"] if low else []

    def __str__(self) -> str:
        return f"accuracy mean {self.per_class.mean():.3f}, min {self.per_class.min():.3f}: " + " ".join(
            f"{label}:{value:.2f}" for label, value in enumerate(self.per_class)
        )


@dataclass(frozen=True)
class Judge:
    """A classifier of real images of one side, how spread out those real images are, and the real
    images samples are measured against for precision.
    """

    side: int
    classify: Callable[[np.ndarray], np.ndarray]  # (N, side, side, 1) in [0, 1] -> (N,) class ids
    heldout_accuracy: float
    real_spread: float  # mean pairwise distance of real images
    real_class_spread: np.ndarray  # the same within each class
    reference: np.ndarray  # real images as the runs see them, for precision
    reference_radii: np.ndarray  # (M,) each one's distance to its PRECISION_NEIGHBOUR-th nearest other
    unseen: tuple[np.ndarray, np.ndarray]  # real images (as the runs see them) and labels in neither of the above

    def judged(self, images: np.ndarray) -> np.ndarray:
        return at_side(images, self.side)

    def coverage(self, samples: np.ndarray) -> Coverage:
        images = self.judged(samples)
        predicted = self.classify(images)
        flat = images.reshape(len(images), -1)
        spread = [mean_pairwise_distance(flat[predicted == label]) for label in range(NUM_CLASSES)]
        return Coverage(
            np.bincount(predicted, minlength=NUM_CLASSES),
            mean_pairwise_distance(flat) / self.real_spread,
            np.array(spread) / self.real_class_spread,
        )

    def precision(self, samples: np.ndarray) -> float:
        """The share of ``samples`` within some reference image's neighbourhood (:data:`MIN_PRECISION`)."""
        return float((squared_distances(samples, self.reference) <= self.reference_radii**2).any(axis=1).mean())

    def class_accuracy(self, samples: np.ndarray, labels: np.ndarray) -> ClassAccuracy:
        correct = self.classify(self.judged(samples)) == labels
        return ClassAccuracy(np.array([correct[labels == label].mean() for label in range(NUM_CLASSES)]))


@dataclass(frozen=True)
class Verdict:
    """A criterion's verdict on samples: what was measured, and why they fail (empty when they pass)."""

    coverage: Coverage
    precision: float
    accuracy: ClassAccuracy | None
    failures: list[str]

    def __str__(self) -> str:
        accuracy = f"{self.accuracy}; " if self.accuracy is not None else ""
        return f"{accuracy}precision {self.precision:.3f}, {self.coverage}"


@dataclass(frozen=True)
class Criterion:
    """What a learning test requires of :data:`N_SAMPLES` samples of its generator.

    At least ``min_found`` classes found (all ten unless the test's measurements say otherwise), in
    shares near uniform, diverse overall and per class (:class:`Coverage`), and at least
    :data:`MIN_PRECISION` of them realistic. Of a conditional generator (``min_accuracy`` set),
    sampled for :data:`CLASS_LABELS`, also the class asked for at least ``min_accuracy`` of the time,
    for every class. Both parts must pass: the right class alone is not enough, since a G that ignores
    its noise makes one image per class (seen with a learned class embedding in G), which only the
    per-class diversity of the coverage rejects.
    """

    min_found: int = NUM_CLASSES
    min_accuracy: float | None = None

    @property
    def labels(self) -> np.ndarray | None:
        """The classes to ask a conditional generator for, one per sample; None for an unconditional one."""
        return None if self.min_accuracy is None else CLASS_LABELS

    def __str__(self) -> str:
        accuracy = "" if self.min_accuracy is None else f", >= {self.min_accuracy} accuracy per class"
        return f">= {self.min_found} classes found, precision >= {MIN_PRECISION}{accuracy}"

    def verdict(self, judge: Judge, samples: np.ndarray) -> Verdict:
        """The verdict on ``samples``: of a conditional generator, made for :attr:`labels`."""
        coverage, precision = judge.coverage(samples), judge.precision(samples)
        accuracy = None if self.min_accuracy is None else judge.class_accuracy(samples, CLASS_LABELS)
        return Verdict(coverage, precision, accuracy, self.failures(coverage, precision, accuracy))

    def failures(self, coverage: Coverage, precision: float, accuracy: ClassAccuracy | None) -> list[str]:
        """Why samples measured so fail (empty when they pass): one measurement serves several criteria."""
        failures = coverage.failures(self.min_found)
        if precision < MIN_PRECISION:
            failures.append(f"precision {precision:.3f} < {MIN_PRECISION}")
        if self.min_accuracy is not None:
            failures += accuracy.failures(self.min_accuracy)
        return failures


def at_side(images: np.ndarray, side: int) -> np.ndarray:
    """Square grayscale ``images`` at ``side``: larger ones (from ``pad_to``) cropped to their centre,
    smaller ones (from ``resize``) resized up as the ``mnist`` feature extractor resizes (bilinear, antialiased).
    """
    images = np.asarray(images, np.float32)
    own = images.shape[1]
    if images.shape[1:] != (own, own, 1):
        raise ValueError(f"a judge takes square grayscale images, got {images.shape[1:]}")
    if own < side:
        import keras

        resized = keras.ops.image.resize(images, (side, side), interpolation="bilinear", antialias=True)
        return np.clip(keras.ops.convert_to_numpy(resized), 0.0, 1.0)
    margin = (own - side) // 2
    return images[:, margin:margin + side, margin:margin + side]


def squared_distances(images: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Squared L2 distances between every image and every other, by one matrix product: 3-6x faster than
    scipy's ``pdist``/``cdist`` (which loop pair by pair) on 1000-2200 MNIST images.
    """
    a = np.asarray(images, np.float64).reshape(len(images), -1)
    b = np.asarray(others, np.float64).reshape(len(others), -1)
    return np.maximum((a * a).sum(axis=1)[:, None] + (b * b).sum(axis=1)[None] - 2 * a @ b.T, 0.0)


def mean_pairwise_distance(images: np.ndarray) -> float:
    """Mean L2 distance over all pairs of images; NaN for fewer than two."""
    if len(images) < 2:
        return float("nan")
    squared = squared_distances(images, images)
    np.fill_diagonal(squared, 0.0)
    return float(np.sqrt(squared).sum() / (len(images) * (len(images) - 1)))


def _judge(classify: Callable[[np.ndarray], np.ndarray], accuracy: float, images: np.ndarray, labels: np.ndarray,
           reference: np.ndarray, unseen: tuple[np.ndarray, np.ndarray]) -> Judge:
    """A judge of samples at the side of the real ``images``, whose spreads it measures, with precision
    against the real ``reference`` images (as the runs see them).
    """
    class_spread = [mean_pairwise_distance(images[labels == label]) for label in range(NUM_CLASSES)]
    radii = np.sqrt(np.sort(squared_distances(reference, reference), axis=1)[:, PRECISION_NEIGHBOUR])  # 0: itself
    return Judge(images.shape[1], classify, accuracy, mean_pairwise_distance(images), np.array(class_spread),
                 reference, radii, unseen)


def load_data(name: str, **options: Any) -> ganframe.ImageData:
    """A data set exactly as a ganframe run loads it (MNIST from :data:`REAL_MNIST`)."""
    return ganframe.get_registry().build("dataset", name, options, ganframe.DataContext(REAL_MNIST, SEED))


def digits_judge() -> Judge:
    """An SVC on 75% of the real digits, checked on the other 25%; precision against the same 75%."""
    from sklearn.model_selection import train_test_split
    from sklearn.svm import SVC

    data = load_data("digits")
    train_x, test_x, train_y, test_y = train_test_split(
        data.images, data.labels, test_size=0.25, random_state=0, stratify=data.labels
    )
    classifier = SVC().fit(train_x.reshape(len(train_x), -1), train_y)
    accuracy = classifier.score(test_x.reshape(len(test_x), -1), test_y)
    # The coverage counts are only as good as the classifier (measured: 0.987).
    assert accuracy > 0.95, f"digit classifier held-out accuracy {accuracy:.3f}"
    return _judge(lambda images: classifier.predict(images.reshape(len(images), -1)), accuracy, data.images,
                  data.labels, train_x, (test_x, test_y))


#: Real MNIST images the ``mnist`` judge measures its accuracy, the real spread and precision on: the
#: first of the test split, which neither the shipped classifier nor the learning runs trained on; as
#: many after them are the unseen real images of the known sample sets.
MNIST_JUDGE_IMAGES = 1000


def mnist_judge(**data_options: Any) -> Judge:
    """ganframe's shipped MNIST classifier (feature extractor ``mnist``), checked on real test images.

    ``data_options`` are the run's ``pad_to`` or ``resize``: samples of that shape are brought back to
    28x28 (:func:`at_side`), and the real spread and precision are measured on real images that went
    the same way.
    """
    data = load_data("mnist", split="test", limit=2 * MNIST_JUDGE_IMAGES, **data_options)
    extractor = ganframe.get_registry().build("feature_extractor", "mnist", {}, ganframe.DataSpec((28, 28, 1)))

    def classify(images: np.ndarray) -> np.ndarray:
        return extractor.probabilities(images).argmax(axis=1)

    real = data.float_images()
    images, labels = at_side(real[:MNIST_JUDGE_IMAGES], 28), data.labels[:MNIST_JUDGE_IMAGES]
    accuracy = float((classify(images) == labels).mean())
    # Its record (ganframe/builtin/weights/mnist_classifier.json) says 0.986 on the whole test split;
    # measured on these 1000: 0.985 at 28x28 (and padded to 32), 0.975 resized to 16 and back.
    assert accuracy > 0.95, f"MNIST classifier accuracy on real test images {accuracy:.3f}"
    unseen = (real[MNIST_JUDGE_IMAGES:], data.labels[MNIST_JUDGE_IMAGES:])
    return _judge(classify, accuracy, images, labels, real[:MNIST_JUDGE_IMAGES], unseen)


def sample(generator: Any, latent_dim: int, n: int = N_SAMPLES, seed: int = SAMPLE_SEED,
           labels: np.ndarray | None = None) -> np.ndarray:
    """``n`` images (a conditional G: one per label) from noise drawn as ``GAN.generate`` draws it, G in inference mode."""
    n = n if labels is None else len(labels)
    noise = np.random.default_rng(seed).standard_normal((n, latent_dim)).astype(np.float32)
    return np.asarray(generator(noise if labels is None else [noise, labels], training=False))


def _blurred(real: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Uniform noise blurred (sigma = side / 14: 2 pixels at 28x28), inked where it is in the top ~40% of its range."""
    from scipy.ndimage import gaussian_filter

    sigma = real.shape[1] / 14
    smooth = gaussian_filter(rng.uniform(0, 1, (N_SAMPLES, *real.shape[1:])), sigma=(0, sigma, sigma, 0))
    low, high = smooth.min(axis=(1, 2, 3), keepdims=True), smooth.max(axis=(1, 2, 3), keepdims=True)
    return 1 / (1 + np.exp(-12 * ((smooth - low) / (high - low) - 0.6)))


#: Stand-ins for a generator that learned nothing but the data's range [0, 1] (and, for the Gaussian,
#: each pixel's mean and spread): (real images, rng) -> N_SAMPLES images of their shape. The controls
#: check that no learning test's criterion passes them.
NOISE: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "uniform-noise": lambda real, rng: rng.uniform(0, 1, (N_SAMPLES, *real.shape[1:])),
    "gaussian-noise": lambda real, rng: np.clip(rng.normal(real.mean(axis=0), real.std(axis=0),
                                                           (N_SAMPLES, *real.shape[1:])), 0, 1),
    "blurred-noise": _blurred,
}


def noise(kind: str, real: np.ndarray) -> np.ndarray:
    """:data:`N_SAMPLES` images of the ``kind`` of :data:`NOISE` shaped like ``real``."""
    return NOISE[kind](real, np.random.default_rng(SAMPLE_SEED)).astype(np.float32)


#: Sample sets made of real images the judge has not seen (:attr:`Judge.unseen`) whose verdict is
#: known: (images, labels) -> images, and whether a criterion that needs ``min_found`` classes must pass them.
KNOWN_SAMPLE_SETS: dict[str, tuple[Callable[[np.ndarray, np.ndarray], np.ndarray], Callable[[int], bool]]] = {
    "real images": (lambda images, labels: images, lambda min_found: True),
    "real images of 9 classes": (lambda images, labels: images[labels < 9], lambda min_found: min_found <= 9),
    "real images of 8 classes": (lambda images, labels: images[labels < 8], lambda min_found: min_found <= 8),
    "real images of 7 classes": (lambda images, labels: images[labels < 7], lambda min_found: min_found <= 7),
    "one image per class": (  # collapse within each class
        lambda images, labels: np.repeat(
            images[[np.flatnonzero(labels == label)[0] for label in range(NUM_CLASSES)]], 100, axis=0
        ),
        lambda min_found: False,
    ),
    "one image": (lambda images, labels: np.repeat(images[:1], 1000, axis=0), lambda min_found: False),  # collapse
    "real images, one class over half": (  # every class, but far from uniform
        lambda images, labels: np.concatenate([images, np.repeat(images[labels == 0], 12, axis=0)]),
        lambda min_found: False,
    ),
    "real images under noise": (  # every class, evenly and diversely, but none of them clean
        lambda images, labels: np.clip(images + np.random.default_rng(SAMPLE_SEED).normal(0, 0.5, images.shape), 0, 1),
        lambda min_found: False,
    ),
}


def train(config: dict[str, Any], tmp_path: Path) -> Any:
    """A ganframe run of ``config`` in ``tmp_path``, reading MNIST from :data:`REAL_MNIST` as :func:`load_data`
    does, without sample grids and health probes: they cost time and are not judged here.
    """
    quiet = {"callbacks": {"samples": {"every": 0}}, "health": {"every": 0}}
    run = ganframe.train({"data_dir": str(REAL_MNIST), **config, **quiet, "out": str(tmp_path / "run")}, progress=False)
    assert run.step == config["steps"]
    return run


def untrained_generator(config: dict[str, Any], spec: ganframe.DataSpec) -> tuple[Any, int]:
    """G of ``config``'s architecture as built, seeded as a run of ``config`` seeds it, and its latent width."""
    import keras

    keras.utils.set_random_seed(config.get("seed", SEED))
    networks = ganframe.get_registry().build("architecture", config["arch"], config.get("arch_options", {}), spec)
    return networks.generator, networks.latent_dim
