"""Training from a folder of images at real sizes: memory, start-up, input speed and resume cost.

Generates folders of 64x64 RGB JPEGs (``--sizes``, default 20,000 and 200,000; cached under
``--work``, never part of the project) and measures, side by side:

``cli``
    ``ganframe train --arch dcgan --data folder`` for 20 steps on each folder, as a user runs it, in
    a fresh process: its peak RSS and wall time; and a 1-step run's wall time (the time to the first
    step, TensorFlow's import included). The smallest folder is also trained from an ``.npz`` of the
    same images (``--data npz``, the whole set in memory as float32, which is how ``folder`` loaded
    before it streamed): the memory a streaming folder saves.
``speed``
    In one process, on the smallest folder: the input pipeline alone (batches of 64 read, decoded and
    converted, nothing trained) in images/s, against what the dcgan step consumes; and the dcgan's
    steps/s trained from the streaming folder against the same images held in memory, in alternating
    rounds.
``resume``
    Time to the first batch of the largest folder's pipeline started at step 10 and at step 100,000
    (a resumed run): the order is a function of (seed, epoch), so nothing before the step is read.

    python benchmarks/data_scale.py --work ../bench-data --json data_scale.json
    python benchmarks/data_scale.py --work ../bench-data --quick      # 2,000 and 8,000 images, short rounds
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import numpy as np

SIDE = 64
BATCH = 64

#: Runs ``argv`` in a child and prints its peak RSS (MiB) and wall time: the measuring process stays out of the figure.
MEASURE = """
import json, resource, subprocess, sys, time
began = time.perf_counter()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(json.dumps({"code": done.returncode, "seconds": time.perf_counter() - began,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                  "tail": (done.stdout + done.stderr)[-600:]}))
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="where the generated folders are kept between runs")
    parser.add_argument("--sizes", default="20000,200000", help="comma-separated image counts (default 20000,200000)")
    parser.add_argument("--sections", default="cli,speed,resume", help="comma-separated subset of cli, speed, resume")
    parser.add_argument("--steps", type=int, default=20, help="steps of each CLI run (default 20)")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds of the speed comparison")
    parser.add_argument("--round-steps", type=int, default=15, help="dcgan steps per round")
    parser.add_argument("--quick", action="store_true", help="2,000 and 8,000 images, 2 rounds of 5 steps")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.rounds, args.round_steps = "2000,8000", 2, 5
    args.sizes = sorted(int(size) for size in args.sizes.split(","))
    args.sections = set(args.sections.split(","))
    return args


def _draw(job: tuple[Path, int]) -> None:
    """One 64x64 JPEG of a few random soft shapes on a gradient: compresses like photos, not like noise."""
    from PIL import Image, ImageDraw, ImageFilter

    path, seed = job
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 1, SIDE, dtype=np.float32)
    start, end = rng.integers(0, 255, 3), rng.integers(0, 255, 3)
    pixels = start + (end - start) * ramp[:, None, None]
    image = Image.fromarray(np.broadcast_to(pixels, (SIDE, SIDE, 3)).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(3):
        x, y, r = rng.integers(0, SIDE, 2).tolist() + [int(rng.integers(6, 20))]
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(rng.integers(0, 255, 3).tolist()))
    image.filter(ImageFilter.GaussianBlur(1)).save(path, "JPEG", quality=90)


def make_folder(work: Path, count: int) -> Path:
    """``work/jpeg64-<count>``, generated once (a hidden marker file records that it is complete)."""
    folder = work / f"jpeg64-{count}"
    marker = folder / ".complete"
    if marker.is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    with Pool(os.cpu_count()) as pool:
        pool.map(_draw, [(folder / f"{index:06d}.jpg", index) for index in range(count)], chunksize=500)
    marker.write_text(str(count))
    print(f"generated {count:,} JPEGs in {time.perf_counter() - began:.0f} s: {folder}", flush=True)
    return folder


def make_npz(folder: Path) -> Path:
    """The folder's images as one uint8 array (for the in-memory comparison), made once."""
    path = folder.with_suffix(".npz")
    if not path.is_file():
        from PIL import Image

        files = sorted(folder.glob("*.jpg"))
        np.savez(path, x=np.stack([np.asarray(Image.open(file).convert("RGB")) for file in files]))
    return path


