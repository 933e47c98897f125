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
from typer.testing import CliRunner

import ganframe
import ganframe.plugins
from ganframe.builtin import features as features_module
from ganframe.builtin import metrics as m
from ganframe.cli import app
from ganframe.testing import check_feature_extractor, check_metric
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
    assert m.frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2)) == pytest.approx(closed, rel=1e-10)
    # the same from samples: the statistics of 200,000 draws
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
    assert m.frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("count", [1000, 20])  # 20 samples of 64 features: singular covariances
def test_fid_of_a_set_with_itself_is_zero(count: int) -> None:
    features = np.random.default_rng(2).normal(size=(count, 64)) ** 2
    stats = m.feature_statistics(features)
    assert 0.0 <= m.frechet_distance(*stats, *stats) < 1e-8


def test_unbiased_mmd2_equals_the_direct_double_sum() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(7, 3)), rng.normal(0.5, 1.2, size=(9, 3))
    kernel = lambda a, b: (a @ b / 3 + 1) ** 3  # noqa: E731
    xx = sum(kernel(x[i], x[j]) for i, j in itertools.permutations(range(7), 2)) / (7 * 6)
    yy = sum(kernel(y[i], y[j]) for i, j in itertools.permutations(range(9), 2)) / (9 * 8)
    xy = sum(kernel(a, b) for a in x for b in y) / (7 * 9)
    assert m.polynomial_mmd2(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-12)


def test_kid_averages_over_subsets_and_is_near_zero_for_one_distribution() -> None:
    rng = np.random.default_rng(4)
    x, y, far = rng.normal(size=(400, 8)), rng.normal(size=(400, 8)), rng.normal(1.0, 1.0, size=(400, 8))
    whole, spread = m.kernel_inception_distance(x, y, subsets=5, subset_size=1000, seed=0)  # subsets = whole sets
    assert whole == pytest.approx(m.polynomial_mmd2(x, y)) and spread == pytest.approx(0, abs=1e-12)
    same, same_std = m.kernel_inception_distance(x, y, subsets=20, subset_size=100, seed=0)
    apart, _ = m.kernel_inception_distance(x, far, subsets=20, subset_size=100, seed=0)
    assert abs(same) < 3 * same_std and apart > 10 * same_std > 0


def test_inception_score_of_uniform_and_one_hot_predictions() -> None:
    classes = 10
    assert m.inception_score(np.full((50, classes), 1 / classes), splits=5) == pytest.approx((1.0, 0.0))
    one_hot = np.eye(classes)[np.arange(100) % classes]  # confident, and every class equally often
    assert m.inception_score(one_hot, splits=10) == pytest.approx((classes, 0.0))


def test_knn_radii_match_brute_force_in_any_block_size(monkeypatch: pytest.MonkeyPatch) -> None:
    x = np.random.default_rng(5).normal(size=(50, 4))
    brute = np.sort(np.linalg.norm(x[:, None] - x[None], axis=-1), axis=1)[:, 3]
    monkeypatch.setattr(m, "DISTANCE_BLOCK", 7)
    assert np.allclose(m.knn_radii(x, 3), brute)


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


# -- the components ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", METRICS)
def test_metrics_honour_the_contract(name: str) -> None:
    metric = check_metric(name)
    assert metric.protocol()["extractor"] == "mnist"


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
    probabilities = extract.probabilities(test.images)
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
    assert fid.compute(real, fake) == pytest.approx(first)
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
    protocol = json.loads((run.path / "evaluations.json").read_text())
    assert protocol["n_real"] == 100 and set(protocol["metrics"]) == {"fid", "precision_recall"}
    assert protocol["metrics"]["fid"]["weights_hash"] == features_module.weights_sha256(features_module.MNIST_WEIGHTS)

    from ganframe.evaluation import evaluate

    scored = evaluate(run.path, against="digits", metrics={"kid": {"subsets": 5}}, n=200, seed=1)
    assert scored.protocol["fake"] == {"source": "run", "path": str(run.path), "step": 6, "checkpoint": "latest",
                                       "seed": 1, "images": 200}
    assert scored.protocol["real"]["subset"] == "random, seed 1, of 1797" and set(scored.scores) == {"kid", "kid_std"}
