"""The built-in metrics and feature extractors: the math against closed forms and direct sums,
the shipped MNIST classifier, the feature cache, the protocol, ``ganframe evaluate`` and the
metrics inside a training run.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import ganframe
import ganframe.plugins
from ganframe.builtin import features as features_module
from ganframe.builtin import metrics as m
from ganframe.cli import app
from ganframe.testing import TINY_SPEC, check_feature_extractor, check_metric, tiny_data
from datafiles import REAL_MNIST, needs_mnist
from tinyrun import tiny_config

METRICS = ("fid", "kid", "inception_score", "precision_recall", "density_coverage")


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private feature cache, empty in memory and on disk."""
    monkeypatch.setenv("GANFRAME_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(m, "FEATURES", m.FeatureStore())
    return tmp_path / "cache"


# -- the math ---------------------------------------------------------------------------------------


def test_fid_of_diagonal_gaussians_is_the_closed_form() -> None:
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    var1, var2 = rng.uniform(0.1, 3, 6), rng.uniform(0.1, 3, 6)
    closed = np.sum((mu1 - mu2) ** 2) + np.sum(var1 + var2 - 2 * np.sqrt(var1 * var2))
    # rounding only: measured 4e-16 and 0 relative (seeds 0 and 10)
    assert m.frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2)) == pytest.approx(closed, rel=1e-10)
    # the same from samples: the statistics of 200,000 draws, whose relative error measured 0.2% std
    # (at most 0.4% over 10 draws): 2% is 10 std
    x = mu1 + np.sqrt(var1) * rng.standard_normal((200_000, 6))
    y = mu2 + np.sqrt(var2) * rng.standard_normal((200_000, 6))
    assert m.frechet_distance(*m.feature_statistics(x), *m.feature_statistics(y)) == pytest.approx(closed, rel=0.02)


def test_fid_agrees_with_scipy_sqrtm_on_full_covariances() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(8, 8)), rng.normal(size=(8, 8))
    sigma1, sigma2 = a @ a.T, b @ b.T + np.eye(8)
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    root = scipy.linalg.sqrtm(sigma1 @ sigma2).real
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(sigma1 + sigma2 - 2 * root)
    # sqrtm's Schur method is the less exact one: measured 5e-15 and 2.5e-13 relative (seeds 1 and 11)
    assert m.frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("seed", [2, 3])
@pytest.mark.parametrize("count", [1000, 20])  # 20 samples of 64 features: singular covariances
def test_fid_of_a_set_with_itself_is_zero(count: int, seed: int) -> None:
    features = np.random.default_rng(seed).normal(size=(count, 64)) ** 2
    stats = m.feature_statistics(features)
    # rounding of traces near 127: measured 2.8e-14 and 5.7e-14 (1000 samples), 0 (20), seeds 2 and 3
    assert 0.0 <= m.frechet_distance(*stats, *stats) < 1e-8


def test_unbiased_mmd2_equals_the_direct_double_sum() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(7, 3)), rng.normal(0.5, 1.2, size=(9, 3))
    kernel = lambda a, b: (a @ b / 3 + 1) ** 3  # noqa: E731
    xx = sum(kernel(x[i], x[j]) for i, j in itertools.permutations(range(7), 2)) / (7 * 6)
    yy = sum(kernel(y[i], y[j]) for i, j in itertools.permutations(range(9), 2)) / (9 * 8)
    xy = sum(kernel(a, b) for a in x for b in y) / (7 * 9)
    # the same sums in another order: measured 2e-16 and 6e-16 relative (seeds 3 and 13)
    assert m.polynomial_mmd2(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-12)


