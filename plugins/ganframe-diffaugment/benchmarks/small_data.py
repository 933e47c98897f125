"""Does DiffAugment help on small data? dcgan on a 1,000-image MNIST subset, with and without it.

Both runs use the same seed, steps, batch size and architecture; the only difference is
``augmentations = {"diffaugment": {...}}``. For each run it reports, from 1,000 samples judged by
a logistic-regression classifier trained on the 10,000 real MNIST *test* images (never seen by
either GAN):

- ``coverage``: classes that receive at least 2% of the samples (of 10)
- ``class_entropy``: entropy of the predicted class histogram, in nats (uniform: ln 10 = 2.303)
- ``confidence``: mean top-class probability (sharp, digit-like samples score higher)
- ``diversity``: mean pairwise L2 distance between samples predicted as the same class, averaged
  over classes, divided by the same for real test images (1.0 = as varied as real data)
- ``nn_train``: mean L2 distance of a sample to its nearest neighbour among the 1,000 training
  images (small = copying the training set)

and, for the discriminator (un-augmented images, training mode off):

- ``d_gap_csv``: mean d_real - d_fake over the last quarter of metrics.csv (the logits the step
  saw, i.e. on *augmented* images in the DiffAugment run)
- ``d_train_minus_val``: mean D logit on the 1,000 training images minus that on 1,000 held-out
  real test images; a large value means D memorised the training set (the paper's diagnosis).

Usage (from the repository root; the MNIST files from ../shared/datasets/mnist or GANFRAME_DATA_DIR):

    .venv/bin/python plugins/ganframe-diffaugment/benchmarks/small_data.py --steps 1000 --out /tmp/bench

Not part of the test suite: it takes minutes.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[3]


def data_dir(given: str | None) -> Path:
    for candidate in (given, os.environ.get("GANFRAME_DATA_DIR"), REPO.parent / "shared" / "datasets" / "mnist"):
        if candidate and Path(candidate).exists():
            return Path(candidate)
    raise SystemExit("no MNIST files: pass --data-dir or set GANFRAME_DATA_DIR")


def train(name: str, args: argparse.Namespace, augmentations: dict) -> object:
    import ganframe

    config = {
        "arch": "dcgan",
        "arch_options": {"base_channels": args.base_channels, "latent_dim": 64},
        "data": "mnist",
        "data_options": {"limit": args.limit},
        "data_dir": str(data_dir(args.data_dir)),
        "augmentations": augmentations,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "jit_compile": args.jit,
        "callbacks": {
            "samples": {"every": max(args.steps // 4, 1)},
            "checkpoint": {"every": 0},
            "metrics": {"every": max(args.steps // 40, 1)},
        },
        "out": str(Path(args.out) / name),
    }
    start = time.perf_counter()
    run = ganframe.train(config, overwrite=True, progress=False)
    print(f"{name}: {args.steps} steps in {time.perf_counter() - start:.0f} s", flush=True)
    return run


def pairwise_mean(x: np.ndarray) -> float:
    if len(x) < 2:
        return float("nan")
    sq = (x * x).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0.0)
    return float(np.sqrt(d2)[np.triu_indices(len(x), 1)].mean())


def nearest(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    d2 = (x * x).sum(1)[:, None] + (ref * ref).sum(1)[None, :] - 2 * x @ ref.T
    return np.sqrt(np.maximum(d2.min(1), 0.0))


def class_stats(images: np.ndarray, clf) -> tuple[np.ndarray, np.ndarray]:
    probs = clf.predict_proba(images)
    return probs.argmax(1), probs.max(1)


def diversity(images: np.ndarray, labels: np.ndarray, per_class: int = 200) -> dict[int, float]:
    return {c: pairwise_mean(images[labels == c][:per_class]) for c in range(10) if (labels == c).sum() >= 5}


def evaluate(run, name: str, train_x: np.ndarray, val_x: np.ndarray, clf, real_div: dict, n: int) -> dict:
    fake = run.generate(n, seed=123).reshape(n, -1)
    labels, conf = class_stats(fake, clf)
    hist = np.bincount(labels, minlength=10) / n
    nz = hist[hist > 0]
    fake_div = diversity(fake, labels)
    ratios = [fake_div[c] / real_div[c] for c in fake_div if np.isfinite(fake_div[c])]

    with open(run.path / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    tail = rows[-max(len(rows) // 4, 1):]
    gap = float(np.mean([float(r["d_real"]) - float(r["d_fake"]) for r in tail]))

    d = run.gan.discriminator
    d_train = float(np.mean(d.predict(train_x.reshape(-1, 28, 28, 1), batch_size=250, verbose=0)))
    d_val = float(np.mean(d.predict(val_x.reshape(-1, 28, 28, 1), batch_size=250, verbose=0)))
    d_fake = float(np.mean(d.predict(fake.reshape(-1, 28, 28, 1), batch_size=250, verbose=0)))
    return {
        "run": name,
        "coverage": int((hist >= 0.02).sum()),
        "class_entropy": round(abs(float((nz * np.log(nz)).sum())), 3),
        "class_hist": [round(float(h), 3) for h in hist],
        "confidence": round(float(conf.mean()), 3),
        "diversity": round(float(np.mean(ratios)), 3) if ratios else float("nan"),
        "nn_train": round(float(nearest(fake, train_x).mean()), 3),
        "d_gap_csv": round(gap, 3),
        "d_train_minus_val": round(d_train - d_val, 3),
        "d_val_minus_fake": round(d_val - d_fake, 3),
        "last_grid": str(sorted((run.path / "samples").glob("*.png"))[-1]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--base-channels", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--policy", default="color,translation,cutout")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--data-dir")
    parser.add_argument("--jit", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--out", default="/tmp/ganframe-diffaugment-bench")
    args = parser.parse_args()

    import ganframe
    from sklearn.linear_model import LogisticRegression

    context = ganframe.DataContext(data_dir(args.data_dir))
    registry = ganframe.get_registry()
    train_set = registry.build("dataset", "mnist", {"limit": args.limit}, context)
    test_set = registry.build("dataset", "mnist", {"split": "test"}, context)
    train_x = train_set.float_images().reshape(len(train_set), -1)
    test_x, test_y = test_set.float_images().reshape(len(test_set), -1), test_set.labels

    start = time.perf_counter()
    clf = LogisticRegression(max_iter=200).fit(test_x, test_y)
    print(f"classifier: trained on {len(test_x)} real test images in {time.perf_counter() - start:.0f} s "
          f"(accuracy on the 1,000 training images: {clf.score(train_x, train_set.labels):.3f})", flush=True)
    real_labels, real_conf = class_stats(test_x[:args.samples], clf)
    real_div = diversity(test_x, test_y)  # per true class, as reference

    results = [{"run": "real test images", "coverage": int((np.bincount(real_labels, minlength=10) / len(real_labels) >= 0.02).sum()),
                "confidence": round(float(real_conf.mean()), 3), "diversity": 1.0,
                "nn_train": round(float(nearest(test_x[:args.samples], train_x).mean()), 3)}]
    val_x = test_x[-1000:]
    for name, augmentations in (("baseline", {}), ("diffaugment", {"diffaugment": {"policy": args.policy}})):
        run = train(name, args, augmentations)
        results.append(evaluate(run, name, train_x, val_x, clf, real_div, args.samples))

    print(json.dumps(results, indent=1))
    (Path(args.out) / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
