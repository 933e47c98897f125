"""The catalogue of bad inputs (docs/errors.md): one row per situation, one test for all of them.

Each row builds its situation in ``tmp_path`` (the working directory while it runs), runs the
``ganframe`` command in process (Typer's CliRunner; a few rows run the real console script), and
checks the exit code, the key words of the message, that no traceback (nor, in process, an
uncaught exception) escaped, and that no path under ``tmp_path`` was created, changed or
removed except those the row says it writes. The rows' ids and exit codes are the doc table's:
``test_the_doc_table_has_exactly_these_rows`` keeps the two from drifting apart.

Rows that train or load a run stay tiny: 8x8 digits or a few images, two steps, no XLA.
"""

from __future__ import annotations

import errno
import fnmatch
import gzip
import hashlib
import io
import os
import pickle
import re
import shutil
import struct
import subprocess
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import ganframe
import ganframe.builtin.datasets
import ganframe.plugins
from ganframe.cli import app
from tinyrun import build_translator, translator_config

DOC = Path(__file__).resolve().parents[1] / "docs" / "errors.md"
CLI = Path(sys.executable).with_name("ganframe")
PLUGIN_ENV = ("GANFRAME_STRICT_PLUGINS", "GANFRAME_DISABLE_PLUGINS", "GANFRAME_DATA_DIR")
BROKEN_PLUGINS = ("brokenimport", "misspelt", "raising", "duplicate")  # tests/plugin_packages

#: A two-step run into RUN that writes nothing but checkpoints and the run's records.
RUN_FLAGS = ("--steps", "2", "--batch-size", "4", "--no-jit", "--sample-every", "0", "--log-every", "0", "--out", "RUN")
TINY = ("--arch", "dense", "--arch-option", "g_widths=[8]", "--arch-option", "d_widths=[8]", "--arch-option", "latent_dim=4")


def train(*args: str) -> tuple[str, ...]:
    """``ganframe train`` with the two-step flags; a row's own flags come last and win."""
    return ("train", *RUN_FLAGS, *args)


def tiny(*args: str) -> tuple[str, ...]:
    """:func:`train` with a dense network of a few hundred weights."""
    return train(*TINY, *args)


# -- building situations ------------------------------------------------------------------------------


@dataclass
class Scene:
    """A row's working directory, with the means to break things in it."""

    path: Path
    monkeypatch: pytest.MonkeyPatch
    request: pytest.FixtureRequest

    def write(self, name: str, content: str | bytes) -> Path:
        path = self.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        return path

    def run(self) -> Path:
        """RUN: a copy of the module's finished two-step run (one checkpoint, at step 2)."""
        return Path(shutil.copytree(self.request.getfixturevalue("trained_run"), self.path / "RUN"))

    def plugins(self, failing: str) -> None:
        """The real test plugin distributions installed, every broken one disabled but ``failing``."""
        self.request.getfixturevalue("installed_plugins")
        self.monkeypatch.setenv("GANFRAME_DISABLE_PLUGINS", ",".join(p for p in BROKEN_PLUGINS if p != failing))

    def plugin(self, name: str, **hooks: Callable[..., Any]) -> None:
        """An in-process plugin with these hooks, in the registry the command will use."""
        plugin = types.SimpleNamespace(**{hook: ganframe.hookimpl(function) for hook, function in hooks.items()})
        self.monkeypatch.setattr(ganframe.plugins, "_REGISTRY", ganframe.load_plugins(extra=[(name, plugin)]))

    def full_disk(self, fragment: str) -> None:
        """Writing any file whose name holds ``fragment`` fails as on a full disk (at the fsync)."""
        real_fsync = os.fsync

        def fsync(fd: int) -> None:
            if fragment in os.readlink(f"/proc/self/fd/{fd}"):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            real_fsync(fd)

        self.monkeypatch.setattr(os, "fsync", fsync)


def idx(array: np.ndarray, magic: int | None = None) -> bytes:
    """The IDX encoding of a uint8 array (magic 2051 for images, 2049 for labels, by default)."""
    return struct.pack(f">I{array.ndim}I", magic or 2048 + array.ndim, *array.shape) + array.astype(np.uint8).tobytes()


def mnist(images: bytes | None = None, labels: bytes | None = None, count: int = 12) -> Callable[[Scene], None]:
    """A setup writing MNIST's train files into data/: ``count`` good ones, unless replaced by these bytes."""

    def setup(scene: Scene) -> None:
        good_images = gzip.compress(idx(np.zeros((count, 28, 28), np.uint8)))
        good_labels = gzip.compress(idx(np.arange(count, dtype=np.uint8) % 10))
        scene.write("data/train-images-idx3-ubyte.gz", images or good_images)
        scene.write("data/train-labels-idx1-ubyte.gz", labels or good_labels)

    return setup


def npz(**arrays: Any) -> Callable[[Scene], None]:
    """A setup saving these arrays as d.npz (functions of the scene's path are called first)."""
    return lambda scene: np.savez(scene.path / "d.npz", **{k: v(scene.path) if callable(v) else v for k, v in arrays.items()})


def nan_images(path: Path) -> np.ndarray:
    images = np.full((10, 8, 8), 0.5, np.float32)
    images[2, 0, :2] = np.nan
    images[7, 3, 3] = np.inf
    return images


