"""Built-in feature extractors: ``mnist`` (a small classifier trained by ganframe) and ``inception``.

Feature-based metrics (FID, KID, precision/recall, ...) compare images through a network's
features, so their values mean something only together with that network and its exact
weights: each extractor names its weights by ``weights_hash`` (SHA-256 of the weights file)
and says how it preprocesses images (``preprocessing``), and both go into every score's
protocol (docs/evaluation.md).

Beyond the contract (``__call__``, ``weights_hash``) an extractor here offers two optional
extensions that metrics look for: ``preprocessing`` (one line of text) and, for a classifier,
``probabilities(images) -> (N, classes)``, which the Inception Score needs.

Keras is imported inside the factories: listing plugins stays TensorFlow-free.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np
from pydantic import Field

from ganframe import ConfigError, DataSpec, FeatureExtractor, Options, hookimpl

#: The shipped weights of the ``mnist`` classifier and the record of how they were trained.
MNIST_WEIGHTS = Path(__file__).with_name("weights") / "mnist_classifier.npz"
MNIST_RECORD = MNIST_WEIGHTS.with_suffix(".json")
MNIST_SIDE = 28

INCEPTION_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
INCEPTION_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/" + INCEPTION_FILE)
INCEPTION_SIDE = 299

#: Images per forward pass: bounds memory (Inception at 299x299) without slowing the small CNN.
BATCH = {"mnist": 1000, "inception": 50}


@lru_cache(maxsize=8)
def file_sha256(path: Path, size: int, mtime_ns: int) -> str:
    """SHA-256 of a file; cached per (path, size, mtime), since Inception's 87 MB take a while."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_sha256(path: Path) -> str:
    stat = path.stat()
    return file_sha256(path, stat.st_size, stat.st_mtime_ns)


