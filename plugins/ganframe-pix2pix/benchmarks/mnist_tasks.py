"""pix2pix against the L1-only baseline on three MNIST tasks, measured on held-out test pairs.

For each task (superres: 7x7 -> 28x28; inpaint: a 14x14 centre hole; edges: Sobel edges -> digit)
it trains ``docs/recipes/pix2pix-mnist-<task>.toml`` and ``pix2pix-mnist-<task>-l1.toml`` (the
same U-Net, steps and seed, no adversarial loss) through the CLI, as a user would, then scores
both on the first N MNIST **test** images, which neither saw, each output against its own target:

- ``fid``: FID with the shipped MNIST extractor, the N outputs against the N test images
- ``accuracy``: the shipped MNIST classifier's accuracy on the outputs, against the label of the
  digit the condition was made from (the task's content kept), beside its accuracy on the
  conditions themselves and on the targets
- ``l1``, ``psnr``, ``ssim``: each output against its target (ganframe-pix2pix's metrics)

and writes ``results.json`` and one grid per task, rows input | L1 only | pix2pix | target, into
``--out``. Usage (from the repository root; MNIST from ../shared/datasets/mnist or GANFRAME_DATA_DIR):

    .venv/bin/python plugins/ganframe-pix2pix/benchmarks/mnist_tasks.py --out runs/pix2pix

Not part of the test suite: it trains six GANs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

RECIPES = Path(__file__).resolve().parents[3] / "docs" / "recipes"
TASKS = ("superres", "inpaint", "edges")
GRID_DIGITS = 8


def train(recipe: Path, out: Path, data_dir: str, steps: int | None) -> float:
    """``ganframe train --config recipe`` in a subprocess; its wall seconds."""
    command = [sys.executable, "-m", "ganframe", "train", "--config", str(recipe), "--data-dir", data_dir,
               "--out", str(out), "--overwrite"]
    if steps is not None:
        command += ["--steps", str(steps)]
    start = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - start


def score(run: Any, targets: np.ndarray, labels: np.ndarray, classifier: Any, metrics: dict[str, Any]) -> dict[str, Any]:
    """The run's outputs for the targets' conditions, scored against the targets; and the outputs."""
    import ganframe
    from ganframe.pairs import derive_conditions

    conditions = derive_conditions(targets, run.config.pairs, run.spec)
    outputs = run.generate(len(targets), conditions=conditions)
    result: dict[str, Any] = {"step": run.step}
    for metric in metrics.values():
        result.update({name: round(value, 4) for name, value in metric.compute(targets, outputs).items()})
    result["accuracy"] = round(float((classifier.probabilities(outputs).argmax(axis=1) == labels).mean()), 4)
    inputs = ganframe.display_as(conditions, targets.shape[1:])  # what the classifier can read: the targets' size
    result["accuracy_of_inputs"] = round(float((classifier.probabilities(inputs).argmax(axis=1) == labels).mean()), 4)
    return {"scores": result, "conditions": conditions, "outputs": outputs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("GANFRAME_DATA_DIR"),
                        required="GANFRAME_DATA_DIR" not in os.environ)
    parser.add_argument("--out", type=Path, default=Path("runs/pix2pix"))
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated subset of " + ", ".join(TASKS))
    parser.add_argument("--n", type=int, default=5000, help="test images scored (default 5000)")
    parser.add_argument("--steps", type=int, default=None, help="train steps (default: the recipes')")
    args = parser.parse_args()

    import ganframe
    from ganframe.builtin.features import MnistFeatures, MnistOptions
    from ganframe.images import save_image_grid

    registry = ganframe.get_registry()
    results: dict[str, Any] = {}
    for task in args.tasks.split(","):
        runs = {}
        for variant, suffix in (("pix2pix", ""), ("l1_only", "-l1")):
            recipe = RECIPES / f"pix2pix-mnist-{task}{suffix}.toml"
            seconds = train(recipe, args.out / recipe.stem, args.data_dir, args.steps)
            runs[variant] = (ganframe.load_run(args.out / recipe.stem), round(seconds, 1))
        run = runs["pix2pix"][0]
        options = {**run.config.data_options, "split": "test", "limit": args.n}
        test = registry.build("dataset", run.config.data, options, ganframe.DataContext(Path(args.data_dir), 0))
        targets, labels = test.float_images(), test.labels
        classifier = MnistFeatures(run.spec, MnistOptions())
        metrics = {name: registry.build("metric", name, {}, run.spec) for name in ("fid", "l1", "psnr", "ssim")}
        scored = {variant: score(loaded, targets, labels, classifier, metrics) for variant, (loaded, _) in runs.items()}
        results[task] = {variant: {**scored[variant]["scores"], "train_s": runs[variant][1]} for variant in runs}
        results[task]["targets_accuracy"] = round(float((classifier.probabilities(targets).argmax(axis=1) == labels)
                                                        .mean()), 4)
        results[task]["fid_ratio"] = round(scored["pix2pix"]["scores"]["fid"] / scored["l1_only"]["scores"]["fid"], 3)
        rows = [ganframe.display_as(scored["pix2pix"]["conditions"], targets.shape[1:]), scored["l1_only"]["outputs"],
                scored["pix2pix"]["outputs"], targets]
        cells = np.stack([row[:GRID_DIGITS] for row in rows], axis=0).reshape(-1, *targets.shape[1:])
        save_image_grid(cells, args.out / f"{task}.png", run.spec.value_range, columns=GRID_DIGITS)
        print(json.dumps({task: results[task]}), flush=True)
        (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
