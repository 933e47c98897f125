"""Built-in metrics on a feature extractor's features: FID, KID, Inception Score, precision/recall, density/coverage.

The math is plain NumPy on features (float64), in functions a test can check against closed
forms; the metric classes only extract features and call them. A set's features are computed
once per process (the last few sets stay in memory, so five metrics on the same samples
extract them once) and a real set's are also cached on disk, keyed by a hash of everything
they depend on: the extractor, its options, its weights' hash, its preprocessing and the
images' bytes. The cache lives in ``GANFRAME_CACHE_DIR``, else ``$XDG_CACHE_HOME/ganframe``,
else ``~/.cache/ganframe`` (docs/evaluation.md).

Nothing here imports TensorFlow; building a metric builds its extractor, which does.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
from pydantic import Field

import ganframe
from ganframe import ConfigError, DataSpec, Metric, Options, hookimpl

#: Rows of the first set per block of pairwise distances: 512 x 10,000 float64 is 40 MB.
DISTANCE_BLOCK = 512
#: Pairs x features per chunk of exact distances: 2**22 float64 is 32 MB.
EXACT_CHUNK = 1 << 22


# ----------------------------------------------------------------------------------------- the math


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (unbiased, N - 1) of features (N, D), in float64."""
    features = np.asarray(features, np.float64)
    return features.mean(axis=0), np.cov(features, rowvar=False)


def _symmetric(matrix: np.ndarray) -> np.ndarray:
    """The symmetric part: rounding leaves products of symmetric matrices slightly asymmetric."""
    return (matrix + matrix.T) / 2


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric positive semi-definite matrix (rounding's negative eigenvalues -> 0)."""
    values, vectors = np.linalg.eigh(_symmetric(matrix))
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """‖μ1 − μ2‖² + tr(Σ1 + Σ2 − 2 (Σ1 Σ2)^½), the Fréchet distance of two Gaussians (Heusel et al. 2017).

    tr((Σ1 Σ2)^½) is computed as Σ √λ over the eigenvalues of the symmetric PSD matrix Σ1^½ Σ2 Σ1^½,
    which has the same eigenvalues as Σ1 Σ2: no complex square roots whose imaginary parts need
    clipping, and exact for singular covariances (fewer samples than features). The result is
    clipped at 0, which rounding can undercut by ~1e-12 for identical statistics.
    """
    root = _sqrt_psd(np.asarray(sigma1, np.float64))
    cross = np.linalg.eigvalsh(_symmetric(root @ np.asarray(sigma2, np.float64) @ root))
    trace_sqrt = np.sqrt(np.clip(cross, 0.0, None)).sum()
    diff = np.asarray(mu1, np.float64) - np.asarray(mu2, np.float64)
    return max(float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt), 0.0)