class Unpickled:
    """Unpickling this creates the directory UNPICKLED: the snapshot proves ganframe never did."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.mkdir, (str(self.marker),)


def pickle_bomb(path: Path) -> np.ndarray:
    return np.array([Unpickled(path / "UNPICKLED"), "text"], dtype=object)


CIFAR_BATCHES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch")


def cifar(truncated: str) -> Callable[[Scene], None]:
    """A setup writing CIFAR-10's binary version into data/cifar-10-batches-bin/, 3 records a file (the loader
    told so; the original has 10000), the file ``truncated`` 100 bytes short."""

    def setup(scene: Scene) -> None:
        scene.monkeypatch.setattr(ganframe.builtin.datasets, "CIFAR10_RECORDS", 3)
        for name in CIFAR_BATCHES:
            raw = bytes(3 * 3073)
            scene.write(f"data/cifar-10-batches-bin/{name}.bin", raw[:-100] if name == truncated else raw)

    return setup


def pickled_cifar(scene: Scene) -> None:
    """Keras's python version of CIFAR-10 in data/cifar-10-batches-py/, every batch a pickle bomb."""
    for name in (*CIFAR_BATCHES, "batches.meta"):
        scene.write(f"data/cifar-10-batches-py/{name}", pickle.dumps(Unpickled(scene.path / "UNPICKLED")))


def offline(scene: Scene) -> None:
    """An empty Keras cache, and Keras downloads that fail as without a network."""
    import keras

    def download(*args: Any, **kwargs: Any) -> None:
        raise OSError("URL fetch failure: no network")

    scene.monkeypatch.setenv("KERAS_HOME", str(scene.path / "keras"))
    scene.monkeypatch.setattr(keras.utils, "get_file", download)


def images(*files: str, size: tuple[int, int] = (8, 8), folder: str = "imgs") -> Callable[[Scene], None]:
    """A setup writing grey images of (width, height) ``size`` into ``folder``/: a name ending in '!' gets a
    corrupt one, one ending in '~' a JPEG cut short in its pixel data (its header reads), one ending in '+' an
    RGB image."""

    def setup(scene: Scene) -> None:
        for name in files:
            if name.endswith("!"):
                scene.write(f"{folder}/{name[:-1]}", b"\x89PNG\r\n\x1a\n not the rest of a PNG")
            elif name.endswith("~"):
                scene.path.joinpath(folder).mkdir(exist_ok=True)
                buffer = io.BytesIO()
                Image.effect_noise(size, 60).save(buffer, "JPEG")
                whole = buffer.getvalue()
                scene.write(f"{folder}/{name[:-1]}", whole[:whole.index(b"\xff\xda") + 12])
            elif name.endswith("+"):
                scene.path.joinpath(folder).mkdir(exist_ok=True)
                Image.new("RGB", size, (200, 30, 90)).save(scene.path / folder / name[:-1])
            else:
                scene.path.joinpath(folder).mkdir(exist_ok=True)
                Image.new("L", size, 128).save(scene.path / folder / name)

    return setup