@pytest.mark.parametrize("seed", [4, 14])
def test_kid_averages_over_subsets_and_is_near_zero_for_one_distribution(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x, y, far = rng.normal(size=(400, 8)), rng.normal(size=(400, 8)), rng.normal(1.0, 1.0, size=(400, 8))
    whole, spread = m.kernel_inception_distance(x, y, subsets=5, subset_size=1000, seed=0)  # subsets = whole sets
    # each subset is the whole set shuffled, so the sums differ by rounding only: measured 0 and 5e-14
    # relative, spread 0 and 2e-16 (seeds 4 and 14)
    assert whole == pytest.approx(m.polynomial_mmd2(x, y), rel=1e-9) and spread == pytest.approx(0, abs=1e-12)
    same, same_std = m.kernel_inception_distance(x, y, subsets=20, subset_size=100, seed=0)
    apart, _ = m.kernel_inception_distance(x, far, subsets=20, subset_size=100, seed=0)
    # measured |same| = 0.13 and 0.32 std, apart = 250 and 195 std (seeds 4 and 14)
    assert abs(same) < 3 * same_std and apart > 10 * same_std > 0


def test_inception_score_of_uniform_and_one_hot_predictions() -> None:
    classes = 10
    # rounding of exp(KL) only: measured 4e-16 and 2e-16 relative off 1 and 10
    assert m.inception_score(np.full((50, classes), 1 / classes), splits=5) == pytest.approx((1.0, 0.0))
    one_hot = np.eye(classes)[np.arange(100) % classes]  # confident, and every class equally often
    assert m.inception_score(one_hot, splits=10) == pytest.approx((classes, 0.0))


def test_knn_radii_match_brute_force_in_any_block_size(monkeypatch: pytest.MonkeyPatch) -> None:
    x = np.random.default_rng(5).normal(size=(50, 4)) + 1000  # far from 0: ‖a‖² + ‖b‖² − 2ab cancels badly
    brute = np.sort(np.linalg.norm(x[:, None] - x[None], axis=-1), axis=1)[:, 3]
    whole = m.knn_radii(x, 3)
    monkeypatch.setattr(m, "DISTANCE_BLOCK", 7)
    assert np.array_equal(m.knn_radii(x, 3), whole)  # bit for bit: a pair's distance does not depend on its block
    # norm's sum in another order: measured 2.2e-16 relative (seeds 5 and 15), the expansion's 9e-10
    assert np.allclose(whole, brute, rtol=1e-13, atol=0)


def test_precision_recall_density_coverage_on_constructed_sets() -> None:
    x = np.random.default_rng(6).normal(size=(300, 5))
    assert m.precision_recall(x, x.copy(), k=3) == (1.0, 1.0)
    density, coverage = m.density_coverage(x, x.copy(), k=5)
    assert coverage == 1.0 and density == pytest.approx(6 / 5)  # each real ball holds itself and its 5 neighbours
    assert m.precision_recall(x, x + 1000, k=3) == (0.0, 0.0)
    assert m.density_coverage(x, x + 1000, k=5) == (0.0, 0.0)
    dropped = x[x[:, 0] > 0.5]  # the reals on one side only: all realistic, but half the modes missing
    precision, recall = m.precision_recall(x, dropped, k=3)
    _, coverage = m.density_coverage(x, dropped, k=5)
    assert precision == 1.0 and recall < 0.6 and coverage < 0.6


@st.composite
def point_sets(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, int, int, bool]:
    """(points, a shuffled exact copy, k, block size, integer-valued): sizes, dimensions, scales and offsets
    vary, some sets hold repeated points, some only integers (whose squared distances are exact)."""
    k = draw(st.integers(1, 5))
    n, dim = draw(st.integers(k + 1, 40)), draw(st.integers(1, 16))
    integer = draw(st.booleans())
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if integer:
        points = rng.integers(-20, 21, (n, dim)) * 2 ** draw(st.integers(0, 10)) + draw(st.sampled_from([0, 10**6]))
    else:
        points = rng.normal(size=(n, dim)) * 10.0 ** draw(st.integers(-6, 6)) + draw(st.sampled_from([0.0, 1e6]))
    if draw(st.booleans()):  # repeated points, down to one point n times
        points = points[rng.integers(0, draw(st.integers(1, n)), n)]
    return points.astype(np.float64), points[rng.permutation(n)].astype(np.float64), k, draw(st.integers(1, n)), integer


@settings(max_examples=100, deadline=None)
@given(sets=point_sets())
def test_a_set_against_its_exact_copy_scores_exactly(sets: tuple[np.ndarray, np.ndarray, int, int, bool]) -> None:
    points, copy, k, block, integer = sets
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(m, "DISTANCE_BLOCK", block)
        precision_recall = m.precision_recall(points, copy, k)
        density, coverage = m.density_coverage(points, copy, k)
    n = len(points)
    # the module's distance of every pair at once: no blocks, no bounds
    squared = m.squared_distances(np.repeat(points, n, axis=0), np.tile(points, (n, 1))).reshape(n, n)
    if integer:  # then it is the exact one
        exact = points.astype(np.int64)
        assert np.array_equal(squared, ((exact[:, None] - exact[None]) ** 2).sum(axis=-1))
    radii = np.sort(squared, axis=1)[:, k]  # column 0: the point itself, at 0
    held = int((squared <= radii[:, None]).sum())  # each ball holds the copies of the points it holds
    assert precision_recall == (1.0, 1.0) and coverage == 1.0
    assert density == held / (k * n) >= (k + 1) / k  # (k + 1) / k unless a k-th neighbour ties with another point


# -- the components ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", METRICS)
def test_metrics_honour_the_contract(name: str) -> None:
    metric = check_metric(name)
    assert metric.protocol()["extractor"] == "mnist"


def test_metrics_score_a_copy_and_blank_images_as_their_closed_forms() -> None:
    real = tiny_data(TINY_SPEC, n=32).images  # 32 distinct images, so 32 distinct features
    copy, blank = real.copy(), np.zeros_like(real)

    def score(name: str, fake: np.ndarray) -> dict[str, float]:
        return ganframe.get_registry().build("metric", name, {}, TINY_SPEC).compute(real, fake)

    # identical statistics: rounding only, measured exactly 0 (seeds 0 and 1 of the images)
    assert score("fid", copy)["fid"] == pytest.approx(0, abs=1e-8)
    assert score("precision_recall", copy) == {"precision": 1.0, "recall": 1.0}
    assert score("density_coverage", copy) == {"density": 6 / 5, "coverage": 1.0}  # each ball: its centre and 5 more
    # the unbiased MMD² of a set with itself is −2/(m − 1) × (the kernel's mean diagonal − its mean): below 0
    assert score("kid", copy)["kid"] < 0
    assert 1.0 <= score("inception_score", real)["inception_score"] <= 10.0  # exp(KL) of 10 classes
    # one prediction for every image: KL 0, up to the rounding of their mean (measured exactly 1 and 0)
    assert tuple(score("inception_score", blank).values()) == pytest.approx((1.0, 0.0), abs=1e-12)


def test_mnist_extractor_honours_the_contract_and_refuses_colour() -> None:
    extract = check_feature_extractor("mnist")  # 8x8 images: resized to 28x28
    assert "8x8 resized to 28x28" in extract.preprocessing
    with pytest.raises(ganframe.ConfigError, match="grayscale.*inception"):
        ganframe.get_registry().build("feature_extractor", "mnist", {}, ganframe.DataSpec((28, 28, 3)))


def test_shipped_weights_match_their_record() -> None:
    record = json.loads(features_module.MNIST_RECORD.read_text())
    assert features_module.MNIST_WEIGHTS.stat().st_size < 1_000_000
    extract = ganframe.get_registry().build("feature_extractor", "mnist", {}, ganframe.DataSpec((28, 28, 1)))
    assert extract.weights_hash == record["sha256"]
    assert record["test_accuracy"] > 0.98 and record["seed"] == 0 and record["epochs"] >= 1


@needs_mnist
def test_shipped_classifier_reads_real_digits() -> None:
    test = ganframe.get_registry().build("dataset", "mnist", {"split": "test", "limit": 500},
                                         ganframe.DataContext(REAL_MNIST))
    extract = ganframe.get_registry().build("feature_extractor", "mnist", {}, test.spec)
    probabilities = extract.probabilities(test.float_images())
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    assert (probabilities.argmax(axis=1) == test.labels).mean() > 0.97


def test_inception_without_weights_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    registry = ganframe.get_registry()
    assert "not the tf-fid network" in registry.get("feature_extractor", "inception").description.lower()
    with pytest.raises(ganframe.ConfigError, match="no InceptionV3 weights at .*never downloads"):
        registry.build("metric", "fid", {"extractor": "inception"}, ganframe.DataSpec((28, 28, 1)))



class Pixels(ganframe.FeatureExtractor):
    """Features without class probabilities: the pixels themselves."""

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return images.reshape(len(images), -1)


def test_inception_score_needs_an_extractor_with_probabilities(monkeypatch: pytest.MonkeyPatch) -> None:
    plugin = type("PixelsPlugin", (), {"ganframe_register_feature_extractors": staticmethod(ganframe.hookimpl(
        lambda register: register("pixels", lambda spec, options: Pixels(), "The pixels.")))})
    monkeypatch.setattr(ganframe.plugins, "_REGISTRY", ganframe.load_plugins(extra=[("pixels", plugin)]))
    spec = ganframe.DataSpec((8, 8, 1))
    assert check_metric("fid", {"extractor": "pixels"}).protocol()["weights_hash"] is None
    with pytest.raises(ganframe.ConfigError, match="needs class probabilities, which feature extractor 'pixels'"):
        ganframe.get_registry().build("metric", "inception_score", {"extractor": "pixels"}, spec)


def test_real_features_are_cached_on_disk_by_their_protocol(_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = ganframe.DataSpec((8, 8, 1))
    real, fake = (np.random.default_rng(seed).random((64, 8, 8, 1), dtype=np.float32) for seed in (7, 8))
    first = ganframe.get_registry().build("metric", "fid", {}, spec).compute(real, fake)
    assert (m.FEATURES.hits, m.FEATURES.misses) == (0, 1) and len(list((_cache / "features").glob("*.npz"))) == 1

    monkeypatch.setattr(m, "FEATURES", m.FeatureStore())  # a new process: nothing in memory
    fid = ganframe.get_registry().build("metric", "fid", {}, spec)
    seen: list[int] = []
    extractor = fid.extractor
    monkeypatch.setattr(fid, "extractor", lambda images: seen.append(len(images)) or extractor(images))
    assert fid.compute(real, fake) == first  # the same features, bit for bit
    assert (m.FEATURES.hits, m.FEATURES.misses) == (1, 0) and seen == [64]  # only the fakes went through the network
    fid.compute(real * 0.5, fake)  # other images: another entry
    assert m.FEATURES.misses == 1 and len(list((_cache / "features").glob("*.npz"))) == 2


# -- evaluate: the API, the CLI, and inside a run ---------------------------------------------------------


def test_evaluate_cli_on_an_npz_writes_scores_and_protocol(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    images = np.random.default_rng(9).random((40, 8, 8), dtype=np.float32)
    np.savez("real.npz", images=images)
    np.savez("fake.npz", images=images)
    result = CliRunner().invoke(app, ["evaluate", "fake.npz", "--against", "npz", "--against-option", "path=real.npz",
                                      "-m", "fid", "-m", "kid", "-m", "precision_recall", "--metric-option", "kid.subsets=3",
                                      "--out", "scores.json"])
    assert result.exit_code == 0, result.output
    assert "fid" in result.stdout and "wrote the scores and their protocol to scores.json" in result.stdout
    saved = json.loads(Path("scores.json").read_text())
    scores, protocol = saved["scores"], saved["protocol"]
    # identical statistics: rounding only, measured exactly 0
    assert scores["fid"] == pytest.approx(0, abs=1e-6) and scores["precision"] == scores["recall"] == 1.0
    assert protocol["ganframe"] == ganframe.__version__ and protocol["n_real"] == protocol["n_fake"] == 40
    assert protocol["real"] == {"data": "npz", "options": {"path": "real.npz"}, "images": 40, "subset": "all"}
    assert protocol["fake"] == {"source": "file", "path": "fake.npz", "images": 40}
    kid = protocol["metrics"]["kid"]
    assert kid["options"] == {"subsets": 3, "subset_size": 1000, "seed": 0} and kid["extractor"] == "mnist"
    assert kid["weights_hash"] == json.loads(features_module.MNIST_RECORD.read_text())["sha256"]
    assert kid["preprocessing"] == "values [0, 1] mapped to [0, 1]; 8x8 resized to 28x28 (bilinear, antialiased)"


def test_metrics_score_a_training_run(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, metrics={"fid": {}, "precision_recall": {}}, evaluation={"every": 3, "samples": 100})
    run = ganframe.train(config, progress=False)
    rows = (run.path / "evaluations.csv").read_text().splitlines()
    assert rows[0] == "step,fid,precision,recall,seconds" and len(rows) == 4  # steps 0, 3, 6
    for row in rows[1:]:
        fid, precision, recall = map(float, row.split(",")[1:4])
        # a generator 6 steps old is far from the digits: measured FID 117, 105, 100
        assert fid > 10 and 0 <= precision <= 1 and 0 <= recall <= 1
    protocol = json.loads((run.path / "evaluations.json").read_text())
    assert protocol["n_real"] == 100 and set(protocol["metrics"]) == {"fid", "precision_recall"}
    assert protocol["metrics"]["fid"]["weights_hash"] == features_module.weights_sha256(features_module.MNIST_WEIGHTS)

    from ganframe.evaluation import evaluate

    scored = evaluate(run.path, against="digits", metrics={"kid": {"subsets": 5}}, n=200, seed=1)
    assert scored.protocol["fake"] == {"source": "run", "path": str(run.path), "step": 6, "checkpoint": "latest",
                                       "seed": 1, "images": 200}
    assert scored.protocol["real"]["subset"] == "random, seed 1, of 1797" and set(scored.scores) == {"kid", "kid_std"}
