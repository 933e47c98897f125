"""Train the classifier behind the ``mnist`` feature extractor and write its weights into the package.

    python tools/train_mnist_classifier.py --data-dir ../shared/datasets/mnist

Seeded and deterministic on one machine (TensorFlow's op determinism on): the MNIST train split
(60,000 digits), Adam 1e-3, batch 128, a few epochs; then the test split (10,000) measures
accuracy. Writes ``ganframe/builtin/weights/mnist_classifier.npz`` (the weights by variable path)
and, next to it, ``mnist_classifier.json``: epochs, seed, accuracies, date, versions and the
weights' SHA-256, which is the extractor's ``weights_hash`` in every score's protocol.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import ganframe  # noqa: E402
from ganframe.builtin.features import MNIST_WEIGHTS, build_classifier, save_classifier_weights, weights_sha256  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=None, help="MNIST's IDX files (else GANFRAME_DATA_DIR, the Keras cache)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--out", type=Path, default=MNIST_WEIGHTS, help="the weights .npz; the record goes beside it")
    args = parser.parse_args()

    keras.utils.set_random_seed(args.seed)
    tf.config.experimental.enable_op_determinism()
    data_dir = args.data_dir or (Path(os.environ["GANFRAME_DATA_DIR"]) if os.environ.get("GANFRAME_DATA_DIR") else None)
    registry = ganframe.get_registry()
    train, test = (registry.build("dataset", "mnist", {"split": split}, ganframe.DataContext(data_dir, args.seed))
                   for split in ("train", "test"))

    classifier = build_classifier()
    model = keras.Model(classifier.input, classifier.outputs[1])  # logits; the same layers and weights
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    started = time.perf_counter()
    history = model.fit(train.float_images(), train.labels, batch_size=args.batch_size, epochs=args.epochs, shuffle=True,
                        verbose=2)
    seconds = time.perf_counter() - started
    test_loss, test_accuracy = model.evaluate(test.float_images(), test.labels, batch_size=1000, verbose=0)

    save_classifier_weights(classifier, args.out)
    record = {
        "network": "conv(16,3x3,relu)-maxpool2-conv(32,3x3,relu)-maxpool2-dense(64,relu)=features-dense(10)=logits",
        "parameters": int(sum(np.prod(v.shape) for v in classifier.weights)),
        "data": f"MNIST train split ({len(train)} images), values in [0, 1]; tested on the test split ({len(test)})",
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "optimizer": "Adam, learning rate 1e-3",
        "seed": args.seed,
        "train_accuracy_last_epoch": round(float(history.history["accuracy"][-1]), 5),
        "test_accuracy": round(float(test_accuracy), 5),
        "test_loss": round(float(test_loss), 5),
        "training_seconds": round(seconds, 1),
        "date": time.strftime("%Y-%m-%d"),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
        "ganframe": ganframe.__version__,
        "sha256": weights_sha256(args.out),
    }
    with ganframe.atomic_write(args.out.with_suffix(".json"), "w") as handle:
        handle.write(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