def shard_of_pictures(scene: Scene) -> None:
    """shards/a.tfrecord: records whose image is under the feature 'picture', not the default 'image'."""
    import tensorflow as tf

    png = io.BytesIO()
    Image.new("L", (8, 8), 128).save(png, "PNG")
    features = {"picture": tf.train.Feature(bytes_list=tf.train.BytesList(value=[png.getvalue()])),
                "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[1]))}
    scene.path.joinpath("shards").mkdir()
    with tf.io.TFRecordWriter(str(scene.path / "shards" / "a.tfrecord")) as writer:
        writer.write(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())


class Endless(ganframe.DataStream):
    """A stream of unknown size, as a plugin may return one: the same flat 8x8 image, forever."""

    spec = ganframe.DataSpec((8, 8, 1))
    name = "endless"

    def examples(self, worker: int, workers: int) -> Any:
        import tensorflow as tf

        return tf.data.Dataset.from_tensors({"image": tf.fill((8, 8, 1), tf.constant(128, tf.uint8))}).repeat()


def endless_stream(scene: Scene) -> None:
    scene.plugin("endless", ganframe_register_datasets=lambda register: register(
        "endless", lambda context, options: Endless(), "an endless stream (tests)"))


def corrupt_checkpoints(scene: Scene) -> None:
    for checkpoint in scene.run().glob("checkpoints/ckpt-*.npz"):
        checkpoint.write_bytes(checkpoint.read_bytes()[:1000])


def no_checkpoints(scene: Scene) -> None:
    shutil.rmtree(scene.run() / "checkpoints")


def damaged_run_json(scene: Scene) -> None:
    (scene.run() / "run.json").write_text("{")


def wrong_type_plugin(scene: Scene) -> None:
    scene.plugin("hollow", ganframe_register_architectures=lambda register: register(
        "hollow", lambda spec, options: None, "Returns None instead of Networks."))


def raising_factory_plugin(scene: Scene) -> None:
    scene.plugin("explodes", ganframe_register_architectures=lambda register: register(
        "explodes", lambda spec, options: 1 / 0, "Raises while building."))


def faulty_networks(spec: ganframe.DataSpec, *, activation: str | None = "sigmoid", logits: int = 1) -> ganframe.Networks:
    """Dense networks a few weights wide that declare [0, 1] images: G's last ``activation`` and D's ``logits`` as given."""
    import keras

    generator = keras.Sequential([keras.Input((4,)), keras.layers.Dense(spec.size, activation=activation),
                                  keras.layers.Reshape(spec.shape)])
    discriminator = keras.Sequential([keras.Input(spec.shape), keras.layers.Flatten(), keras.layers.Dense(logits)])
    return ganframe.Networks(generator, discriminator, latent_dim=4, output_range=(0.0, 1.0))


def faulty_architecture(name: str, **fault: Any) -> Callable[[Scene], None]:
    return lambda scene: scene.plugin(name, ganframe_register_architectures=lambda register: register(
        name, lambda spec, options: faulty_networks(spec, **fault), "A faulty architecture."))


class PerImageLoss(ganframe.AdversarialLoss):
    """D's and G's losses per image, not their means."""

    def discriminator_loss(self, real_logits: Any, fake_logits: Any) -> Any:
        return real_logits - fake_logits

    def generator_loss(self, fake_logits: Any) -> Any:
        return -fake_logits


def per_image_loss(scene: Scene) -> None:
    scene.plugin("perimage", ganframe_register_losses=lambda register: register(
        "perimage", lambda spec, options: PerImageLoss(), "Forgets the mean."))


def full_disk_on_resume(scene: Scene) -> None:
    scene.run()
    scene.full_disk("ckpt-000000004")


def full_disk_on_sample(scene: Scene) -> None:
    scene.run()
    scene.full_disk("x.png")


def unconditioned_run_and_inputs(scene: Scene) -> None:
    scene.run()
    np.savez(scene.path / "in.npz", images=np.zeros((2, 8, 8), np.uint8))


def paired_run_and_small_inputs(scene: Scene) -> None:
    """RUN: a 2-step run of a tiny image-conditioned GAN on digits paired with masked copies; in.npz: 6x6 images."""
    scene.plugin("translator", ganframe_register_architectures=lambda register: register(
        "translator", build_translator, "A tiny image-conditioned GAN."))
    ganframe.train(translator_config(scene.path, out=str(scene.path / "RUN")), progress=False)
    np.savez(scene.path / "in.npz", images=np.zeros((2, 6, 6), np.uint8))


# -- the rows -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One bad input: the command, what it must answer, and what it may write (globs under tmp_path)."""

    id: str
    args: tuple[str, ...]
    code: int
    words: tuple[str, ...]
    setup: Callable[[Scene], Any] | None = None
    writes: tuple[str, ...] = ()
    process: bool = False  # the installed console script instead of the in-process runner
    marks: tuple[Any, ...] = ()


ROWS = [
    # -- the command line and the config: refused before TensorFlow is imported
    Row("unknown-flag", train("--stpes", "3"), 2, ("no such option", "--stpes")),
    Row("flag-not-a-number", train("--batch-size", "many"), 2, ("invalid value for '--batch-size'", "valid integer")),
    Row("unknown-arch", train("--data", "digits", "--arch", "dnese"), 2, ("unknown architecture 'dnese'", "did you mean 'dense'")),
    Row("unknown-data", train("--data", "digit"), 2, ("unknown dataset 'digit'", "did you mean 'digits'")),
    Row("unknown-loss", train("--data", "digits", "--loss", "minmax"), 2, ("unknown loss 'minmax'", "did you mean 'minimax'")),
    Row("loss-alias", train("--data", "digits", "--loss", "wgan"), 2, ("unknown loss 'wgan'", "did you mean 'wasserstein'?")),
    Row("loss-alias-wgan-gp", train("--data", "digits", "--loss", "wgan-gp"), 2,
        ("unknown loss 'wgan-gp'", "did you mean 'wasserstein'?",
         "--loss wasserstein --penalty gradient_penalty")),
    Row("unknown-penalty", train("--data", "digits", "--penalty", "gp"), 2,
        ("unknown penalty 'gp'", "available: ", "did you mean 'gradient_penalty'?")),
    Row("penalty-weight-not-a-number", train("--data", "digits", "--penalty", "r1=strong"), 2,
        ("--penalty 'r1=strong'", "'strong' is not a number", "--penalty r1=10")),
    Row("unknown-callback", train("--data", "digits", "--set", "callbacks.sample.every=10"), 2,
        ("unknown callback 'sample'", "did you mean 'samples'")),
    Row("unknown-metric", train("--data", "digits", "--metric", "fdi"), 2, ("unknown metric 'fdi'",)),
    Row("unknown-augmentation", train("--data", "digits", "--augment", "flip"), 2, ("unknown augmentation 'flip'",)),
    Row("batch-size-zero", train("--batch-size", "0"), 2, ("'batch_size'", "got 0", "greater than 0")),
    Row("batch-size-too-large", train("--batch-size", "100000"), 2, ("'batch_size'", "less than or equal to 65536")),
    Row("learning-rate-negative", train("--lr", "-0.1"), 2, ("'d_optimizer.learning_rate'", "got -0.1", "greater than 0")),
    Row("health-every-negative", train("--set", "health.every=-1"), 2,
        ("'health.every'", "got -1", "greater than or equal to 0")),
    Row("precision-unknown", train("--precision", "float8"), 2,
        ("'precision'", "got 'float8'", "'float32', 'mixed_float16' or 'mixed_bfloat16'")),
    Row("backend-unknown", train("--data", "digits", "--backend", "torch"), 2,
        ("'backend'", "got 'torch'", "'tensorflow'", "'jax'")),
    # the real console script: --backend jax must take effect, which it cannot in this TensorFlow process
    Row("strategy-multiworker-on-jax", tiny("--data", "digits", "--backend", "jax", "--strategy", "multiworker"), 2,
        ("'strategy'", "got 'multiworker'", "on the jax backend", '"mirrored"'), process=True),
    Row("pairs-unknown-derive", train("--data", "digits", "--pairs", "blur"), 2,
        ("'pairs.derive'", "got 'blur'", "'downscale', 'mask', 'edges' or 'grayscale'")),
    Row("pairs-option-of-another-derive", train("--data", "digits", "--pairs", "edges", "--set", "pairs.factor=2"), 2,
        ("'pairs.factor'", "factor applies to derive = 'downscale' only, and derive is 'edges'", "remove it")),
    Row("arch-option-out-of-range", train("--arch-option", "g_widths=[-3]"), 2,
        ("architecture 'dense'", "'g_widths.0'", "greater than 0")),
    Row("arch-option-unknown", train("--arch-option", "widht=3"), 2,
        ("architecture 'dense'", "'widht'", "unknown field", "did you mean 'g_widths'?")),
    Row("data-option-wrong-type", train("--data", "digits", "--data-option", "limit=many"), 2,
        ("dataset 'digits'", "'limit'", "valid integer")),
    Row("option-not-key-value", train("--arch-option", "widths"), 2, ("--arch-option 'widths'", "key=value")),
    Row("set-not-key-value", train("--set", "jit_compile"), 2, ("--set 'jit_compile'", "key=value")),
    Row("set-through-a-value", train("--set", "batch_size.x=1"), 2, ("'batch_size' is not a table",)),
    Row("config-unknown-key", ("train", "--config", "run.toml"), 2,
        ("'lerning_rate'", "unknown field", "did you mean 'learning_rate'?", "field of d_optimizer and g_optimizer",
         "--set d_optimizer.learning_rate="),
        lambda s: s.write("run.toml", "lerning_rate = 0.1\n")),
    Row("set-misspelt-field", train("--set", "batchsize=64"), 2,
        ("config 'batchsize': unknown field (value 64); did you mean 'batch_size'?",)),
    Row("config-component-option-at-top", ("train", "--config", "run.toml"), 2,
        ("config 'latentdim': unknown field", "did you mean 'latent_dim'?", "option of architecture 'dense'",
         "arch_options.latent_dim", "--arch-option latent_dim="),
        lambda s: s.write("run.toml", "latentdim = 8\n")),
    Row("config-unknown-nested-key", ("train", "--config", "run.toml"), 2, ("'d_optimizer.lr'", "unknown field"),
        lambda s: s.write("run.toml", "[d_optimizer]\nlr = 0.1\n")),
    Row("config-wrong-type", ("train", "--config", "run.toml"), 2, ("'batch_size'", "'many'", "valid integer"),
        lambda s: s.write("run.toml", 'batch_size = "many"\n')),
    Row("config-malformed-toml", ("train", "--config", "run.toml"), 2, ("run.toml", "not valid toml", "line 1"),
        lambda s: s.write("run.toml", "steps = = 3\n"), process=True),
    Row("config-missing", ("train", "--config", "nope.toml"), 2, ("nope.toml", "does not exist")),
    Row("config-not-utf8", ("train", "--config", "run.toml"), 2, ("run.toml", "not utf-8"),
        lambda s: s.write("run.toml", 'arch = "d\xe9nse"\n'.encode("latin-1"))),
    Row("config-is-a-directory", ("train", "--config", "run.toml"), 2, ("run.toml", "cannot be read"),
        lambda s: s.path.joinpath("run.toml").mkdir()),
    Row("max-time-not-a-duration", train("--max-time", "soon"), 2, ("'max_time'", "'soon'", "a duration such as")),
    Row("max-time-zero", train("--max-time", "0s"), 2, ("'max_time'", "greater than 0")),
    Row("steps-and-epochs", train("--epochs", "3"), 2, ("give steps (2) or epochs (3), not both",)),
    Row("steps-per-execution-not-dividing", train("--steps", "5", "--steps-per-execution", "2"), 2,
        ("'steps_per_execution'", "must divide steps (5)", "would train 6")),
    Row("resume-with-config", ("train", "--resume", "RUN", "--config", "run.toml"), 2, ("--config cannot be combined",),
        lambda s: s.write("run.toml", "steps = 3\n")),
    # -- data: refused when the data set is loaded, before the run directory is made
    Row("mnist-dir-missing", train("--data", "mnist", "--data-dir", "nowhere"), 2, ("data directory nowhere", "does not exist")),
    Row("mnist-dir-empty", train("--data", "mnist", "--data-dir", "data"), 2,
        ("not in the data directory data", "missing train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz"),
        lambda s: s.path.joinpath("data").mkdir()),
    Row("mnist-dir-wrong-files", train("--data", "mnist", "--data-dir", "data"), 2,
        ("not in the data directory data", "missing train-images-idx3-ubyte.gz", "mnist.npz"),
        lambda s: s.write("data/cifar-10-python.tar.gz", b"\x1f\x8b not mnist")),
    Row("mnist-truncated-gzip", tiny("--data", "mnist", "--data-dir", "data"), 2,
        ("train-images-idx3-ubyte.gz", "corrupt or truncated", "download it again"),
        mnist(images=gzip.compress(idx(np.zeros((12, 28, 28), np.uint8)))[:-20])),
    Row("mnist-wrong-idx-magic", tiny("--data", "mnist", "--data-dir", "data"), 2,
        ("train-images-idx3-ubyte.gz", "not an idx images file", "magic number 2049, expected 2051"),
        mnist(images=gzip.compress(idx(np.arange(12, dtype=np.uint8))))),
    Row("mnist-counts-differ", tiny("--data", "mnist", "--data-dir", "data"), 2, ("holds 11 labels", "holds 12 images"),
        mnist(labels=gzip.compress(idx(np.zeros(11, np.uint8))))),
    Row("mnist-pad-smaller", train("--data", "mnist", "--data-dir", "data", "--data-option", "pad_to=16"), 2,
        ("pad_to 16x16 is smaller than the images (28x28)", "resize"), mnist()),
    Row("data-range-differs-from-arch", tiny("--data", "mnist", "--data-dir", "data", "--data-option", "value_range=[-1, 1]"), 2,
        ("generates values in [0, 1]", "data set 'mnist' lies in [-1, 1]", "output_activation (tanh for [-1, 1]"), mnist()),
    Row("fashion-mnist-missing", train("--data", "fashion_mnist", "--data-dir", "data"), 2,
        ("fashion-mnist (train split) is not in the data directory data", "missing train-images-idx3-ubyte.gz",
         "subfolder fashion-mnist/"),
        lambda s: s.write("data/mnist/train-images-idx3-ubyte.gz", gzip.compress(idx(np.zeros((12, 28, 28), np.uint8))))),
    Row("cifar10-missing", train("--data", "cifar10", "--data-dir", "data"), 2,
        ("cifar-10 is not in the data directory data", "cifar-10-binary.tar.gz", "cifar-10-batches-bin/", "test_batch.bin"),
        lambda s: s.path.joinpath("data").mkdir()),
    Row("cifar10-offline", train("--data", "cifar10"), 2,
        ("cifar-10 is not available", "no network", "cifar-10-binary.tar.gz", "GANFRAME_DATA_DIR"), offline),
    Row("cifar10-truncated", train("--data", "cifar10", "--data-dir", "data"), 2,
        ("data_batch_2.bin: 9119 bytes, expected 9219", "truncated", "download it again"), cifar("data_batch_2")),
    Row("cifar10-pickle-only", train("--data", "cifar10", "--data-dir", "data"), 2,
        ("cifar-10-batches-py is cifar-10's python version", "never loads", "cifar-10-binary.tar.gz"), pickled_cifar),
    Row("npz-missing", tiny("--data", "npz", "--data-option", "path=d.npz"), 2, ("array file d.npz", "does not exist")),
    Row("npz-not-numpy", tiny("--data", "npz", "--data-option", "path=d.npz"), 2, ("d.npz", "cannot load it"),
        lambda s: s.write("d.npz", "x,y\n1,2\n")),
    Row("npz-object-array", tiny("--data", "npz", "--data-option", "path=d.npz"), 2, ("d.npz", "dtype=object", "never loads"),
        npz(x=pickle_bomb)),
    Row("npz-empty-array", tiny("--data", "npz", "--data-option", "path=d.npz"), 2, ("d.npz", "holds no images", "(0, 8, 8, 1)"),
        npz(x=np.zeros((0, 8, 8), np.uint8))),
    Row("npz-nan", tiny("--data", "npz", "--data-option", "path=d.npz"), 2,
        ("d.npz", "3 pixel values are nan or infinite", "in 2 of 10 images"), npz(x=nan_images)),
    Row("npz-labels-count-differs", tiny("--data", "npz", "--data-option", "path=d.npz", "--data-option", "labels_key=y"), 2,
        ("labels have shape (9,)", "expected (10,)"), npz(x=np.zeros((10, 8, 8), np.uint8), y=np.zeros(9, np.int64))),
    Row("folder-no-images", tiny("--data", "folder", "--data-option", "path=imgs"), 2, ("imgs", "no png or jpeg images"),
        lambda s: (s.write("imgs/notes.txt", "hello"), s.write("imgs/table.csv", "a,b\n"))),
    Row("folder-corrupt-file-refused", tiny("--data", "folder", "--data-option", "path=imgs"), 2,
        ("b.png", "cannot read this image", 'unreadable = "skip"'), images("a.png", "b.png!", "c.png")),
    Row("folder-corrupt-file-skipped", tiny("--data", "folder", "--data-option", "path=imgs", "--data-option", "unreadable=skip"),
        0, ("skipped 1 unreadable image file(s) of 7", "b.png", "run finished at step 2"),
        images("a.png", "b.png!", "c.png", "d.png", "e.png", "f.png", "g.png"), writes=("RUN", "RUN/*")),
    Row("folder-file-cut-short", tiny("--data", "folder", "--data-option", "path=imgs"), 2,
        ("cannot read", "c.jpg", "invalid jpeg data", 'unreadable = "skip"'), images("a.jpg", "b.jpg", "c.jpg~", "d.jpg")),
    Row("folder-file-cut-short-skipped",
        tiny("--data", "folder", "--data-option", "path=imgs", "--data-option", "unreadable=skip"), 0,
        ("run finished at step 2",), images("a.jpg", "b.jpg", "c.jpg~", "d.jpg", "e.jpg"), writes=("RUN", "RUN/*")),
    Row("folder-hidden-files", tiny("--data", "folder", "--data-option", "path=imgs"), 0, ("run finished at step 2",),
        lambda s: (images("a.png", "b.png", "c.png", "d.png")(s), s.write("imgs/._a.png", b"\x00\x05\x16\x07 resource fork"),
                   s.write("imgs/.DS_Store", b"\x00\x00\x00\x01Bud1"), s.write("imgs/.thumbs/x.png", b"junk")),
        writes=("RUN", "RUN/*")),
    Row("folder-gray-and-colour", tiny("--data", "folder", "--data-option", "path=imgs"), 0,
        ("mix grayscale and colour", "a.png is l", "b.png is rgb", "set the option channels", "run finished at step 2"),
        images("a.png", "b.png+", "c.png", "d.png"), writes=("RUN", "RUN/*")),
    Row("folder-mixed-sizes", tiny("--data", "folder", "--data-option", "path=imgs"), 2,
        ("differ in size", "is 8x8", "is 6x5", "set the option `size`"),
        lambda s: (images("a.png")(s), images("b.png", size=(6, 5))(s))),
    Row("folder-side-by-side-odd-width", tiny("--data", "folder", "--data-option", "path=imgs",
                                              "--data-option", "side_by_side=left"), 2,
        ("a.png is 7 pixels wide", 'side_by_side = "left" cuts each file into two halves', "crop or pad"),
        images("a.png", "b.png", size=(7, 4))),
    Row("folder-conditions-unmatched", tiny("--data", "folder", "--data-option", "path=imgs",
                                            "--data-option", "conditions=inputs"), 2,
        ("imgs and its conditions inputs do not match", "1 image(s) have no condition (c.png)",
         "1 condition file(s) have no image (x.png)", "same relative path"),
        lambda s: (images("a.png", "b.png", "c.png")(s), images("a.png", "b.png", "x.png", folder="inputs")(s))),
    Row("folder-two-pairings", train("--data", "folder", "--data-option", "path=imgs", "--data-option", "side_by_side=left",
                                     "--data-option", "conditions=inputs"), 2,
        ("'conditions'", "side_by_side and conditions are two ways to pair the images: give one of them")),
    Row("tfrecord-no-shards", tiny("--data", "tfrecord", "--data-option", "path=shards"), 2,
        ("shards", "no tfrecord files there", "a glob pattern"), lambda s: s.path.joinpath("shards").mkdir()),
    Row("tfrecord-missing-feature", tiny("--data", "tfrecord", "--data-option", "path=shards"), 2,
        ("shards/a.tfrecord: the first record has no bytes feature 'image' (option image_key)",
         "its features: label, picture"), shard_of_pictures),
    Row("epochs-of-a-stream", ("train", *TINY, "--data", "endless", "--epochs", "2", "--batch-size", "4", "--no-jit",
                               "--out", "RUN"), 2,
        ("config 'epochs': got 2; data set 'endless' is a stream of unknown size", "give steps or max_time instead"),
        endless_stream),
    Row("pairs-factor-not-dividing", train("--data", "digits", "--pairs", "downscale", "--set", "pairs.factor=3"), 2,
        ("'pairs.factor': got 3", "must divide the images' height and width (8x8", "choose 2, 4 or 8")),
    Row("pairs-hole-too-large", train("--data", "digits", "--pairs", "mask", "--set", "pairs.hole=9"), 2,
        ("'pairs.hole': got 9", "the hole must fit in the images (8x8", "at most 8")),
    Row("pairs-grayscale-of-gray", train("--data", "digits", "--pairs", "grayscale"), 2,
        ("'pairs.derive': got 'grayscale'", "from rgb images", "has 1 channel(s)", "choose downscale, mask or edges")),
    Row("pairs-data-already-paired", tiny("--data", "folder", "--data-option", "path=imgs",
                                          "--data-option", "side_by_side=left", "--pairs", "edges"), 2,
        ("data set 'folder' already pairs each image with a condition", "remove [pairs] (or --pairs)"),
        images("a.png", "b.png")),
    Row("arch-data-shape-mismatch", train("--data", "digits", "--arch", "dcgan"), 2,
        ("architecture 'dcgan' supports", "side 28 or a power of two", "8x8x1")),
    Row("arch-conditional-without-labels", train("--data", "npz", "--data-option", "path=d.npz", "--conditional"), 2,
        ("conditional = true needs labelled data", "num_classes"), npz(x=np.full((40, 8, 8), 0.5, np.float32))),
    Row("arch-resnet-size", train("--arch", "resnet", "--data", "npz", "--data-option", "path=d.npz"), 2,
        ("'resnet' supports square images whose side is a power of two", "12x12x1"),
        npz(x=np.full((40, 12, 12), 0.5, np.float32))),
    Row("arch-output-range-mismatch", tiny("--data", "digits", "--arch-option", "output_activation=tanh"), 2,
        ("generates values in [-1, 1]", "lies in [0, 1]", "output_activation", "sigmoid for [0, 1]")),
    Row("batch-larger-than-data", tiny("--data", "digits", "--data-option", "limit=10", "--batch-size", "32"), 2,
        ("= 32 is larger than the data set (10 images)", "batch_size")),
    # -- run directories
    Row("out-is-a-file", tiny("--data", "digits"), 2, ("'RUN' exists and is not a directory",), lambda s: s.write("RUN", "notes")),
    Row("out-holds-a-run", tiny("--data", "digits"), 2, ("'RUN' is not empty", "--resume run", "--overwrite"), Scene.run),
    Row("resume-not-a-run", ("train", "--resume", "notes", "--steps", "4"), 2, ("'notes' is not a ganframe run directory",),
        lambda s: s.write("notes/todo.txt", "train a GAN")),
    Row("resume-missing", ("train", "--resume", "nowhere", "--steps", "4"), 2, ("run directory 'nowhere' does not exist",)),
    Row("resume-all-checkpoints-corrupt", ("train", "--resume", "RUN", "--steps", "4"), 1,
        ("ckpt-000000002.npz is unreadable or truncated", "no usable checkpoint"), corrupt_checkpoints),
    Row("resume-incompatible-config", ("train", "--resume", "RUN", "--steps", "4", "--set", "arch_options.g_widths=[16]"), 2,
        ("incompatible", "arch_options.g_widths"), Scene.run),
    Row("checkpoint-write-fails", ("train", "--resume", "RUN", "--steps", "4", "--checkpoint-every", "2"), 1,
        ("could not write checkpoint", "ckpt-000000004.npz", "no space left on device"), full_disk_on_resume,
        writes=("RUN/config.toml", "RUN/run.json", "RUN/tensorboard/*")),
    # -- plugins
    Row("plugin-import-fails", ("--strict", "plugins"), 2, ("plugin 'brokenimport'", "failed", "modulenotfounderror"),
        lambda s: s.plugins("brokenimport")),
    Row("plugin-misspelt-hook", ("--strict", "plugins"), 2,
        ("plugin 'misspelt'", "unknown hook 'ganframe_register_architecture'", "did you mean"), lambda s: s.plugins("misspelt")),
    Row("plugin-raises-in-registration", ("--strict", "plugins"), 2, ("plugin 'raising'", "runtimeerror: boom"),
        lambda s: s.plugins("raising")),
    Row("plugin-duplicate-name", ("--strict", "plugins"), 2,
        ("plugin 'duplicate'", "architecture 'tiny' is already registered by plugin 'testplugin'"), lambda s: s.plugins("duplicate")),
    Row("component-of-a-failed-plugin", train("--data", "digits", "--arch", "halfmade"), 2,
        ("unknown architecture 'halfmade'", "failed to load", "plugin 'raising'"), lambda s: s.plugins("raising")),
    Row("plugin-returns-wrong-type", train("--data", "digits", "--arch", "hollow"), 1,
        ("architecture 'hollow' (plugin 'hollow')", "returned nonetype, expected networks"), wrong_type_plugin),
    Row("plugin-factory-raises", train("--data", "digits", "--arch", "explodes"), 1,
        ("architecture 'explodes' (plugin 'explodes') failed to build", "zerodivisionerror"), raising_factory_plugin),
    Row("generator-leaves-its-range", train("--data", "digits", "--arch", "stretch"), 2,
        ("architecture 'stretch' (plugin 'stretch')", "outside the range it declares, [0, 1]", "sigmoid"),
        faulty_architecture("stretch", activation=None)),
    Row("discriminator-not-one-logit", train("--data", "digits", "--arch", "fourfold"), 2,
        ("architecture 'fourfold' (plugin 'fourfold')", "discriminator returned shape (4, 4)", "one raw logit per image"),
        faulty_architecture("fourfold", logits=4)),
    Row("loss-not-a-scalar", tiny("--data", "digits", "--loss", "perimage"), 2,
        ("loss 'perimage' (plugin 'perimage')", "the discriminator's loss has shape (4, 1)", "expected a scalar"),
        per_image_loss),
    Row("term-needs-a-head", tiny("--data", "digits", "--penalty", "feature_matching"), 2,
        ("loss 'feature_matching' (plugin 'ganframe.builtin.terms')", "reads the discriminator's 'features' output",
         "feature_head = true")),
    # -- sample and export
    Row("sample-bad-extension", ("sample", "RUN", "--out", "grid.jpg"), 2, ("grid.jpg", "must be .png")),
    Row("sample-out-is-a-directory", ("sample", "RUN", "--out", "grid.png"), 2, ("'grid.png' is a directory",),
        lambda s: s.path.joinpath("grid.png").mkdir()),
    Row("sample-class-unconditional", ("sample", "RUN", "--class", "3", "--out", "x.png"), 2,
        ("this gan is not conditional", "--conditional"), Scene.run),
    Row("sample-n-zero", ("sample", "RUN", "--n", "0"), 2, ("invalid value", "--n")),
    Row("sample-not-a-run", ("sample", "notes", "--out", "x.png"), 2,
        ("'notes' is not a ganframe run directory (it has no config.toml)",), lambda s: s.write("notes/todo.txt", "train a GAN")),
    Row("sample-missing-run", ("sample", "nowhere", "--out", "x.png"), 2, ("run directory 'nowhere' does not exist",)),
    Row("sample-no-checkpoint", ("sample", "RUN", "--out", "x.png"), 1, ("'run' has no usable checkpoint",), no_checkpoints),
    Row("sample-write-fails", ("sample", "RUN", "--out", "x.png"), 1, ("file system error", "no space left on device"),
        full_disk_on_sample),
    Row("translate-not-conditioned", ("translate", "RUN", "--input", "in.npz", "--out", "out.npz"), 2,
        ("does not translate images: its generator takes no condition", "ganframe sample"), unconditioned_run_and_inputs),
    Row("translate-wrong-size", ("translate", "RUN", "--input", "in.npz", "--out", "out.npz"), 2,
        ("the input images are 6x6x1, but this run translates conditions of 8x8x1", "resize them"),
        paired_run_and_small_inputs),
    Row("translate-input-nan", ("translate", "RUN", "--input", "d.npz", "--out", "out.npz"), 2,
        ("d.npz: 3 pixel values are NaN or infinite, in 2 of 10 images",),
        lambda s: (s.write("RUN/config.toml", 'arch = "dense"\n'), npz(x=nan_images)(s))),
    Row("export-bad-extension", ("export", "RUN", "--out", "g.h5"), 2, ("g.h5", "must be .keras")),
    Row("export-parent-is-a-file", ("export", "RUN", "--out", "notes.txt/g.keras"), 2, ("'notes.txt' is a file, not a directory",),
        lambda s: s.write("notes.txt", "notes")),
    Row("export-missing-run", ("export", "nowhere"), 2, ("run directory 'nowhere' does not exist",)),
    Row("export-run-json-damaged", ("export", "RUN", "--out", "g.keras"), 1, ("run.json", "missing or damaged"),
        damaged_run_json),
    # -- evaluate
    Row("evaluate-samples-missing", ("evaluate", "nowhere.npz"), 2, ("samples 'nowhere.npz' do not exist",)),
    Row("evaluate-samples-not-images", ("evaluate", "notes.txt"), 2,
        ("samples 'notes.txt'", "expected a run directory, an .npz/.npy file or a folder"), lambda s: s.write("notes.txt", "hi")),
    Row("evaluate-bad-extension", ("evaluate", "d.npz", "--out", "scores.csv"), 2, ("scores.csv", "must be .json")),
    Row("evaluate-against-malformed", ("evaluate", "d.npz", "--against", "mnist:"), 2, ("'mnist:'", "NAME:SPLIT"),
        npz(x=np.zeros((10, 8, 8), np.uint8))),
    Row("evaluate-metric-option-malformed", ("evaluate", "d.npz", "--metric-option", "subsets=3"), 2,
        ("--metric-option subsets=3", "METRIC.KEY=VALUE")),
    Row("evaluate-shape-mismatch", ("evaluate", "d.npz", "--against", "digits"), 2,
        ("the samples are 28x28x1 images but digits holds 8x8x1",), npz(x=np.zeros((10, 28, 28), np.uint8))),
    Row("evaluate-inception-without-weights", ("evaluate", "d.npz", "--against", "digits", "--extractor", "inception"), 2,
        ("no inceptionv3 weights at", "never downloads them"),
        lambda s: (s.monkeypatch.setenv("KERAS_HOME", str(s.path / "keras")), npz(x=np.zeros((10, 8, 8), np.uint8))(s))),
    # -- report
    Row("report-not-a-run", ("report", "notes.txt"), 2, ("'notes.txt' is not a ganframe run directory (it is a file)",),
        lambda s: s.write("notes.txt", "notes")),
    Row("report-missing-run", ("report", "nowhere"), 2, ("run directory 'nowhere' does not exist",)),
    Row("report-out-is-a-file", ("report", "RUN", "--out", "notes.txt"), 2,
        ("report folder 'notes.txt' exists and is not a directory",),
        lambda s: (s.write("RUN/config.toml", 'arch = "dense"\n'), s.write("notes.txt", "notes"))),
    Row("report-files-missing", ("report", "RUN"), 0, ("wrote the report to", "report.html"),
        lambda s: s.write("RUN/config.toml", 'arch = "dense"\n'), writes=("RUN/report", "RUN/report/*")),
    # -- ganframe new
    Row("new-invalid-name", ("new", "my gan!"), 2, ("'my gan!'", "not a valid package name")),
    Row("new-name-is-a-path", ("new", "../escape"), 2, ("'../escape' is a path", "--dir"), process=True),
    Row("new-absolute-path", ("new", "/tmp/escape"), 2, ("'/tmp/escape' is a path",)),
    Row("new-keyword-name", ("new", "class"), 2, ("'class'", "not a valid identifier")),
    Row("new-shadowing-name", ("new", "numpy"), 2, ("'numpy'", "would shadow")),
    Row("new-unknown-template", ("new", "my-gan", "--template", "library"), 2, ("unknown template 'library'", "available: ")),
    Row("new-unknown-kind", ("new", "my-gan", "--kinds", "architecture,model"), 2, ("unknown kind(s) 'model'", "choose from")),
    Row("new-target-not-empty", ("new", "my-gan"), 2, ("'my-gan' exists and is not empty", "--force"),
        lambda s: s.write("my-gan/notes.txt", "mine")),
]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished two-step run of the tiny dense GAN on digits, with one checkpoint (step 2); rows copy it."""
    path = tmp_path_factory.mktemp("trained") / "RUN"
    config = {
        "arch": "dense", "arch_options": {"g_widths": [8], "d_widths": [8], "latent_dim": 4},
        "data": "digits", "steps": 2, "batch_size": 4, "jit_compile": False, "out": str(path),
        "callbacks": {"samples": {"every": 0}, "checkpoint": {"every": 2}, "metrics": {"every": 0}},
    }
    ganframe.train(config, registry=ganframe.load_plugins(), progress=False)
    return path


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No plugin or data switches from the caller; a fresh registry per row; tmp_path as the working directory."""
    for name in PLUGIN_ENV:
        monkeypatch.setenv(name, "")  # recorded, so a value the CLI sets in process (--strict) is undone too
        monkeypatch.delenv(name)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.setattr(ganframe.plugins, "_REGISTRY", None)
    monkeypatch.chdir(tmp_path)


def snapshot(root: Path) -> dict[str, Any]:
    """Every path under ``root``: a file by its content's hash and its mtime, a directory as such."""
    return {
        path.relative_to(root).as_posix(): (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
        if path.is_file() else "directory"
        for path in root.rglob("*")
    }


def invoke(row: Row, cwd: Path) -> tuple[int, str]:
    """Exit code and all output; in process, an exception that escaped the command fails the row."""
    if row.process:
        env = {key: value for key, value in os.environ.items() if key not in PLUGIN_ENV}
        done = subprocess.run([str(CLI), *row.args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
        return done.returncode, done.stdout + done.stderr
    result = CliRunner().invoke(app, list(row.args))
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, result.stdout + result.stderr


@pytest.mark.parametrize("row", [pytest.param(row, id=row.id, marks=row.marks) for row in ROWS])
def test_bad_input(row: Row, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    if row.setup is not None:
        row.setup(Scene(tmp_path, monkeypatch, request))
    before = snapshot(tmp_path)

    code, output = invoke(row, tmp_path)

    assert "Traceback" not in output, output
    assert code == row.code, output
    for word in row.words:
        assert word.lower() in output.lower(), f"{word!r} not in:\n{output}"
    after = snapshot(tmp_path)
    changed = sorted(path for path in before.keys() | after.keys() if before.get(path) != after.get(path))
    unexpected = [path for path in changed if not any(fnmatch.fnmatch(path, glob) for glob in row.writes)]
    assert not unexpected, f"created, changed or removed: {unexpected}"


def _doc_rows() -> dict[str, int]:
    """id -> exit code, from the table in docs/errors.md (columns: id, situation, says, exit, ...)."""
    rows = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if match := re.match(r"^\| `([a-z0-9-]+)` \|", line):
            cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
            assert match.group(1) not in rows, f"{match.group(1)} is documented twice"
            rows[match.group(1)] = int(cells[3])
    return rows


def test_the_doc_table_has_exactly_these_rows() -> None:
    documented = _doc_rows()
    assert list(documented) == [row.id for row in ROWS]
    assert documented == {row.id: row.code for row in ROWS}
    assert len(ROWS) >= 30
