"""The real-vs-real floor of the built-in metrics and the time they take (docs/evaluation.md, "Measured").

    python tools/real_floor.py --data-dir ../shared/datasets/mnist [--n 10000]

Scores a seeded random subset of ``n`` MNIST *train* digits, as if they were generated, against
``n`` test digits with every built-in metric and the shipped ``mnist`` extractor: what a perfect
generator would get. Runs twice in one process with a fresh cache directory, so the first pass
extracts the real features (cold cache) and the second reads them from disk (warm cache), and
prints both timings.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import ganframe  # noqa: E402
from ganframe.builtin import metrics  # noqa: E402
from ganframe.evaluation import evaluate  # noqa: E402

METRICS = ("fid", "kid", "inception_score", "precision_recall", "density_coverage")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    train = ganframe.get_registry().build("dataset", "mnist", {"split": "train"}, ganframe.DataContext(args.data_dir))
    pick = np.sort(np.random.default_rng(args.seed).choice(len(train), args.n, replace=False))
    fake = train.float_images()[pick]
    os.environ["GANFRAME_CACHE_DIR"] = tempfile.mkdtemp(prefix="ganframe-floor-")
    for cache in ("cold", "warm"):
        metrics.FEATURES = metrics.FeatureStore()  # as a new process would start: nothing in memory
        started = time.perf_counter()
        result = evaluate(fake, "mnist:test", METRICS, n=args.n, data_dir=args.data_dir, seed=args.seed)
        print(json.dumps({"cache": cache, "n": args.n, "scores": result.scores,
                          "scoring_seconds": result.protocol["seconds"],
                          "total_seconds": round(time.perf_counter() - started, 2)}, indent=2))
    real = ganframe.get_registry().build("dataset", "mnist", {"split": "test"}, ganframe.DataContext(args.data_dir))
    seconds = {}
    for name in METRICS:  # features already in memory: each metric's own math
        metric = ganframe.get_registry().build("metric", name, {}, real.spec)
        started = time.perf_counter()
        metric.compute(real.float_images()[: args.n], fake)
        seconds[name] = round(time.perf_counter() - started, 2)
    started = time.perf_counter()
    metric.extractor(fake)
    seconds["mnist features of the fake set"] = round(time.perf_counter() - started, 2)
    print(json.dumps({"seconds": seconds}, indent=2))


if __name__ == "__main__":
    main()