def build_classifier() -> Any:
    """The ``mnist`` network: 2 conv + max-pool blocks, a 64-unit feature layer, 10 logits (56,714 weights).

    One model with two outputs, (features, logits); ``tools/train_mnist_classifier.py`` trains it.
    """
    import keras

    inputs = keras.Input((MNIST_SIDE, MNIST_SIDE, 1), name="image")
    x = keras.layers.Conv2D(16, 3, activation="relu", name="conv1")(inputs)
    x = keras.layers.MaxPooling2D(2, name="pool1")(x)
    x = keras.layers.Conv2D(32, 3, activation="relu", name="conv2")(x)
    x = keras.layers.MaxPooling2D(2, name="pool2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    features = keras.layers.Dense(64, activation="relu", name="features")(x)
    logits = keras.layers.Dense(10, name="logits")(features)
    return keras.Model(inputs, [features, logits], name="mnist_classifier")


def save_classifier_weights(model: Any, path: Path) -> None:
    """The weights by variable path (``conv1/kernel``, ...) in an .npz: no Keras file format to depend on."""
    from ganframe import atomic_write

    with atomic_write(path) as handle:
        np.savez(handle, **{variable.path: np.asarray(variable) for variable in model.weights})


def _load_classifier_weights(model: Any, path: Path) -> None:
    try:
        with np.load(path, allow_pickle=False) as arrays:
            stored = {name: arrays[name] for name in arrays.files}
    except (OSError, ValueError) as error:
        raise ConfigError(f"feature extractor 'mnist': cannot read its weights {path} ({error})") from None
    expected = {variable.path: tuple(variable.shape) for variable in model.weights}
    found = {name: tuple(array.shape) for name, array in stored.items()}
    if found != expected:
        raise ConfigError(f"feature extractor 'mnist': {path} holds weights {found}, the network needs {expected}; "
                          "train them with tools/train_mnist_classifier.py")
    for variable in model.weights:
        variable.assign(stored[variable.path])


class Preprocessor:
    """Images of ``spec`` to what a network takes: values mapped to [0, 1], then resized to ``side`` x ``side``.

    A fixed function of each image (no batch statistics), so features do not depend on the batch.
    """

    def __init__(self, spec: DataSpec, side: int) -> None:
        self.low, self.high = map(float, spec.value_range)
        self.side = side
        self.resize = (spec.height, spec.width) != (side, side)
        size = f"{spec.height}x{spec.width} resized to {side}x{side} (bilinear, antialiased)" if self.resize \
            else f"{side}x{side} as is"
        self.description = f"values [{self.low:g}, {self.high:g}] mapped to [0, 1]; {size}"

    def __call__(self, images: np.ndarray) -> Any:
        import keras

        unit = (np.asarray(images, np.float32) - self.low) / np.float32(self.high - self.low)
        if not self.resize:
            return unit
        resized = keras.ops.image.resize(unit, (self.side, self.side), interpolation="bilinear", antialias=True)
        return keras.ops.clip(resized, 0.0, 1.0)


def _batched(function: Callable[[np.ndarray], Any], images: np.ndarray, batch: int) -> list[np.ndarray]:
    """``function`` over ``images`` in chunks: its outputs (one or a tuple) concatenated per output."""
    parts: list[list[np.ndarray]] = []
    for start in range(0, len(images), batch):
        out = function(images[start:start + batch])
        out = out if isinstance(out, (tuple, list)) else (out,)
        parts = parts or [[] for _ in out]
        for part, value in zip(parts, out):
            part.append(np.asarray(value, np.float32))
    return [np.concatenate(part) for part in parts]


class MnistOptions(Options):
    weights: Path | None = Field(None, description="a weights .npz of the same network (default: the shipped one)")


class MnistFeatures(FeatureExtractor):
    """The shipped MNIST classifier: its 64-unit penultimate layer as features, its softmax as probabilities."""

    def __init__(self, spec: DataSpec, options: MnistOptions) -> None:
        if spec.channels != 1:
            raise ConfigError(f"feature extractor 'mnist' takes grayscale images (1 channel), the data have "
                              f"{spec.channels}; use the extractor 'inception' for colour images")
        path = (options.weights or MNIST_WEIGHTS).expanduser()
        if not path.is_file():
            raise ConfigError(f"feature extractor 'mnist': its weights {path} do not exist"
                              + ("; reinstall ganframe" if options.weights is None else ""))
        self.model = build_classifier()
        _load_classifier_weights(self.model, path)
        self.weights_hash = weights_sha256(path)
        self.preprocess = Preprocessor(spec, MNIST_SIDE)
        self.preprocessing = self.preprocess.description

    def _outputs(self, images: np.ndarray) -> list[np.ndarray]:
        return _batched(lambda batch: self.model(self.preprocess(batch), training=False), images, BATCH["mnist"])

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self._outputs(images)[0]

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities (N, 10): the softmax of the logits, in float64 so that they sum to 1."""
        logits = self._outputs(images)[1].astype(np.float64)
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return exp / exp.sum(axis=1, keepdims=True)


class InceptionOptions(Options):
    weights: Path | None = Field(
        None, description=f"the no-top InceptionV3 .h5 (default: $KERAS_HOME/models/{INCEPTION_FILE}, KERAS_HOME "
                          "defaulting to ~/.keras); never downloaded")


def inception_weights(options: InceptionOptions) -> Path:
    """The weights file to use, or a ConfigError saying where to put it (ganframe never downloads it)."""
    if options.weights is not None:
        path = options.weights.expanduser()
    else:
        path = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "models" / INCEPTION_FILE
    if not path.is_file():
        raise ConfigError(
            f"feature extractor 'inception': no InceptionV3 weights at {path}. ganframe never downloads them: "
            f"download {INCEPTION_URL} yourself and put it there, or pass the option weights = \"PATH\""
        )
    return path


class InceptionFeatures(FeatureExtractor):
    """keras.applications.InceptionV3's 2048 pooled features. NOT the network of the standard TF FID.

    Published FIDs use the TF-slim Inception graph of 2015 (pt_inception-2015-12-05) and its own
    resizing; these Keras ImageNet weights give different numbers, so scores made with this
    extractor compare only with each other (same weights hash, same protocol).
    """

    def __init__(self, spec: DataSpec, options: InceptionOptions) -> None:
        if spec.channels not in (1, 3):
            raise ConfigError(f"feature extractor 'inception' takes 1- or 3-channel images, the data have {spec.channels}")
        path = inception_weights(options)
        import keras

        try:
            self.model = keras.applications.InceptionV3(include_top=False, pooling="avg", weights=str(path),
                                                        input_shape=(INCEPTION_SIDE, INCEPTION_SIDE, 3))
        except (OSError, ValueError) as error:
            raise ConfigError(f"feature extractor 'inception': {path} is not the no-top InceptionV3 weights file "
                              f"({error})") from None
        self.weights_hash = weights_sha256(path)
        self.channels = spec.channels
        self.preprocess = Preprocessor(spec, INCEPTION_SIDE)
        gray = "; gray replicated to 3 channels" if spec.channels == 1 else ""
        self.preprocessing = f"{self.preprocess.description}{gray}; scaled to [-1, 1] (inception_v3.preprocess_input)"

    def _forward(self, batch: np.ndarray) -> Any:
        import keras

        x = self.preprocess(batch)
        if self.channels == 1:
            x = keras.ops.repeat(x, 3, axis=-1)
        return self.model(x * 2.0 - 1.0, training=False)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return _batched(self._forward, images, BATCH["inception"])[0]


@hookimpl
def ganframe_register_feature_extractors(register: Callable[..., None]) -> None:
    register("mnist", MnistFeatures, "ganframe's MNIST classifier (shipped weights, 64 features, offline, fast on CPU).",
             MnistOptions)
    register("inception", InceptionFeatures, "Keras InceptionV3 from a local weights file; NOT the TF-FID network: "
                                             "scores not comparable with published ones.", InceptionOptions)
