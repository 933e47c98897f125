"""The conformance kit (ganframe.testing): every built-in passes its check, and broken components fail theirs.

The broken components are registered by a real in-process plugin (``load_plugins(extra=...)``),
one per way a check can fail; each failure must name the component, its plugin and the problem.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from PIL import Image
from pydantic import BaseModel, ConfigDict

import ganframe
from ganframe import (
    KINDS,
    AdversarialLoss,
    Augmentation,
    DataSpec,
    FeatureExtractor,
    ImageData,
    Metric,
    Networks,
    Options,
    Penalty,
    hookimpl,
)
from ganframe.builtin import datasets as builtin_datasets
from ganframe.plugins import load_plugins
from ganframe.testing import (
    TINY_SPEC,
    check_architecture,
    check_augmentation,
    check_callback,
    check_dataset,
    check_feature_extractor,
    check_loss,
    check_metric,
    isolated_registry,
    tiny_data,
)
from datafiles import write_cifar, write_mnist

CHECKS: dict[str, Callable[..., Any]] = {
    "architecture": check_architecture,
    "dataset": check_dataset,
    "loss": check_loss,
    "callback": check_callback,
    "augmentation": check_augmentation,
    "metric": check_metric,
    "feature_extractor": check_feature_extractor,
}

# -- the built-ins --------------------------------------------------------------------------------------

BUILTINS = isolated_registry()  # no entry points: the names are the built-ins' (and no TensorFlow yet)

#: Keyword arguments of each built-in's check, where the defaults do not fit (small networks, run often).
ARGUMENTS: dict[tuple[str, str], dict[str, Any]] = {
    ("architecture", "dense"): {"options": {"g_widths": [16], "d_widths": [16], "latent_dim": 8}},
    ("architecture", "dcgan"): {"options": {"base_channels": 4, "latent_dim": 8}, "spec": DataSpec((16, 16, 1))},
    ("dataset", "digits"): {"options": {"limit": 64}},
    ("callback", "samples"): {"options": {"every": 2, "n": 4}},
    ("callback", "checkpoint"): {"options": {"every": 2}},
    ("callback", "metrics"): {"options": {"every": 2}},
    # a term between G's output and the image paired with its condition: checked on paired data
    ("loss", "reconstruction"): {"spec": DataSpec((8, 8, 1), (0.0, 1.0), 2, condition_shape=(8, 8, 1))},
}


def mnist_files(directory: Path) -> dict[str, Any]:
    pixels = np.random.default_rng(0).integers(0, 256, (20, 28, 28), dtype=np.uint8)
    digits = np.arange(20, dtype=np.uint8) % 10
    np.savez(directory / "mnist.npz", x_train=pixels, y_train=digits, x_test=pixels[:10], y_test=digits[:10])
    return {"options": {"limit": 16}, "data_dir": directory}


def npz_file(directory: Path) -> dict[str, Any]:
    np.savez(directory / "faces.npz", x=np.random.default_rng(0).integers(0, 256, (12, 6, 6), dtype=np.uint8))
    return {"options": {"path": directory / "faces.npz"}}


def image_folder(directory: Path) -> dict[str, Any]:
    for index in range(4):
        folder = directory / ("cats" if index % 2 else "dogs")
        folder.mkdir(exist_ok=True)
        Image.fromarray(np.full((6, 6), 60 * index, np.uint8)).save(folder / f"{index}.png")
    return {"options": {"path": directory, "labels": True}}


#: Built-in datasets that read files: each writes a tiny set into a directory and returns the check's arguments.
def fashion_files(directory: Path) -> dict[str, Any]:
    write_mnist(directory / "fashion-mnist")
    return {"options": {"limit": 16}, "data_dir": directory}


def cifar10_files(directory: Path) -> dict[str, Any]:
    write_cifar(directory)  # 3 records per file: the test sets CIFAR10_RECORDS to match
    return {"options": {"limit": 16}, "data_dir": directory}


def tfrecord_shards(directory: Path) -> dict[str, Any]:
    import tensorflow as tf

    for shard in range(2):
        with tf.io.TFRecordWriter(str(directory / f"train-{shard}.tfrecord")) as writer:
            for index in range(3):
                png = tf.io.encode_png(tf.fill((6, 6, 1), tf.constant(40 * index, tf.uint8))).numpy()
                features = {"image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[png])),
                            "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[index % 2]))}
                writer.write(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())
    return {"options": {"path": directory, "label_key": "label", "num_classes": 2}}


DATA_FILES: dict[str, Callable[[Path], dict[str, Any]]] = {
    "mnist": mnist_files, "fashion_mnist": fashion_files, "cifar10": cifar10_files, "npz": npz_file,
    "folder": image_folder, "tfrecord": tfrecord_shards,
}


def inception_stand_in(directory: Path) -> dict[str, Any]:
    """The no-top InceptionV3 with its random initial weights, in a weights file of its own: ganframe never
    downloads the ImageNet ones, and the check is of the extractor's code (loading, preprocessing, batching,
    determinism), not of what the weights learned. Keras writes the format of ``.weights.h5``, not the legacy
    ``.h5`` of the real file; the extractor's ``InceptionV3(weights=path)`` reads both. 4 images: each is a
    299x299 forward pass on the CPU."""
    import keras

    path = directory / "inception_v3_stand_in.weights.h5"
    keras.applications.InceptionV3(include_top=False, pooling="avg", weights=None,
                                   input_shape=(299, 299, 3)).save_weights(path)
    return {"options": {"weights": path}, "n": 4}


#: Built-ins that read files: each writes what it reads into a directory and returns the check's arguments.
FILES: dict[tuple[str, str], Callable[[Path], dict[str, Any]]] = {
    **{("dataset", name): write for name, write in DATA_FILES.items()},
    ("feature_extractor", "inception"): inception_stand_in,
}


@pytest.mark.parametrize(
    ("kind", "name"),
    [pytest.param(kind, name, id=f"{kind}-{name}") for kind in KINDS for name in BUILTINS.names(kind)],
)
def test_builtin_components_pass_their_check(kind, name, ganframe_registry, tmp_path, monkeypatch):
    monkeypatch.setattr(builtin_datasets, "CIFAR10_RECORDS", 3)  # the original's 10000 per file: 180 MB
    arguments = FILES[kind, name](tmp_path) if (kind, name) in FILES else ARGUMENTS.get((kind, name), {})
    CHECKS[kind](name, registry=ganframe_registry, **arguments)


def test_the_registry_fixture_holds_only_the_builtins(ganframe_registry):
    assert all(record.distribution == "ganframe" for record in ganframe_registry.plugins)
    assert {kind: ganframe_registry.names(kind) for kind in KINDS} == {kind: BUILTINS.names(kind) for kind in KINDS}


def test_a_pip_installed_plugin_is_checked_in_isolation(installed_plugins):
    registry = isolated_registry(["testplugin"])  # not the broken test plugins installed beside it
    assert [record.name for record in registry.plugins if record.distribution != "ganframe"] == ["testplugin"]
    check_architecture("tiny", registry=registry)


def test_an_entry_point_that_is_not_installed_is_named():
    with pytest.raises(ganframe.PluginError, match="no entry point 'no-such-plugin' in group 'ganframe'.*pip install"):
        isolated_registry(["no-such-plugin"])


def test_pytest_loads_the_kit_which_imports_no_tensorflow(pytestconfig):
    assert pytestconfig.pluginmanager.has_plugin("ganframe")  # the pytest11 entry point
    code = "import sys, ganframe.testing; print(sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras'}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_tiny_image_data_fixture(tiny_image_data):
    assert isinstance(tiny_image_data, ImageData) and tiny_image_data.spec == TINY_SPEC
    assert len(tiny_image_data) == 64 and set(tiny_image_data.labels) == {0, 1}


# -- a throwaway plugin: components that pass, and broken ones ----------------------------------------


def dense_networks(spec: DataSpec, *, output: str = "sigmoid", shape: tuple[int, ...] | None = None,
                   detached_d: bool = False, conditional: bool = False) -> Networks:
    """A tiny dense GAN; the keyword arguments break it (or make it conditional)."""
    import keras

    noise, image, label = keras.Input((4,)), keras.Input(spec.shape), keras.Input((), dtype="int32")
    x = noise
    if conditional:  # on up to 10 classes, whatever the spec says
        x = keras.layers.Concatenate()([x, keras.layers.Embedding(10, 4)(label)])
    x = keras.layers.Dense(int(np.prod(shape or spec.shape)), activation=output)(keras.layers.Dense(8)(x))
    images = keras.layers.Reshape(shape or spec.shape)(x)
    flat = keras.layers.Flatten()(image)
    if conditional:
        flat = keras.layers.Concatenate()([flat, keras.layers.Embedding(10, 4)(label)])
    logit = keras.layers.Dense(1)(keras.layers.Dense(8)(flat))
    if detached_d:  # the logit ignores D's weights: G can still learn, D cannot
        mean = keras.layers.Lambda(lambda t: keras.ops.mean(t, axis=1, keepdims=True))(flat)
        logit = keras.layers.Lambda(lambda pair: pair[0] + 0.0 * pair[1])([mean, logit])
    inputs = ([noise, label], [image, label]) if conditional else (noise, image)
    generator, discriminator = keras.Model(inputs[0], images), keras.Model(inputs[1], logit)
    return Networks(generator, discriminator, latent_dim=4, output_range=(0.0, 1.0), conditional=conditional)


def build_frozen_d(spec, options):
    networks = dense_networks(spec)
    networks.discriminator.trainable = False
    return networks


class PlainOptions(BaseModel):  # forbids extra keys, but not a ganframe.Options
    model_config = ConfigDict(extra="forbid")


class NaNLoss(AdversarialLoss):
    def discriminator_loss(self, real_logits, fake_logits):
        from keras import ops

        return ops.mean(ops.log(-ops.abs(real_logits))) + ops.mean(fake_logits)  # log of a negative: NaN

    def generator_loss(self, fake_logits):
        from keras import ops

        return -ops.mean(fake_logits)


class PerImageLoss(NaNLoss):
    def discriminator_loss(self, real_logits, fake_logits):
        return fake_logits - real_logits  # one value per image, not the batch mean


class R1(Penalty):
    def __call__(self, critic, real, fake):
        from keras import ops

        gradients = ganframe.input_gradients(critic, real)
        return 5.0 * ops.mean(ops.sum(ops.square(gradients), axis=(1, 2, 3)))


def unseeded_digits(context, options):
    images = np.random.default_rng().random((16, 8, 8, 1)).astype(np.float32)  # a new seed on every load
    return ImageData(images, None, DataSpec((8, 8, 1)))


def writes_steps(context, options):
    import keras

    class Log(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            with open(context.run_dir / "steps.log", "a") as handle:
                handle.write(f"{self.model.global_step}\n")

    return Log()


def writes_to_cwd(context, options):
    import keras

    class Log(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            Path("train.log").write_text("done\n")  # relative: lands wherever the process happens to be

    return Log()


class Flip(Augmentation):
    def __call__(self, images, seed):
        import keras

        flip = keras.random.uniform((keras.ops.shape(images)[0], 1, 1, 1), seed=seed) < 0.5
        return keras.ops.where(flip, keras.ops.flip(images, axis=2), images)


class Crop(Augmentation):
    def __call__(self, images, seed):
        return images[:, 1:-1, 1:-1, :]


class Noisy(Augmentation):
    def __call__(self, images, seed):
        return images + np.random.normal(0, 0.1, images.shape).astype(np.float32)  # numpy: ignores the seed


class Rounded(Augmentation):
    def __call__(self, images, seed):
        import keras

        return keras.ops.round(images)  # no gradient


class MeanGap(Metric):
    higher_is_better = False

    def compute(self, real, fake):
        return {"mean_gap": float(np.abs(real.mean(axis=0) - fake.mean(axis=0)).mean())}


class BackwardsGap(MeanGap):
    higher_is_better = True  # a distance: lower is better


class Pool(FeatureExtractor):
    def __call__(self, images):
        n, height, width, channels = images.shape
        return images.reshape(n, height // 2, 2, width // 2, 2, channels).mean(axis=(2, 4)).reshape(n, -1)


class BatchNormalised(FeatureExtractor):
    def __call__(self, images):
        flat = images.reshape(len(images), -1)
        return flat - flat.mean(axis=0)  # depends on the other images in the batch


class Flat(FeatureExtractor):
    def __call__(self, images):
        return images.mean(axis=(1, 2, 3))  # (N,), not (N, D)


def constant(value: Any) -> Callable[[Any, Any], Any]:
    return lambda spec_or_context, options: value


class Throwaway:
    """An in-process plugin: ``good-*`` components pass their check, ``broken-*`` ones fail it."""

    @staticmethod
    @hookimpl
    def ganframe_register_architectures(register):
        register("good-conditional", lambda spec, options: dense_networks(spec, conditional=True), "Conditional.")
        register("broken-shape", lambda spec, options: dense_networks(spec, shape=(4, 4, 1)), "Wrong shape.")
        register("broken-range", lambda spec, options: dense_networks(spec, output="linear"), "Out of range.")
        register("broken-frozen-d", build_frozen_d, "D frozen.")
        register("broken-detached-d", lambda spec, options: dense_networks(spec, detached_d=True), "D cannot learn.")
        register("broken-options", lambda spec, options: dense_networks(spec), "Plain options.", PlainOptions)

    @staticmethod
    @hookimpl
    def ganframe_register_datasets(register):
        register("broken-unseeded", unseeded_digits, "A new random set on every load.")
        register("broken-tuple", constant((np.zeros((4, 8, 8, 1), np.float32), None)), "Not ImageData.")

    @staticmethod
    @hookimpl
    def ganframe_register_losses(register):
        register("good-r1", constant(R1()), "R1 penalty.")
        register("broken-nan", constant(NaNLoss()), "NaN.")
        register("broken-per-image", constant(PerImageLoss()), "No mean.")

    @staticmethod
    @hookimpl
    def ganframe_register_callbacks(register):
        register("good-steps", writes_steps, "Logs each step into the run directory.")
        register("broken-not-callback", constant(object()), "Not a callback.")
        register("broken-cwd", writes_to_cwd, "Writes to the current directory.")

    @staticmethod
    @hookimpl
    def ganframe_register_augmentations(register):
        register("good-flip", constant(Flip()), "Flip.")
        register("broken-crop", constant(Crop()), "Crops.")
        register("broken-unseeded", constant(Noisy()), "Unseeded noise.")
        register("broken-rounded", constant(Rounded()), "Not differentiable.")

    @staticmethod
    @hookimpl
    def ganframe_register_metrics(register):
        register("good-gap", constant(MeanGap()), "Mean gap.")
        register("broken-backwards", constant(BackwardsGap()), "higher_is_better wrong.")

    @staticmethod
    @hookimpl
    def ganframe_register_feature_extractors(register):
        register("good-pool", constant(Pool()), "2x2 pooling.")
        register("broken-batch", constant(BatchNormalised()), "Batch statistics.")
        register("broken-flat", constant(Flat()), "One number per image.")


class LaxOptions(Options):
    model_config = ConfigDict(extra="ignore")  # the registry refuses it: the whole plugin fails to load


class Lax:
    @staticmethod
    @hookimpl
    def ganframe_register_architectures(register):
        register("lax", lambda spec, options: dense_networks(spec), "Lax options.", LaxOptions)


@pytest.fixture(scope="module")
def throwaway():
    return load_plugins(strict=False, disabled=(), only=(), extra=[("throwaway", Throwaway), ("lax", Lax)])


@pytest.mark.parametrize(("kind", "name"), [
    ("architecture", "good-conditional"),
    ("loss", "good-r1"),
    ("augmentation", "good-flip"),
    ("metric", "good-gap"),
    ("feature_extractor", "good-pool"),
], ids=lambda value: value)
def test_good_components_pass(throwaway, kind, name):
    CHECKS[kind](name, registry=throwaway)


BROKEN = [
    ("architecture", "broken-shape", r"the generator's output has shape \(4, 4, 4, 1\), expected \(4, 8, 8, 1\)"),
    ("architecture", "broken-range", r"outside the declared output_range \[0, 1\]"),
    ("architecture", "broken-frozen-d", r"building the GAN engine.*ConfigError: the .* has no trainable variables"),
    ("architecture", "broken-detached-d", r"left all 4 trainable variables of the discriminator unchanged"),
    ("architecture", "broken-options", r"options model 'PlainOptions' must derive from ganframe.Options"),
    ("dataset", "broken-unseeded", r"two loads with seed 0 gave different data"),
    ("dataset", "broken-tuple", r"its factory returned tuple, expected ganframe.ImageData"),
    ("loss", "broken-nan", r"the discriminator's loss on random logits is not finite: nan"),
    ("loss", "broken-per-image", r"the discriminator's loss on random logits has shape \(8, 1\), expected a scalar"),
    ("callback", "broken-not-callback", r"its factory returned object, expected a keras.callbacks.Callback"),
    ("callback", "broken-cwd", r"it wrote train.log into the current directory"),
    ("augmentation", "broken-crop", r"returned float32 \(8, 6, 6, 1\) for float32 \(8, 8, 8, 1\)"),
    ("augmentation", "broken-unseeded", r"the same seed gave different images"),
    ("augmentation", "broken-rounded", r"the gradient of the augmented images .* is None"),
    ("metric", "broken-backwards", r"'mean_gap' scores identical sets worse \(0\) than different ones"),
    ("feature_extractor", "broken-batch", r"depend on the call or on the other images in the batch"),
    ("feature_extractor", "broken-flat", r"features of shape \(8,\), expected \(8, D\)"),
]


@pytest.mark.parametrize(("kind", "name", "problem"), BROKEN, ids=[f"{kind}-{name}" for kind, name, _ in BROKEN])
def test_broken_components_fail_naming_component_plugin_and_problem(throwaway, kind, name, problem):
    with pytest.raises(AssertionError) as failure:
        CHECKS[kind](name, registry=throwaway)
    message = str(failure.value)
    assert message.startswith(f"{kind} {name!r} (plugin 'throwaway'): "), message
    assert re.search(problem, message), message


def test_options_that_allow_unknown_keys_keep_the_plugin_from_loading(throwaway):
    with pytest.raises(AssertionError) as failure:
        check_architecture("lax", registry=throwaway)
    message = str(failure.value)
    assert message.startswith("architecture 'lax' is not registered"), message
    assert "plugin 'lax' ((in process) -) failed to load" in message
    assert "options model LaxOptions must forbid extra fields" in message


def test_options_are_validated_and_an_unknown_component_is_named(throwaway):
    with pytest.raises(AssertionError, match=r"architecture 'dense' \(plugin 'ganframe.builtin.archs'\): options "
                                             r"\{'latent_dim': -1\} are refused"):
        check_architecture("dense", {"latent_dim": -1}, registry=throwaway)
    with pytest.raises(AssertionError, match="metric 'fdi' is not registered; metric names: broken-backwards, "
                                             "density_coverage, fid, good-gap, inception_score, kid, precision_recall"):
        check_metric("fdi", registry=throwaway)


def test_a_callback_check_keeps_the_run_directory_it_is_given(throwaway, tmp_path):
    callback = check_callback("good-steps", registry=throwaway, steps=3, run_dir=tmp_path / "run")
    assert (tmp_path / "run" / "steps.log").read_text().split() == ["1", "2", "3"]
    assert callback.model.global_step == 3
    assert sorted(path.name for path in tmp_path.iterdir()) == ["run"]


def test_a_conditional_architecture_needs_classes_in_the_spec(throwaway):
    with pytest.raises(AssertionError, match=r"is conditional but the spec has no num_classes"):
        check_architecture("good-conditional", registry=throwaway, spec=DataSpec((8, 8, 1)))


def test_tiny_data_follows_the_spec():
    data = tiny_data(DataSpec((4, 6, 3), (-1.0, 1.0)), n=5, seed=3)
    assert data.images.shape == (5, 4, 6, 3) and data.labels is None
    assert data.images.min() >= -1.0 and np.array_equal(data.images, tiny_data(data.spec, n=5, seed=3).images)
