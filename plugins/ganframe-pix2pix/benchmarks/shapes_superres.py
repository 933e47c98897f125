"""4x super-resolution beyond MNIST: pix2pix on a folder of synthetic RGB shapes, against bilinear upsampling.

Writes ``--images`` training and 500 held-out 32x32 RGB images (a few ellipses, rectangles and
triangles of random colours on a two-colour background, not committed), trains ``unet`` through the
CLI on the training folder with ``[pairs] derive = "downscale"``, ``factor = 4`` (each condition the
image shrunk to 8x8 and brought back to 32x32, bilinear), then translates the held-out images'
conditions (``ganframe translate --derive``) and scores the outputs against the originals: L1,
PSNR, SSIM, beside the same scores of the bilinear conditions themselves. Writes ``results.json``
and ``grid.png`` (rows: input | output | original) into ``--out``.

    .venv/bin/python plugins/ganframe-pix2pix/benchmarks/shapes_superres.py --out runs/shapes

Not part of the test suite: it trains a GAN for minutes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SIDE = 32
HELD_OUT = 500


def shapes(n: int, seed: int) -> np.ndarray:
    """``n`` images (n, SIDE, SIDE, 3) uint8: 2-4 shapes each on a background split in two colours."""
    rng = np.random.default_rng(seed)
    images = np.empty((n, SIDE, SIDE, 3), np.uint8)
    for index in range(n):
        picture = Image.new("RGB", (SIDE, SIDE), tuple(int(v) for v in rng.integers(0, 256, 3)))
        draw = ImageDraw.Draw(picture)
        split = int(rng.integers(8, 24))
        draw.rectangle([0, split, SIDE, SIDE], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        for _ in range(int(rng.integers(2, 5))):
            colour = tuple(int(v) for v in rng.integers(0, 256, 3))
            x, y = rng.integers(0, SIDE, 2)
            w, h = rng.integers(4, 14, 2)
            box = [int(x - w), int(y - h), int(x + w), int(y + h)]
            kind = rng.integers(3)
            if kind == 0:
                draw.ellipse(box, fill=colour)
            elif kind == 1:
                draw.rectangle(box, fill=colour)
            else:
                draw.polygon([(box[0], box[3]), (box[2], box[3]), (int(x), box[1])], fill=colour)
        images[index] = np.asarray(picture)
    return images


def scores(outputs: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """L1, PSNR and SSIM of images in [0, 1] against their targets (TensorFlow's PSNR and SSIM)."""
    import tensorflow as tf

    return {"l1": round(float(np.abs(outputs - targets).mean()), 4),
            "psnr": round(float(tf.reduce_mean(tf.image.psnr(outputs, targets, max_val=1.0))), 2),
            "ssim": round(float(tf.reduce_mean(tf.image.ssim(outputs, targets, max_val=1.0))), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/shapes"))
    parser.add_argument("--images", type=int, default=10_000, help="training images (default 10,000)")
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args()

    train_dir, held_dir = args.out / "train", args.out / "held_out"
    for folder, count, seed in ((train_dir, args.images, 0), (held_dir, HELD_OUT, 1)):
        folder.mkdir(parents=True, exist_ok=True)
        for index, image in enumerate(shapes(count, seed)):
            Image.fromarray(image).save(folder / f"{index:06d}.png")
    config = args.out / "superres.toml"
    config.write_text(f"""arch = "unet"
data = "folder"
loss = "patchgan"
batch_size = 64
steps = {args.steps}
seed = 0

[data_options]
path = "{train_dir.resolve()}"

[arch_options]
base_channels = 32

[pairs]
derive = "downscale"
factor = 4

[penalties.reconstruction]
weight = 100.0

[d_optimizer]
learning_rate = 0.0002
beta_1 = 0.5

[g_optimizer]
learning_rate = 0.0002
beta_1 = 0.5
""")
    run = args.out / "run"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ganframe", "train", "--config", str(config), "--out", str(run),
                    "--overwrite"], check=True)
    seconds = time.perf_counter() - start
    held = np.stack([np.asarray(Image.open(p)) for p in sorted(held_dir.glob("*.png"))])
    np.savez(args.out / "held_out.npz", images=held)
    for out in ("outputs.npz", "grid.png"):
        subprocess.run([sys.executable, "-m", "ganframe", "translate", str(run), "--input", str(args.out / "held_out.npz"),
                        "--derive", "--out", str(args.out / out)], check=True)
    targets = held.astype(np.float32) / 255
    outputs = np.load(args.out / "outputs.npz")["images"]  # in the run's value range, [0, 1] here
    import ganframe
    from ganframe.pairs import derive_conditions

    loaded = ganframe.load_run(run)
    bilinear = derive_conditions(targets, loaded.config.pairs, loaded.spec)
    result = {"steps": args.steps, "train_s": round(seconds, 1), "held_out": len(targets),
              "pix2pix": scores(outputs, targets), "bilinear": scores(bilinear, targets)}
    (args.out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
