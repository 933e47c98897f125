"""Train each recipe of docs/recipes/ and measure what it reached: the numbers in docs/recipes/README.md.

Per recipe: ``ganframe train --config RECIPE`` in a subprocess (wall time and the CPU time it
used, so a busy machine shows as CPU/wall < cores), then on its final generator (EMA when the
recipe keeps one), 10,000 samples scored against 10,000 MNIST test images (FID and KID with the
shipped MNIST extractor, the test set preprocessed as the recipe's data) and judged by the
shipped MNIST classifier: classes found (≥ 2% of the samples), the smallest and largest class
share, and, for conditional recipes, the share of samples of class k classified as k.

    python tools/measure_recipes.py --data-dir ../shared/datasets/mnist --out runs/recipes
    python tools/measure_recipes.py --data-dir ../shared/datasets/mnist --out runs/recipes docs/recipes/dense-mnist.toml
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

RECIPES = Path(__file__).resolve().parent.parent / "docs" / "recipes"
N = 10_000
FOUND_SHARE = 0.02


def train(recipe: Path, out: Path, data_dir: str) -> dict[str, float]:
    """Run the recipe's training as a user would; its wall and CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ganframe", "train", "--config", str(recipe), "--data-dir", data_dir,
                    "--out", str(out), "--overwrite"], check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1)}


def judge(run: Any, classifier: Any) -> dict[str, Any]:
    """Class coverage of N samples, and for a conditional run the accuracy of each class."""
    gan = run.gan
    result: dict[str, Any] = {}
    labels = None
    if gan.conditional:
        labels = np.repeat(np.arange(gan.num_classes), N // gan.num_classes).astype(np.int32)
    images = gan.generate(len(labels) if labels is not None else N, seed=1, labels=labels)
    predicted = classifier.probabilities(images).argmax(axis=1)
    shares = np.bincount(predicted, minlength=10) / len(predicted)
    result["classes_found"] = int((shares >= FOUND_SHARE).sum())
    result["min_share"] = round(float(shares.min()), 4)
    result["max_share"] = round(float(shares.max()), 4)
    if labels is not None:
        accuracy = [float((predicted[labels == k] == k).mean()) for k in range(gan.num_classes)]
        result["class_accuracy_mean"] = round(float(np.mean(accuracy)), 4)
        result["class_accuracy_min"] = round(float(np.min(accuracy)), 4)
    return result


def measure(recipe: Path, out: Path, data_dir: str) -> dict[str, Any]:
    import ganframe
    from ganframe.builtin.features import MnistFeatures, MnistOptions

    run_dir = out / recipe.stem
    timing = train(recipe, run_dir, data_dir)
    run = ganframe.load_run(run_dir)
    config = run.config
    steps = run.step
    with open(run_dir / "evaluations.csv") as handle:
        eval_s = sum(float(row["seconds"]) for row in csv.DictReader(handle))
    data_options = {key: value for key, value in config.data_options.items() if key in ("pad_to", "resize", "value_range")}
    scores = ganframe.evaluate(run_dir, f"{config.data}:test", ["fid", "kid"], n=N, against_options=data_options,
                               data_dir=data_dir, seed=0)
    classifier = MnistFeatures(run.spec, MnistOptions())
    return {
        "recipe": recipe.name,
        "steps": steps,
        **timing,
        "eval_s": round(eval_s, 1),
        "steps_per_s": round(steps / (timing["wall_s"] - eval_s), 2),  # start-up (TF import, XLA) included
        "fid": round(scores.scores["fid"], 2),
        "kid": round(scores.scores["kid"], 4),
        **judge(run, classifier),
        "samples": str(max((run_dir / "samples").glob("step_*.png"), default="")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipes", nargs="*", type=Path, help="recipe TOMLs (default: every measured one)")
    parser.add_argument("--data-dir", default=os.environ.get("GANFRAME_DATA_DIR"), required="GANFRAME_DATA_DIR" not in os.environ)
    parser.add_argument("--out", type=Path, default=Path("runs/recipes"))
    args = parser.parse_args()
    recipes = args.recipes or sorted(p for p in RECIPES.glob("*-mnist.toml"))
    results = []
    for recipe in recipes:
        results.append(measure(recipe, args.out, args.data_dir))
        print(json.dumps(results[-1]), flush=True)
        (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print("| recipe | steps | wall s | CPU s | evaluation s | steps/s | FID | KID | classes | min share | max share |")
    for r in results:
        print(f"| {r['recipe']} | {r['steps']} | {r['wall_s']} | {r['cpu_s']} | {r['eval_s']} | {r['steps_per_s']} | {r['fid']} | "
              f"{r['kid']} | {r['classes_found']}/10 | {r['min_share']} | {r['max_share']} |")


if __name__ == "__main__":
    main()
