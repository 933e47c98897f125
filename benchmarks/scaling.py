"""How ganframe's train step scales with batch size and image size, what steps_per_execution buys,
and whether a long run's memory grows.

Sections (``--sections``, default all four):

``batch``
    ``dense`` on synthetic MNIST-shaped data, batch 32 … 1024 (``--batches``).
``image``
    ``dcgan`` on synthetic one-channel images of side 28, 32, 64 (``--sizes``), batch 64
    (``--image-batch``).
``spe``
    ``dense``, batch 128 (``--spe-batch``), ``steps_per_execution`` 1 and 10 (``--spe``).
``memory``
    One run through the public API, ``ganframe.train``, as a user starts it: a small dense
    GAN on ``digits`` for 10,000 steps (``--memory-steps``) with the default callbacks
    (grids every 500 steps, checkpoints every 1000, metrics every 50) and progress lines,
    writing into a temporary directory; RSS is sampled every 500 steps (``--rss-every``).
    Growth is the RSS at the end less the RSS at the first sample (after warm-up).

The speed sections reuse ``step_speed.py``'s ``ganframe`` loop (``build_gan`` +
``GAN.fit``, no callbacks), its synthetic data and its FLOP-bound ceiling. Within a
section every configuration is built and warmed up first, then timed in interleaved
rounds (the order rotates), each round about ``--seconds`` long: a change of machine
load hits every configuration alike. A round is one ``fit`` call, so it includes
``fit``'s per-call setup (tens of milliseconds).

    python benchmarks/scaling.py --json scaling.json
    python benchmarks/scaling.py --sections memory
    python benchmarks/scaling.py --quick          # smoke run, tiny sizes
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import step_speed  # the sibling script: its loops, data, timing and FLOP counting

SECTIONS = ("batch", "image", "spe", "memory")


def int_list(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {', '.join(SECTIONS)}")
    parser.add_argument("--batches", type=int_list, default=[32, 64, 128, 256, 512, 1024], help="batch section's sizes")
    parser.add_argument("--sizes", type=int_list, default=[28, 32, 64], help="image section's sides (dcgan: 28 or 2^k)")
    parser.add_argument("--image-batch", type=int, default=64, help="image section's batch size (default 64)")
    parser.add_argument("--spe", type=int_list, default=[1, 10], help="spe section's steps_per_execution values")
    parser.add_argument("--spe-batch", type=int, default=128, help="spe section's batch size (default 128)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per configuration (default 3)")
    parser.add_argument("--seconds", type=float, default=6.0, help="about how long each timed round runs (default 6)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps after building (rounded up to whole executions)")
    parser.add_argument("--memory-steps", type=int, default=10_000, help="memory section's run length (default 10000)")
    parser.add_argument("--rss-every", type=int, default=500, help="steps between RSS samples (default 500)")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, short rounds, a 100-step memory run")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.quick:
        args.batches, args.sizes, args.image_batch, args.spe, args.spe_batch = [32], [16], 8, [1, 2], 32
        args.rounds, args.seconds, args.warmup, args.memory_steps, args.rss_every = 2, 0.3, 2, 100, 50
    args.sections = [name.strip() for name in args.sections.split(",") if name.strip()]
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    if min(args.rounds, args.warmup, args.memory_steps, args.rss_every, *args.spe) < 1 or args.seconds <= 0:
        parser.error("--rounds, --warmup, --memory-steps, --rss-every, --spe and --seconds must be positive")
    return args


# -- speed ------------------------------------------------------------------------------------------


def timed_section(title: str, variants: list[tuple[str, list[str]]], args: argparse.Namespace,
                  matmul: Callable[[], float], matmul_rates: list[float]) -> list[dict[str, Any]]:
    """Time ganframe on each variant (a label and step_speed.py arguments), in interleaved rounds;
    ``matmul`` is timed after each round too, into ``matmul_rates``, whose fastest gives the ceilings.
    """
    points = []
    for label, argv in variants:
        options = step_speed.parse_args(["--data", "synthetic", "--loops", "ganframe", *argv])
        spe = options.steps_per_execution
        warmup = spe * math.ceil(args.warmup / spe)
        data = step_speed.load_data(options)
        start = time.perf_counter()
        loop = step_speed.GanframeLoop(options, data, None)
        loop.warmup(warmup)
        warmup_s = time.perf_counter() - start
        probe_s, _ = step_speed.time_run(loop, warmup)  # compiled now: sizes the rounds
        steps = max(spe, round(args.seconds * warmup / probe_s / spe) * spe)
        point = {"label": label, "batch": options.batch_size, "steps_per_execution": spe, "steps_per_round": steps,
                 "build_and_warmup_s": warmup_s, "rates": [], "cpu_ms_per_step": [], "cores_busy": []}
        points.append((loop, point))
        print(f"  {title} {label}: ready in {warmup_s:.1f} s, {steps} steps per round", flush=True)

    for round_index in range(args.rounds):
        shift = round_index % len(points)
        for loop, point in points[shift:] + points[:shift]:
            seconds, cpu = step_speed.time_run(loop, point["steps_per_round"])
            point["rates"].append(point["steps_per_round"] / seconds)
            point["cpu_ms_per_step"].append(1000 * cpu / point["steps_per_round"])
            point["cores_busy"].append(cpu / seconds)
        matmul_rates.append(matmul())
    for loop, point in points:
        point.update(step_speed.flop_ceiling(loop, point["batch"], 1, max(matmul_rates)))
        median = statistics.median(point["rates"])
        point.update(median_steps_per_s=median, max_steps_per_s=max(point["rates"]),
                     median_images_per_s=median * point["batch"],
                     median_cpu_ms_per_step=statistics.median(point["cpu_ms_per_step"]),
                     fastest_round_cores=point["cores_busy"][point["rates"].index(max(point["rates"]))],
                     of_ceiling=None if point["ceiling_steps_per_s"] is None else median / point["ceiling_steps_per_s"])
    return [point for _, point in points]


def speed_table(points: list[dict[str, Any]]) -> str:
    lines = [f"{'config':<14} {'steps/s':>8} {'max':>7} {'cores':>5} {'images/s':>9} {'cpu ms/step':>11} "
             f"{'GFLOP/step':>10} {'ceiling':>8} {'of ceiling':>10}"]
    for p in points:
        gflop = "n/a" if p["flops"] is None else f"{p['flops']['step'] / 1e9:.3f}"
        ceiling = "n/a" if p["ceiling_steps_per_s"] is None else f"{p['ceiling_steps_per_s']:.1f}"
        fraction = "n/a" if p["of_ceiling"] is None else f"{p['of_ceiling']:.2f}"
        lines.append(f"{p['label']:<14} {p['median_steps_per_s']:8.2f} {p['max_steps_per_s']:7.2f} "
                     f"{p['fastest_round_cores']:5.2f} "
                     f"{p['median_images_per_s']:9.0f} {p['median_cpu_ms_per_step']:11.1f} {gflop:>10} "
                     f"{ceiling:>8} {fraction:>10}")
    return "\n".join(lines)


# -- memory -----------------------------------------------------------------------------------------


def memory_run(args: argparse.Namespace) -> dict[str, Any]:
    """A ``ganframe.train`` run with the default callbacks; RSS every ``--rss-every`` steps and at the end."""
    import keras

    import ganframe

    class RssSampler(keras.callbacks.Callback):
        """Records (step, RSS MiB, seconds) every ``every`` steps; with steps_per_execution 1, one batch is one step."""

        def __init__(self, every: int) -> None:
            super().__init__()
            self.every, self.steps, self.samples = every, 0, []
            self.start = time.perf_counter()

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            self.steps += 1
            if self.steps % self.every == 0:
                self.samples.append((self.steps, step_speed.current_rss_mib(), time.perf_counter() - self.start))

    sampler = RssSampler(args.rss_every)
    with tempfile.TemporaryDirectory(prefix="ganframe-scaling-") as tmp:
        config = {"arch": "dense", "arch_options": {"g_widths": [64, 128], "d_widths": [128, 64]}, "data": "digits",
                  "batch_size": 64, "steps": args.memory_steps, "out": str(Path(tmp) / "run"), "seed": 0}
        start = time.perf_counter()
        run = ganframe.train(config, callbacks=[sampler])
        seconds = time.perf_counter() - start
        end_rss = step_speed.current_rss_mib()
        written = {name: len(list((run.path / name).iterdir())) for name in ("samples", "checkpoints")}
    (first_step, first_rss, first_s), (last_step, _, last_s) = sampler.samples[0], sampler.samples[-1]
    return {"config": config, "steps": run.step, "seconds": seconds, "samples": sampler.samples,
            "rss_first_mib": first_rss, "rss_first_step": first_step, "rss_end_mib": end_rss,
            "growth_mib": end_rss - first_rss, "rss_max_mib": max(rss for _, rss, _ in sampler.samples),
            "files": written, "steps_per_s": (last_step - first_step) / (last_s - first_s) if last_step > first_step else None}


def memory_text(m: dict[str, Any]) -> str:
    marks = ", ".join(f"{step}: {rss:.0f}" for step, rss, _ in m["samples"])
    speed = "" if m["steps_per_s"] is None else f", {m['steps_per_s']:.0f} steps/s after the first sample"
    return (f"{m['steps']} steps in {m['seconds']:.0f} s{speed}; files left: {m['files']}\n"
            f"RSS (MiB) by step: {marks}; end {m['rss_end_mib']:.0f}\n"
            f"growth from step {m['rss_first_step']} to the end: {m['growth_mib']:+.1f} MiB "
            f"(highest sample {m['rss_max_mib']:.0f})")


# -- main -------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    results: dict[str, Any] = {"command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
                               "environment": step_speed.environment()}
    speed_sections = {
        "batch": [(f"dense b{b}", ["--batch-size", str(b)]) for b in args.batches],
        "image": [(f"dcgan {s}x{s}", ["--arch", "dcgan", "--image-size", str(s), "--batch-size", str(args.image_batch)])
                  for s in args.sizes],
        "spe": [(f"dense spe {n}", ["--batch-size", str(args.spe_batch), "--steps-per-execution", str(n),
                                    "--steps", str(n), "--warmup", str(n)]) for n in args.spe],
    }
    if any(name in speed_sections for name in args.sections):
        matmul = step_speed.matmul_timer(**step_speed.QUICK_MATMUL if args.quick else {})
        results["matmul_gflops_samples"] = [matmul() for _ in range(3)]
    for name in args.sections:
        if name == "memory":
            results["memory"] = memory_run(args)
        else:
            results[name] = timed_section(name, speed_sections[name], args, matmul, results["matmul_gflops_samples"])
        results[f"rss_after_{name}_mib"] = step_speed.current_rss_mib()
    if "matmul_gflops_samples" in results:  # an earlier section's ceilings may use a slower sample than the last's
        results["matmul_gflops"] = max(results["matmul_gflops_samples"])
    results["peak_rss_mib"] = step_speed.peak_rss_mib()
    results["total_s"] = time.perf_counter() - started

    env = results["environment"]
    print(f"\nTF {env['tensorflow']}, Keras {env['keras']}, {env['cpus']} CPUs" + (f", GPU {env['gpus']}" if env["gpus"] else ""))
    for name in args.sections:
        print(f"\n[{name}]")
        print(memory_text(results["memory"]) if name == "memory" else speed_table(results[name]))
    if "matmul_gflops" in results:
        print(f"\n(steps/s: median of {args.rounds} rounds of about {args.seconds:g} s; max: the fastest round; cores: "
              "process CPU time / wall time in that round;\n cpu ms/step: median, all threads; ceiling: FLOPs per step "
              "(step_speed.train_step_flops) at the fastest XLA float32 matmul rate measured in this process by the "
              f"section's end, at most {results['matmul_gflops']:.0f} GFLOP/s)")
    print(f"peak RSS {results['peak_rss_mib']:.0f} MiB (whole process); total {results['total_s']:.0f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