def _cubic_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(a·b / d + 1)³ for every pair of rows, cubed by multiplication: ``** 3`` is 5x slower."""
    gram = a @ b.T
    gram /= a.shape[1]
    gram += 1.0
    return gram * gram * gram


def polynomial_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² of two samples under the kernel k(a, b) = (a·b / d + 1)³ (Bińkowski et al. 2018).

    (Σ_{i≠j} k(x_i, x_j)) / (m(m−1)) + (Σ_{i≠j} k(y_i, y_j)) / (n(n−1)) − 2 Σ_{i,j} k(x_i, y_j) / (mn).
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    m, n = len(x), len(y)
    kxx, kyy, kxy = (_cubic_kernel(a, b) for a, b in ((x, x), (y, y), (x, y)))
    within = (kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(within - 2.0 * kxy.mean())


def kernel_inception_distance(real: np.ndarray, fake: np.ndarray, subsets: int, subset_size: int,
                              seed: int) -> tuple[float, float]:
    """KID: mean and standard deviation of :func:`polynomial_mmd2` over random subsets (each without replacement)."""
    size = min(subset_size, len(real), len(fake))
    if size < 2:
        raise ConfigError(f"kid needs at least 2 samples per set, got {min(len(real), len(fake))}")
    rng = np.random.default_rng(seed)
    values = [polynomial_mmd2(real[rng.choice(len(real), size, replace=False)],
                              fake[rng.choice(len(fake), size, replace=False)]) for _ in range(subsets)]
    return float(np.mean(values)), float(np.std(values))


def inception_score(probabilities: np.ndarray, splits: int) -> tuple[float, float]:
    """exp(E_x KL(p(y|x) ‖ p(y))) per split, mean and standard deviation over the splits (Salimans et al. 2016)."""
    probabilities = np.asarray(probabilities, np.float64)
    scores = []
    for part in np.array_split(probabilities, min(splits, len(probabilities))):
        marginal = part.mean(axis=0, keepdims=True)
        kl = np.sum(part * (_log(part) - _log(marginal)), axis=1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))


def _log(p: np.ndarray) -> np.ndarray:
    """log p with log 0 taken as 0: 0 · log 0 = 0 in the KL sum."""
    return np.log(np.where(p > 0, p, 1.0))


def squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """‖a_n − b_n‖² of paired rows, from their exact differences summed over the features in a fixed pairwise order.

    Elementwise IEEE operations only: a pair's value is the same bits whatever other pairs, block or BLAS
    it is computed with, so the radius pass and the membership pass agree on it, and a point is at
    exactly 0 from its copy.
    """
    values = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    values *= values
    while values.shape[1] > 1:
        half = values.shape[1] // 2
        folded = values[:, :half] + values[:, half:2 * half]
        if values.shape[1] % 2:
            folded[:, -1] += values[:, -1]
        values = folded
    return values[:, 0]


def _pair_squared_distances(a: np.ndarray, b: np.ndarray, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """:func:`squared_distances` of the pairs (a[rows[n]], b[columns[n]]), a bounded chunk of pairs at a time."""
    out = np.empty(len(rows))
    step = max(1, EXACT_CHUNK // a.shape[1])
    for start in range(0, len(rows), step):
        part = slice(start, start + step)
        out[part] = squared_distances(a[rows[part]], b[columns[part]])
    return out


def _bounded_blocks(a: np.ndarray, b: np.ndarray) -> Iterator[tuple[slice, np.ndarray, np.ndarray, np.ndarray]]:
    """Bounds on :func:`squared_distances` between the rows of ``a`` and ``b``, a block of ``a``'s rows at a time:
    ``(rows, low, row_slack, column_slack)``, the upper bound being ``low + row_slack[:, None] + column_slack``.

    The estimate is the fast expansion ‖x‖² + ‖y‖² − 2 x·y (one matrix product per block) on the rows
    centred by ``b``'s mean. Its rounding, the centring's and that of the exact differences add up to
    less than (4 D + 15) u (‖x‖² + ‖y‖²) in any summation order (u = 2⁻⁵³, Higham's γ_D bounds); the
    bounds lie (8 D + 64) u (‖x‖² + ‖y‖²), plus underflow's share, either side: room for their own
    rounding too. So they hold on every BLAS, and only a pair whose bounds straddle a threshold
    needs its exact distance.
    """
    steps = 8 * a.shape[1] + 64
    relative, absolute = steps * np.finfo(np.float64).eps / 2, steps * np.finfo(np.float64).smallest_subnormal
    centre = b.mean(axis=0)
    b = b - centre
    b_norms = (b * b).sum(axis=1)
    b *= -2.0  # exact: the product below is then −2 x·y
    column_low, column_slack = b_norms * (1 - relative) - absolute, 2 * (b_norms * relative + absolute)
    for start in range(0, len(a), DISTANCE_BLOCK):
        rows = a[start:start + DISTANCE_BLOCK] - centre
        norms = (rows * rows).sum(axis=1)
        low = rows @ b.T
        low += (norms * (1 - relative))[:, None]
        low += column_low[None, :]
        yield slice(start, start + len(rows)), low, 2 * relative * norms, column_slack


def _where(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of a 2-D mask's True entries, row-major: ``np.nonzero`` is ~50x slower on 2-D arrays."""
    return np.divmod(np.flatnonzero(mask), mask.shape[1])


def _pairs_within(a: np.ndarray, b: np.ndarray, rows: slice, low: np.ndarray, row_slack: np.ndarray,
                  column_slack: np.ndarray, limits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pairs of a block (``a[rows]`` x ``b``, indices into the block and ``b``) whose squared distance is
    ≤ ``limits`` (broadcast to the block): by the bounds where they decide it, by :func:`squared_distances`
    where they straddle the limit. Only the pairs whose lower bound is within the limit are listed, then
    sifted: few, since balls are small."""
    block_rows, columns = _where(low <= limits)
    limit = np.broadcast_to(limits, low.shape)[block_rows, columns]
    keep = low[block_rows, columns] + row_slack[block_rows] + column_slack[columns] <= limit
    unsure = ~keep
    keep[unsure] = _pair_squared_distances(a, b, block_rows[unsure] + rows.start, columns[unsure]) <= limit[unsure]
    return block_rows[keep], columns[keep]


def knn_squared_radii(features: np.ndarray, k: int) -> np.ndarray:
    """Each point's squared distance (:func:`squared_distances`) to its k-th nearest neighbour in its set (itself excluded).

    Per row the radius lies between the k-th smallest lower bound and the k-th smallest upper bound
    (index k: the point itself is at 0). Pairs whose upper bound is under that interval are nearer,
    pairs whose lower bound is over it farther; only the pairs left, usually the k-th neighbour
    alone, need their exact distance.
    """
    features = np.asarray(features, np.float64)
    if len(features) <= k:
        raise ConfigError(f"k = {k} nearest neighbours need more than {k} samples per set, got {len(features)}")
    radii = np.empty(len(features))
    for rows, low, row_slack, column_slack in _bounded_blocks(features, features):
        floor = np.partition(low, k, axis=1)[:, k]
        ceiling = floor + row_slack + column_slack.max()  # at least the k-th smallest upper bound
        block_rows, columns = _where(low <= ceiling[:, None])  # block_rows ascending
        nearer = low[block_rows, columns] + row_slack[block_rows] + column_slack[columns] < floor[block_rows]
        rank = k - np.bincount(block_rows[nearer], minlength=len(floor))  # the radius's rank among the pairs left
        block_rows, columns = block_rows[~nearer], columns[~nearer]
        exact = _pair_squared_distances(features, features, block_rows + rows.start, columns)
        ordered = exact[np.lexsort((exact, block_rows))]
        radii[rows] = ordered[np.searchsorted(block_rows, np.arange(len(floor))) + rank]
    return radii


def knn_radii(features: np.ndarray, k: int) -> np.ndarray:
    """Each point's distance to its k-th nearest neighbour in the same set (itself excluded)."""
    return np.sqrt(knn_squared_radii(features, k))


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019): the share of fakes inside the real
    manifold (the union of balls reaching each real point's k-th neighbour), and of reals inside the fake one.

    A point is inside a ball when its distance to the centre is ≤ the radius, both from
    :func:`squared_distances`: a set against its copy scores exactly 1 and 1. One pass over the
    fake-to-real distances serves both.
    """
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    real_radii, fake_radii = knn_squared_radii(real, k), knn_squared_radii(fake, k)
    fake_inside, real_inside = np.zeros(len(fake), bool), np.zeros(len(real), bool)
    for rows, *bounds in _bounded_blocks(fake, real):
        fake_rows, _ = _pairs_within(fake, real, rows, *bounds, real_radii[None, :])
        fake_inside[fake_rows + rows.start] = True
        _, real_columns = _pairs_within(fake, real, rows, *bounds, fake_radii[rows, None])
        real_inside[real_columns] = True
    return float(fake_inside.mean()), float(real_inside.mean())


def density_coverage(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float]:
    """Density and coverage (Naeem et al. 2020), on the real k-NN balls only, with distances as in :func:`precision_recall`.

    density = Σ_j #{i: fake_j ∈ B(real_i)} / (k M), about 1 when fakes are distributed as reals (unbounded above);
    coverage = the share of real balls that hold at least one fake.
    """
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    radii = knn_squared_radii(real, k)
    inside = 0
    covered = np.zeros(len(real), bool)
    for rows, *bounds in _bounded_blocks(fake, real):
        _, columns = _pairs_within(fake, real, rows, *bounds, radii[None, :])
        inside += len(columns)
        covered[columns] = True
    return inside / (k * len(fake)), float(covered.mean())


# ------------------------------------------------------------------------------------------ features


def cache_dir() -> Path:
    """Where reference features are cached: GANFRAME_CACHE_DIR, else $XDG_CACHE_HOME/ganframe, else ~/.cache/ganframe."""
    if os.environ.get("GANFRAME_CACHE_DIR"):
        return Path(os.environ["GANFRAME_CACHE_DIR"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ganframe"


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def images_digest(images: np.ndarray) -> str:
    """SHA-256 of an image array's dtype, shape and bytes: what a cached result was computed from."""
    images = np.ascontiguousarray(images)
    digest = hashlib.sha256(f"{images.dtype.str}{images.shape}".encode())
    digest.update(memoryview(images).cast("B"))
    return digest.hexdigest()


class FeatureStore:
    """Features by (what was computed, extractor identity, images' digest): the last few in memory, real ones on disk.

    ``hits`` and ``misses`` count disk lookups, so that a test (or a user) can see the cache work.
    """

    def __init__(self, keep: int = 8) -> None:
        self.keep = keep
        self.memory: OrderedDict[str, np.ndarray] = OrderedDict()
        self.hits = self.misses = 0

    def get(self, what: str, identity: dict[str, Any], images: np.ndarray,
            compute: Callable[[np.ndarray], np.ndarray], persist: bool) -> np.ndarray:
        protocol = {"what": what, **identity, "images": images_digest(images), "n": len(images)}
        key = _digest(protocol)
        if key in self.memory:
            self.memory.move_to_end(key)
            return self.memory[key]
        path = cache_dir() / "features" / f"{key}.npz"
        value = self._read(path) if persist else None
        if persist:
            self.hits, self.misses = self.hits + (value is not None), self.misses + (value is None)
        if value is None:
            value = np.asarray(compute(images), np.float32)
            if persist:
                self._write(path, value, protocol)
        self.memory[key] = value
        while len(self.memory) > self.keep:
            self.memory.popitem(last=False)
        return value

    @staticmethod
    def _read(path: Path) -> np.ndarray | None:
        """The cached array, or None when absent or unreadable (then it is recomputed and rewritten)."""
        try:
            with np.load(path, allow_pickle=False) as stored:
                return stored["features"]
        except (OSError, ValueError, KeyError, EOFError):
            return None

    @staticmethod
    def _write(path: Path, value: np.ndarray, protocol: dict[str, Any]) -> None:
        """Atomically; a cache that cannot be written (read-only home) costs time, not the result."""
        buffer = io.BytesIO()
        np.savez(buffer, features=value, protocol=np.array(json.dumps(protocol, sort_keys=True, default=str)))
        try:
            with ganframe.atomic_write(path) as handle:
                handle.write(buffer.getvalue())
        except OSError as error:
            print(f"warning: cannot cache reference features in {path.parent} ({error.strerror or error}); "
                  "set GANFRAME_CACHE_DIR to a writable directory", file=sys.stderr)


#: The process's store: metrics built separately share what they computed.
FEATURES = FeatureStore()


# --------------------------------------------------------------------------------------------- metrics


class FeatureOptions(Options):
    extractor: str = Field("mnist", description="a registered feature extractor (`ganframe plugins`): mnist, inception, ...")
    extractor_options: dict[str, Any] = Field({}, description="the extractor's options")


class FeatureMetric(Metric):
    """A metric on features of ``options.extractor``, built through the registry like any component.

    ``protocol()`` says what its values depend on: the extractor, its options, its weights' hash
    and preprocessing, and the metric's own options; the caller adds the sets and their sizes.
    """

    def __init__(self, spec: DataSpec, options: FeatureOptions) -> None:
        self.options = options
        self.extractor = ganframe.get_registry().build("feature_extractor", options.extractor,
                                                       options.extractor_options, spec)
        self.identity = {
            "extractor": options.extractor,
            "extractor_options": json.loads(json.dumps(options.extractor_options, default=str)),
            "weights_hash": self.extractor.weights_hash,
            "preprocessing": getattr(self.extractor, "preprocessing", None),
            "spec": {"shape": list(spec.shape), "value_range": list(spec.value_range)},
        }

    def protocol(self) -> dict[str, Any]:
        own = self.options.model_dump(mode="json", exclude={"extractor", "extractor_options"})
        return {**self.identity, "options": own, "higher_is_better": self.higher_is_better}

    def features(self, real: np.ndarray, fake: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Both sets' features, kept in memory; the real set's also on disk, unless the extractor names
        no weights (``weights_hash`` None), when a changed plugin could not be told from the cached one."""
        persist = self.identity["weights_hash"] is not None
        return (FEATURES.get("features", self.identity, real, self.extractor, persist=persist),
                FEATURES.get("features", self.identity, fake, self.extractor, persist=False))


class FID(FeatureMetric):
    def compute(self, real: np.ndarray, fake: np.ndarray) -> dict[str, float]:
        real_features, fake_features = self.features(real, fake)
        return {"fid": frechet_distance(*feature_statistics(real_features), *feature_statistics(fake_features))}


class KidOptions(FeatureOptions):
    subsets: int = Field(100, gt=0, description="random subsets the MMD² is averaged over")
    subset_size: int = Field(1000, ge=2, description="samples per set in each subset (at most the set size)")
    seed: int = Field(0, ge=0, description="seed of the subset draws")


class KID(FeatureMetric):
    def compute(self, real: np.ndarray, fake: np.ndarray) -> dict[str, float]:
        options = self.options
        mean, std = kernel_inception_distance(*self.features(real, fake), options.subsets, options.subset_size, options.seed)
        return {"kid": mean, "kid_std": std}


class InceptionScoreOptions(FeatureOptions):
    splits: int = Field(10, gt=0, description="the generated set is split this many ways (at most one per image)")


class InceptionScore(FeatureMetric):
    """Needs class probabilities: an extractor with ``probabilities(images)`` (``mnist``; not ``inception``,
    whose no-top network has no classifier). Uses only the generated images."""

    higher_is_better = True

    def __init__(self, spec: DataSpec, options: InceptionScoreOptions) -> None:
        super().__init__(spec, options)
        if not callable(getattr(self.extractor, "probabilities", None)):
            raise ConfigError(f"metric 'inception_score' needs class probabilities, which feature extractor "
                              f"{options.extractor!r} does not give (it has no probabilities(images) method); "
                              "use extractor = \"mnist\"")

    def compute(self, real: np.ndarray, fake: np.ndarray) -> dict[str, float]:
        probabilities = FEATURES.get("probabilities", self.identity, fake, self.extractor.probabilities, persist=False)
        mean, std = inception_score(probabilities, self.options.splits)
        return {"inception_score": mean, "inception_score_std": std}


class PrecisionRecallOptions(FeatureOptions):
    k: int = Field(3, gt=0, description="the k-th nearest neighbour bounds each ball (Kynkäänniemi et al. use 3)")


class PrecisionRecall(FeatureMetric):
    higher_is_better = True

    def compute(self, real: np.ndarray, fake: np.ndarray) -> dict[str, float]:
        precision, recall = precision_recall(*self.features(real, fake), self.options.k)
        return {"precision": precision, "recall": recall}


class DensityCoverageOptions(FeatureOptions):
    k: int = Field(5, gt=0, description="the k-th nearest neighbour bounds each real ball (Naeem et al. recommend 5)")


class DensityCoverage(FeatureMetric):
    higher_is_better = True

    def compute(self, real: np.ndarray, fake: np.ndarray) -> dict[str, float]:
        density, coverage = density_coverage(*self.features(real, fake), self.options.k)
        return {"density": density, "coverage": coverage}


@hookimpl
def ganframe_register_metrics(register: Callable[..., None]) -> None:
    register("fid", FID, "Fréchet distance of feature Gaussians (Heusel et al. 2017); lower is better.", FeatureOptions)
    register("kid", KID, "Kernel Inception Distance: unbiased cubic-kernel MMD², mean and std over subsets "
                         "(Bińkowski et al. 2018); lower is better.", KidOptions)
    register("inception_score", InceptionScore, "Inception Score of the generated images from a classifier's "
                                                "probabilities (Salimans et al. 2016); higher is better.",
             InceptionScoreOptions)
    register("precision_recall", PrecisionRecall, "Improved precision and recall, k-NN manifolds "
                                                  "(Kynkäänniemi et al. 2019); higher is better.", PrecisionRecallOptions)
    register("density_coverage", DensityCoverage, "Density and coverage, real k-NN balls (Naeem et al. 2020); "
                                                  "higher is better.", DensityCoverageOptions)