def cli_run(data_args: list[str], steps: int, out: Path) -> dict[str, Any]:
    """``ganframe train`` on the dcgan for ``steps`` steps in a fresh process: peak RSS, wall time."""
    command = [sys.executable, "-m", "ganframe", "train", "--arch", "dcgan", *data_args, "--steps", str(steps),
               "--batch-size", str(BATCH), "--out", str(out), "--overwrite"]
    done = subprocess.run([sys.executable, "-c", MEASURE, *command], capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["code"] != 0:
        raise SystemExit(f"ganframe train failed ({result['code']}):\n{result['tail']}")
    return result


def section_cli(folders: dict[int, Path], steps: int, scratch: Path) -> dict[str, Any]:
    rows = {}
    for count, folder in folders.items():
        data = ["--data", "folder", "--data-option", f"path={folder}"]
        full, first = cli_run(data, steps, scratch / "run"), cli_run(data, 1, scratch / "run")
        rows[f"folder {count}"] = {"peak_rss_mib": full["peak_rss_mib"], "seconds": full["seconds"],
                                   "first_step_seconds": first["seconds"]}
    smallest = min(folders)
    npz = make_npz(folders[smallest])
    full = cli_run(["--data", "npz", "--data-option", f"path={npz}"], steps, scratch / "run")
    first = cli_run(["--data", "npz", "--data-option", f"path={npz}"], 1, scratch / "run")
    rows[f"in memory {smallest}"] = {"peak_rss_mib": full["peak_rss_mib"], "seconds": full["seconds"],
                                     "first_step_seconds": first["seconds"]}
    print(f"\n{'':>18} {'peak RSS':>10} {f'{steps} steps':>10} {'1 step':>8}")
    for name, row in rows.items():
        print(f"{name:>18} {row['peak_rss_mib']:>7.0f} MiB {row['seconds']:>8.1f} s {row['first_step_seconds']:>6.1f} s")
    largest = max(folders)
    if largest != smallest:
        ratio = rows[f"folder {largest}"]["peak_rss_mib"] / rows[f"folder {smallest}"]["peak_rss_mib"]
        print(f"peak RSS, folder of {largest:,} / folder of {smallest:,}: {ratio:.2f}x")
        rows["rss_ratio_largest_to_smallest"] = ratio
    saved = rows[f"in memory {smallest}"]["peak_rss_mib"] - rows[f"folder {smallest}"]["peak_rss_mib"]
    print(f"in memory minus streaming, {smallest:,} images: {saved:.0f} MiB")
    return rows


def section_speed(folder: Path, rounds: int, round_steps: int) -> dict[str, Any]:
    import ganframe
    from ganframe.config import RunConfig
    from ganframe.contract import DataContext
    from ganframe.pipeline import make_dataset, take
    from ganframe.run import build_gan

    registry = ganframe.get_registry()
    source = registry.build("dataset", "folder", {"path": str(folder)}, DataContext(None))
    memory = take(source, np.arange(len(source)))

    pipeline = iter(make_dataset(source, BATCH, seed=1))
    for _ in range(20):  # warm-up: tf.data's threads, the file cache
        next(pipeline)
    began, batches = time.perf_counter(), 200
    for _ in range(batches):
        next(pipeline)
    pipeline_images = batches * BATCH / (time.perf_counter() - began)

    config = RunConfig(arch="dcgan", data="folder", batch_size=BATCH, seed=1)
    gans = {name: build_gan(config, source.spec, registry) for name in ("streaming", "in memory")}
    data = {"streaming": source, "in memory": memory}
    for name, gan in gans.items():  # trace and compile each once
        gan.fit(make_dataset(data[name], BATCH, seed=1), epochs=1, steps_per_epoch=3, verbose=0)
    rates: dict[str, list[float]] = {name: [] for name in gans}
    for index in range(rounds):
        for name in (list(gans) if index % 2 == 0 else list(gans)[::-1]):
            dataset = make_dataset(data[name], BATCH, seed=1, start_step=gans[name].global_step)
            began = time.perf_counter()
            gans[name].fit(dataset, epochs=1, steps_per_epoch=round_steps, verbose=0)
            rates[name].append(round_steps / (time.perf_counter() - began))
    steps = {name: statistics.median(values) for name, values in rates.items()}
    consumed = steps["in memory"] * BATCH
    result = {"pipeline_images_per_s": pipeline_images, "step_images_per_s": consumed,
              "pipeline_over_step": pipeline_images / consumed, "steps_per_s": steps,
              "streaming_over_memory": steps["streaming"] / steps["in memory"]}
    print(f"\ninput pipeline alone: {pipeline_images:,.0f} images/s; the dcgan step consumes {consumed:,.0f} images/s: "
          f"{result['pipeline_over_step']:.1f}x")
    print(f"dcgan steps/s, streaming {steps['streaming']:.2f} vs in memory {steps['in memory']:.2f}: "
          f"{result['streaming_over_memory']:.3f}x (median of {rounds} rounds of {round_steps} steps)")
    return result


def section_resume(folder: Path) -> dict[str, Any]:
    import ganframe
    from ganframe.contract import DataContext
    from ganframe.pipeline import make_dataset

    source = ganframe.get_registry().build("dataset", "folder", {"path": str(folder)}, DataContext(None))

    def first_batch(step: int) -> float:
        began = time.perf_counter()
        next(iter(make_dataset(source, BATCH, seed=0, start_step=step)))
        return time.perf_counter() - began

    first_batch(0)  # tf.data's start-up
    near, far = first_batch(10), first_batch(100_000)
    print(f"\nfirst batch of {len(source):,} images at step 10: {near:.2f} s, at step 100,000: {far:.2f} s "
          f"({far - near:+.2f} s)")
    return {"step_10_seconds": near, "step_100000_seconds": far}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    folders = {count: make_folder(args.work, count) for count in args.sizes}
    results: dict[str, Any] = {"sizes": args.sizes, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as scratch:
        if "cli" in args.sections:
            results["cli"] = section_cli(folders, args.steps, Path(scratch))
    if "speed" in args.sections:
        results["speed"] = section_speed(folders[min(folders)], args.rounds, args.round_steps)
    if "resume" in args.sections:
        results["resume"] = section_resume(folders[max(folders)])
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
