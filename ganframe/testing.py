"""The conformance kit for plugin authors: does a component honour ganframe's plugin contract?

Like scikit-learn's ``check_estimator``: each ``check_<kind>(name, options=None, *, registry=None, ...)``
builds the registered component the way a run would and checks it against the contract
(docs/plugins.md). A problem raises ``AssertionError`` whose message names the component, its
plugin and what is wrong, e.g. ``architecture 'wide' (plugin 'my_plugin'): the generator's output
has shape (4, 4, 4, 1), expected (4, 8, 8, 1)``. On success a check returns what it built.
Each takes a few seconds on a CPU.

Every check first checks the options model: it derives from :class:`ganframe.Options`, refuses an
unknown key, and accepts ``options``. Then, per kind:

``check_architecture``  G maps ``(n, latent_dim)`` noise (plus conditions and labels, where it takes
                        them) to float32 ``(n, *spec.shape)`` within the declared ``output_range``,
                        which must be ``spec.value_range``; D gives one finite logit per image (and
                        heads of one row per image, if it returns a dict); a few real
                        training steps change BOTH networks' weights; a checkpoint saved and
                        loaded into freshly built networks generates identical images.
``check_dataset``       returns :class:`ganframe.ImageData` (which checks shape, dtype, range and
                        labels) and the same data for the same seed; pass ``data_dir`` if it reads files.
                        A :class:`ganframe.DataSource` or :class:`ganframe.DataStream`: a sample of its
                        examples read and checked the same way, the same for two loads, and one
                        training batch of its spec's shape.
``check_loss``          an :class:`~ganframe.AdversarialLoss` gives finite scalars with gradients on
                        random logits; a :class:`~ganframe.Penalty` a finite scalar with gradients on a
                        tiny critic; then both train a tiny GAN for a few steps.
``check_callback``      a ``keras.callbacks.Callback`` that survives a short run, writing nothing into
                        the current directory; pass ``run_dir`` (e.g. pytest's ``tmp_path``) to keep
                        the run directory and assert on what the callback wrote there.
``check_augmentation``  same shape and dtype out, the same images for the same seed, a gradient with
                        respect to the images, and a short run with it.
``check_metric``        a dict of finite floats; identical sets score at least as well as different
                        ones (so ``higher_is_better`` is right).
``check_feature_extractor``  finite ``(N, D)`` features, deterministic and independent of the batch.

The tiny GAN the checks train is the engine itself (:class:`ganframe.GAN`, ``jit_compile=False``
by default; pass ``jit_compile=True`` to check that a component also compiles with XLA, as a
default run does). Checks that need data shapes take ``spec`` (default :data:`TINY_SPEC`, 8x8x1
in [0, 1] with 2 classes): pass one your component accepts.

Pytest: ganframe registers this module as a pytest plugin (entry point ``pytest11``), so every
test session has these fixtures:

``ganframe_plugins``   entry-point names (group ``ganframe``) under test; none by default: override it.
``ganframe_registry``  :func:`isolated_registry` of those: ganframe's built-ins plus only them.
``tiny_image_data``    :func:`tiny_data`: 64 random 8x8x1 images with 2 classes, in memory.

Example, in a plugin's ``tests/test_plugin.py``::

    import pytest
    from ganframe.testing import check_architecture

    @pytest.fixture
    def ganframe_plugins():
        return ["my_plugin"]              # the entry point in your pyproject.toml

    def test_wide_honours_the_contract(ganframe_registry):
        check_architecture("wide", {"width": 16}, registry=ganframe_registry)

TensorFlow is imported only when a check runs: pytest loads this module in every session.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, NoReturn, Sequence

import numpy as np
from pydantic import ValidationError

from ganframe.contract import (
    PENALTY_TARGETS,
    AdversarialLoss,
    Augmentation,
    CallbackContext,
    Component,
    DataContext,
    DataSource,
    DataSpec,
    DataStream,
    FeatureExtractor,
    ImageData,
    InvalidImageData,
    Metric,
    Networks,
    Options,
    Penalty,
    Update,
)
from ganframe.errors import PluginError, describe_validation_error
from ganframe.plugins import ENTRY_POINT_GROUP, Registry, get_registry, load_plugins

if TYPE_CHECKING:
    import keras

    from ganframe.engine import GAN

__all__ = [
    "TINY_SPEC",
    "check_architecture",
    "check_augmentation",
    "check_callback",
    "check_dataset",
    "check_feature_extractor",
    "check_loss",
    "check_metric",
    "isolated_registry",
    "tiny_data",
]

#: The default data spec of the checks: small enough for seconds on a CPU, labelled so that
#: conditional architectures can be checked too.
TINY_SPEC = DataSpec((8, 8, 1), (0.0, 1.0), num_classes=2)

#: Images per batch in the checks' training runs (the data holds 4 batches).
_BATCH = 8

#: A key no options model declares: it must be refused.
_UNKNOWN_KEY = "ganframe_testing_unknown_key"


def tiny_data(spec: DataSpec = TINY_SPEC, n: int = 64, seed: int = 0) -> ImageData:
    """``n`` random images of ``spec`` in memory (labels cycling through the classes, and random conditions,
    if it has them)."""
    low, high = spec.value_range
    rng = np.random.default_rng(seed)
    images = low + (high - low) * rng.random((n, *spec.shape))
    labels = None if spec.num_classes is None else (np.arange(n) % spec.num_classes).astype(np.int32)
    conditions = None if spec.condition_shape is None else rng.random((n, *spec.condition_shape)).astype(np.float32)
    return ImageData(images.astype(np.float32), labels, spec, name="tiny", conditions=conditions)


def isolated_registry(plugins: Iterable[str] = ()) -> Registry:
    """ganframe's built-ins plus only the entry points named ``plugins``, whatever else is installed.

    ``GANFRAME_DISABLE_PLUGINS`` is ignored, and a plugin that fails to load or is not installed
    raises :class:`ganframe.PluginError` saying why, so a test never runs against the wrong components.
    """
    plugins = list(plugins)
    registry = load_plugins(strict=True, disabled=(), only=plugins)
    missing = [name for name in plugins if registry.record(name) is None]
    if missing:
        installed = sorted({entry.name for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)})
        raise PluginError(
            f"no entry point {', '.join(map(repr, missing))} in group {ENTRY_POINT_GROUP!r}: is its package "
            f"installed (pip install -e .)? Installed: {', '.join(installed) or 'none'}"
        )
    return registry


# -- the subject of a check ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Subject:
    """The component under check, so that every failure names it and its plugin."""

    component: Component

    def message(self, problem: str) -> str:
        return f"{self.component.kind} {self.component.name!r} (plugin {self.component.plugin!r}): {problem}"

    def fail(self, problem: str) -> NoReturn:
        raise AssertionError(self.message(problem))

    @contextlib.contextmanager
    def doing(self, what: str) -> Iterator[None]:
        """Turn an exception raised while doing ``what`` into an AssertionError that says so."""
        try:
            yield
        except AssertionError:
            raise
        except Exception as error:
            raise AssertionError(self.message(f"{what} raised {type(error).__name__}: {error}")) from error

    def expect_type(self, value: Any, expected: type | tuple[type, ...], expected_name: str) -> None:
        if not isinstance(value, expected):
            self.fail(f"its factory returned {type(value).__name__}, expected {expected_name}")

    def expect_finite(self, value: Any, what: str) -> np.ndarray:
        array = np.asarray(value)
        if not np.issubdtype(array.dtype, np.number) or not np.isfinite(array).all():
            self.fail(f"{what} is not finite: {_short(array)}")
        return array


def _short(array: np.ndarray) -> str:
    return np.array2string(np.asarray(array), threshold=6, precision=4)


def _lookup(kind: str, name: str, registry: Registry | None) -> Component:
    """The registered component, or an AssertionError saying what is there and which plugins failed why."""
    registry = registry or get_registry()
    if name in registry.components[kind]:
        return registry.components[kind][name]
    problem = f"{kind} {name!r} is not registered; {kind} names: {', '.join(registry.names(kind)) or 'none'}"
    failed = [record for record in registry.plugins if record.status == "failed"]
    for record in failed:
        problem += f"\n  {record.label} failed to load: {record.error}"
    if not failed:
        problem += "\n  is its package installed (pip install -e .), and its entry point in the ganframe_plugins fixture?"
    raise AssertionError(problem)


def _subject(kind: str, name: str, options: dict[str, Any] | None, registry: Registry | None) -> tuple[_Subject, Options]:
    """The component and its validated ``options``, after checking its options model."""
    component = _lookup(kind, name, registry)
    subject = _Subject(component)
    model = component.options
    if not (isinstance(model, type) and issubclass(model, Options)):
        subject.fail(f"options model {getattr(model, '__name__', model)!r} must derive from ganframe.Options "
                     "(unknown keys refused, values frozen)")
    try:
        model.model_validate({**(options or {}), _UNKNOWN_KEY: 1})
    except ValidationError as error:
        refused = any(e["type"] == "extra_forbidden" and e["loc"] == (_UNKNOWN_KEY,) for e in error.errors())
    else:
        refused = False
    if not refused:
        subject.fail(f"options model {model.__name__} accepted the unknown key {_UNKNOWN_KEY!r}: "
                     "a user's typo would pass silently; keep extra='forbid' (derive from ganframe.Options)")
    try:
        validated = model.model_validate(options or {})
    except ValidationError as error:
        subject.fail(f"options {options!r} are refused: {describe_validation_error(error, 'option')}")
    return subject, validated


def _build(subject: _Subject, options: Options, *args: Any) -> Any:
    with subject.doing("its factory"):
        return subject.component.factory(*args, options)


# -- the tiny GAN the checks train ---------------------------------------------------------------------


def _tiny_networks(spec: DataSpec, heads: Sequence[str] = ()) -> Networks:
    """A small dense GAN for ``spec`` (any shape and value range), the partner of losses, callbacks, ...

    It exercises the inputs and outputs the contract has where the spec allows: G takes the class
    when the spec has classes and the condition when it has one; D takes the condition and returns
    its logit with a ``features`` head and, asked for ``heads`` holding ``"class"``, a class head
    (AC-GAN's shape; only then, since an unread head's weights get no gradient).
    """
    import keras

    from ganframe.sampling import network_inputs

    low, high = spec.value_range
    paired, classes = spec.condition_shape is not None, spec.num_classes
    noise = keras.Input((8,))
    condition = keras.Input(spec.condition_shape) if paired else None
    labels = keras.Input((), dtype="int32") if classes else None
    codes = [noise]
    if paired:
        codes.append(keras.layers.Flatten()(condition))
    if classes:
        codes.append(keras.layers.CategoryEncoding(classes, output_mode="one_hot")(labels))
    x = keras.layers.Concatenate()(codes) if len(codes) > 1 else noise
    x = keras.layers.LeakyReLU(0.2)(keras.layers.Dense(16)(x))
    x = keras.layers.Dense(spec.size, activation="sigmoid")(x)
    x = keras.layers.Rescaling(high - low, offset=low)(x)
    generator = keras.Model(network_inputs((noise, True), (condition, paired), (labels, bool(classes))),
                            keras.layers.Reshape(spec.shape)(x), name="tiny_generator")
    image = keras.Input(spec.shape)
    seen = keras.Input(spec.condition_shape) if paired else None
    y = keras.layers.Flatten()(image)
    y = keras.layers.Concatenate()([y, keras.layers.Flatten()(seen)]) if paired else y
    features = keras.layers.LeakyReLU(0.2)(keras.layers.Dense(16)(y))
    outputs = {"logit": keras.layers.Dense(1)(features), "features": features}
    if classes and "class" in heads:
        outputs["class"] = keras.layers.Dense(classes)(features)
    discriminator = keras.Model(network_inputs((image, True), (seen, paired)), outputs, name="tiny_discriminator")
    return Networks(generator, discriminator, latent_dim=8, output_range=(low, high), conditional=bool(classes),
                    takes_condition=paired, discriminator_conditional=False)


def _engine(subject: _Subject, networks: Networks, spec: DataSpec, *, loss: AdversarialLoss | None = None,
            penalties: Sequence[Penalty] = (), augmentations: Sequence[Augmentation] = (),
            jit_compile: bool = False) -> GAN:
    """The engine around ``networks``, compiled; the divergence guard off, so a NaN shows."""
    import keras

    from ganframe.builtin.losses import NonSaturatingLoss
    from ganframe.engine import GAN

    with subject.doing("building the GAN engine around it"):
        gan = GAN(networks, loss or NonSaturatingLoss(), penalties=penalties, augmentations=augmentations,
                  num_classes=spec.num_classes, seed=0, guard=False)
        gan.compile(keras.optimizers.Adam(1e-3, beta_1=0.5), keras.optimizers.Adam(1e-3, beta_1=0.5),
                    jit_compile=jit_compile)
    return gan


def _train(subject: _Subject, gan: GAN, spec: DataSpec, steps: int,
           callbacks: Sequence[keras.callbacks.Callback] = ()) -> None:
    """``steps`` real training steps of ``gan`` on tiny data; the losses must stay finite."""
    from ganframe.pipeline import make_dataset

    with subject.doing(f"training a tiny GAN with it for {steps} steps"):
        history = gan.fit(make_dataset(tiny_data(spec, n=4 * _BATCH), _BATCH), epochs=1, steps_per_epoch=steps,
                          callbacks=list(callbacks), shuffle=False, verbose=0)  # the pipeline shuffles
    for key in ("d_loss", "g_loss"):
        subject.expect_finite(history.history[key], f"{key} over {steps} training steps")


def _short_run(subject: _Subject, spec: DataSpec, steps: int, jit_compile: bool, *,
               callbacks: Sequence[keras.callbacks.Callback] = (), **components: Any) -> GAN:
    """A tiny GAN with the checked ``components`` (loss, penalties, augmentations) trained ``steps`` steps."""
    import keras

    keras.utils.set_random_seed(0)
    heads = [head for penalty in components.get("penalties", ()) for head in penalty.heads]
    gan = _engine(subject, _tiny_networks(spec, heads), spec, jit_compile=jit_compile, **components)
    _train(subject, gan, spec, steps, callbacks)
    return gan


# -- architecture --------------------------------------------------------------------------------------


def check_architecture(name: str, options: dict[str, Any] | None = None, *, registry: Registry | None = None,
                       spec: DataSpec = TINY_SPEC, steps: int = 3, jit_compile: bool = False) -> Networks:
    """Check architecture ``name`` for data of ``spec``; returns the networks it trained."""
    import keras

    subject, validated = _subject("architecture", name, options, registry)
    keras.utils.set_random_seed(0)
    networks = _build(subject, validated, spec)
    subject.expect_type(networks, Networks, "ganframe.Networks")
    if tuple(map(float, networks.output_range)) != tuple(map(float, spec.value_range)):
        subject.fail(f"it declares output_range {tuple(networks.output_range)} for data in {spec.value_range}; the "
                     "engine refuses such a run: match spec.value_range, or check it with a spec (or options) that fit")
    if networks.conditional and spec.num_classes is None:
        subject.fail("it is conditional but the spec has no num_classes: check it with DataSpec(..., num_classes=K)")
    _check_outputs(subject, networks, spec)

    gan = _engine(subject, networks, spec, jit_compile=jit_compile)
    before = {which: [v.numpy().copy() for v in network.trainable_variables]
              for which, network in (("generator", networks.generator), ("discriminator", networks.discriminator))}
    _train(subject, gan, spec, steps)
    for which, network in (("generator", networks.generator), ("discriminator", networks.discriminator)):
        if all(np.array_equal(old, new.numpy()) for old, new in zip(before[which], network.trainable_variables)):
            subject.fail(f"{steps} training steps left all {len(before[which])} trainable variables of the {which} "
                         "unchanged: is it frozen, or its output cut from its weights (stop_gradient, a constant)?")

    _check_checkpoint_round_trip(subject, gan, validated, spec, jit_compile)
    return networks


def _check_outputs(subject: _Subject, networks: Networks, spec: DataSpec, n: int = 4) -> None:
    """G's images: shape, dtype, range; D's outputs: one finite logit per image, and heads of one row per image."""
    from ganframe.sampling import network_inputs

    latent_dim = networks.latent_dim
    noise = np.random.default_rng(0).standard_normal((n, latent_dim)).astype(np.float32)
    labels = (np.arange(n) % spec.num_classes).astype(np.int32) if networks.conditional else None
    condition = None
    if networks.takes_condition:
        if spec.condition_shape is None:
            subject.fail("its networks take a condition but the spec has none: check it with "
                         "DataSpec(..., condition_shape=...)")
        condition = tiny_data(spec, n).conditions
    inputs = network_inputs((noise, latent_dim > 0), (condition, networks.takes_condition), (labels, networks.conditional))
    with subject.doing("calling the generator on " + ", ".join(
            f"{what} of shape {value.shape}" for what, value in (("noise", noise if latent_dim else None),
                                                                ("conditions", condition), ("labels", labels))
            if value is not None)):
        images = networks.generator(inputs, training=False)
    images = np.asarray(images)
    if images.shape != (n, *spec.shape):
        subject.fail(f"the generator's output has shape {images.shape}, expected {(n, *spec.shape)} for {spec}")
    if images.dtype != np.float32:
        subject.fail(f"the generator's output has dtype {images.dtype}, expected float32")
    subject.expect_finite(images, "the generator's output")
    low, high = networks.output_range
    if images.min() < low - 1e-5 or images.max() > high + 1e-5:
        subject.fail(f"the generator's output spans [{images.min():g}, {images.max():g}], outside the declared "
                     f"output_range [{low:g}, {high:g}]: its last activation must map into it")
    with subject.doing(f"calling the discriminator on images of shape {images.shape}"):
        outputs = networks.discriminator(network_inputs((images, True), (condition, networks.takes_condition),
                                                        (labels, networks.discriminator_conditional)), training=False)
    if isinstance(outputs, dict):
        if "logit" not in outputs:
            subject.fail(f"the discriminator returned a dict with {', '.join(map(repr, outputs))} but no 'logit'")
        for head, value in outputs.items():
            if head != "logit" and (np.ndim(value) == 0 or np.shape(value)[0] != n):
                subject.fail(f"the discriminator's head {head!r} has shape {np.shape(value)} for {n} images, "
                             "expected one row per image")
            subject.expect_finite(np.asarray(value), f"the discriminator's head {head!r}")
        outputs = outputs["logit"]
    logits = np.asarray(outputs)
    if logits.shape not in ((n, 1), (n,)):
        subject.fail(f"the discriminator's output has shape {logits.shape}, expected ({n}, 1): one raw logit per image")
    subject.expect_finite(logits, "the discriminator's output")


def _check_checkpoint_round_trip(subject: _Subject, gan: GAN, options: Options, spec: DataSpec,
                                 jit_compile: bool) -> None:
    """A checkpoint of the trained GAN, loaded into freshly built networks, generates the same images."""
    from ganframe.checkpoints import load_checkpoint, save_checkpoint

    conditions = tiny_data(spec, 4).conditions if gan.sampler.takes_condition else None
    expected = gan.generate(4, seed=1, conditions=conditions)
    with tempfile.TemporaryDirectory(prefix="ganframe-check-") as directory:
        with subject.doing("saving a checkpoint"):
            path = save_checkpoint(gan, directory)
        fresh = _engine(subject, _build(subject, options, spec), spec, jit_compile=jit_compile)
        with subject.doing("loading the checkpoint into freshly built networks"):
            load_checkpoint(fresh, path)
    restored = fresh.generate(4, seed=1, conditions=conditions)
    if not np.allclose(restored, expected, rtol=0, atol=1e-6):
        subject.fail("a checkpoint loaded into freshly built networks generates different images (largest difference "
                     f"{np.abs(restored - expected).max():g}): is some state kept outside the networks' variables?")


# -- dataset -------------------------------------------------------------------------------------------


def check_dataset(name: str, options: dict[str, Any] | None = None, *, registry: Registry | None = None,
                  data_dir: str | Path | None = None, seed: int = 0) -> ImageData | DataSource | DataStream:
    """Check dataset ``name``, loaded with ``data_dir`` (if it reads files); returns the data.

    A :class:`ganframe.DataSource` or :class:`ganframe.DataStream` is read as training and evaluation
    read it: a sample of up to 16 examples (checked like :class:`ganframe.ImageData`) and one training batch.
    """
    from ganframe.examples import sample, take

    subject, validated = _subject("dataset", name, options, registry)
    context = DataContext(None if data_dir is None else Path(data_dir), seed)
    data = _build(subject, validated, context)
    subject.expect_type(data, (ImageData, DataSource, DataStream),
                        "ganframe.ImageData, ganframe.DataSource or ganframe.DataStream")
    again = _build(subject, validated, context)
    if isinstance(data, (DataSource, DataStream)):
        from ganframe.pipeline import make_dataset  # a source or a stream needs TensorFlow anyway

        if isinstance(data, DataSource) and len(data) < 1:
            subject.fail(f"the source holds {len(data)} examples")
        try:
            if isinstance(data, DataSource):
                picked = np.linspace(0, len(data) - 1, min(16, len(data))).astype(np.int64)
                read, read_again = take(data, picked), take(again, picked)
            else:
                read, read_again = sample(data, 16, seed), sample(again, 16, seed)
            batch = next(iter(make_dataset(data, 1, seed=seed)))
        except InvalidImageData as error:
            subject.fail(f"its examples do not match its spec: {error.problem}")
        if tuple(batch["image"].shape) != (1, *data.spec.shape):
            subject.fail(f"a training batch of 1 has images of shape {tuple(batch['image'].shape)}, "
                         f"expected {(1, *data.spec.shape)}")
        data_now, again = read, read_again
    else:
        data_now = data
    same_labels = (data_now.labels is None and again.labels is None) or (
        data_now.labels is not None and again.labels is not None and np.array_equal(data_now.labels, again.labels))
    if not (np.array_equal(data_now.images, again.images) and same_labels):
        subject.fail(f"two loads with seed {seed} gave different data: draw any randomness from "
                     "numpy.random.default_rng(context.seed), so that runs repeat")
    return data


# -- loss and penalty ----------------------------------------------------------------------------------


def check_loss(name: str, options: dict[str, Any] | None = None, *, registry: Registry | None = None,
               spec: DataSpec = TINY_SPEC, steps: int = 2, jit_compile: bool = False) -> AdversarialLoss | Penalty:
    """Check loss ``name`` (an adversarial loss or a penalty); returns it."""
    subject, validated = _subject("loss", name, options, registry)
    loss = _build(subject, validated, spec)
    subject.expect_type(loss, (AdversarialLoss, Penalty), "ganframe.AdversarialLoss or ganframe.Penalty")
    if isinstance(loss, AdversarialLoss):
        _check_adversarial(subject, loss)
        _short_run(subject, spec, steps, jit_compile, loss=loss)
    else:
        if loss.applies_to not in PENALTY_TARGETS:
            subject.fail(f"applies_to is {loss.applies_to!r}, expected one of {', '.join(map(repr, PENALTY_TARGETS))}")
        _check_penalty(subject, loss, spec)
        _short_run(subject, spec, steps, jit_compile, penalties=[loss])
    return loss


def _scalar(subject: _Subject, value: Any, what: str) -> None:
    shape = tuple(np.shape(value))
    if shape != ():
        subject.fail(f"{what} has shape {shape}, expected a scalar (the mean over the batch)")
    subject.expect_finite(value, what)


def _check_gradient(subject: _Subject, gradient: Any, what: str) -> None:
    if gradient is None:
        subject.fail(f"{what} is None: the value does not depend on it differentiably (keras.ops only, no numpy)")
    if not np.abs(subject.expect_finite(gradient, what)).any():
        subject.fail(f"{what} is zero everywhere: nothing could learn from it")


def _update(network: str, real: Any, fake: Any, real_logits: Any, fake_logits: Any, critic: Any) -> Update:
    """An update without class labels at step 0, as the engine shows it to losses and penalties."""
    import tensorflow as tf

    return Update(network=network, real=real, fake=fake, real_logits=real_logits, fake_logits=fake_logits,
                  labels=None, fake_labels=None, critic=critic, step=tf.constant(0, tf.int64))


def _check_adversarial(subject: _Subject, loss: AdversarialLoss) -> None:
    """Finite scalar losses on random logits, with gradients with respect to the logits they take."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    real, fake = (tf.constant(rng.normal(size=(_BATCH, 1)).astype(np.float32)) for _ in range(2))
    losses = {}
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([real, fake])
        for network in ("discriminator", "generator"):
            what = f"the {network}'s loss on random logits"
            with subject.doing(what):
                losses[network] = loss.update_loss(_update(network, None, None, real, fake, None))
            _scalar(subject, losses[network], what)
    for network, logits in (("discriminator", "real"), ("discriminator", "fake"), ("generator", "fake")):
        gradient = tape.gradient(losses[network], real if logits == "real" else fake)
        _check_gradient(subject, gradient, f"the gradient of the {network}'s loss with respect to D's {logits} logits")


def _check_penalty(subject: _Subject, penalty: Penalty, spec: DataSpec) -> None:
    """A finite scalar in each update it joins of a tiny GAN, with a gradient for that update's network."""
    import tensorflow as tf

    gan = _engine(subject, _tiny_networks(spec, penalty.heads), spec, penalties=[penalty])
    data = tiny_data(spec, n=_BATCH, seed=0)
    examples = {key: tf.constant(value) for key, value in
                (("image", data.images), ("label", data.labels), ("condition", data.conditions)) if value is not None}
    for network in ("discriminator", "generator"):
        if not penalty.joins(network):
            continue
        noise, fake_labels = gan.sampler.random_inputs(_BATCH, gan.seed_generator)
        variables = (gan.discriminator if network == "discriminator" else gan.generator).trainable_variables
        what = f"the penalty in the {network}'s update of a tiny GAN"
        with tf.GradientTape() as tape:
            with subject.doing(f"calling it in the {network}'s update of a tiny GAN"):
                value = penalty.update_loss(gan.forward(network, examples, noise, fake_labels, tf.constant(0, tf.int64)))
        _scalar(subject, value, what)
        gradients = [gradient for gradient in tape.gradient(value, variables) if gradient is not None]
        if not gradients or not any(np.abs(subject.expect_finite(g, f"the gradient of {what}")).any() for g in gradients):
            subject.fail(f"{what} has no gradient with respect to the {network}'s weights, so it cannot train it")


# -- callback ------------------------------------------------------------------------------------------


def check_callback(name: str, options: dict[str, Any] | None = None, *, registry: Registry | None = None,
                   spec: DataSpec = TINY_SPEC, steps: int = 4, jit_compile: bool = False,
                   run_dir: str | Path | None = None) -> keras.callbacks.Callback:
    """Check callback ``name`` in a ``steps``-step run; returns it.

    The run writes into ``run_dir`` (created if missing), which is kept so that a test can
    assert on the files the callback wrote, e.g. ``run_dir=tmp_path``; without it, into a
    temporary directory that is removed.
    """
    import keras

    subject, validated = _subject("callback", name, options, registry)
    with tempfile.TemporaryDirectory(prefix="ganframe-check-") as temporary:
        run_dir, elsewhere = Path(temporary) / "run" if run_dir is None else Path(run_dir).absolute(), Path(temporary) / "cwd"
        run_dir.mkdir(parents=True, exist_ok=True)
        elsewhere.mkdir()
        callback = _build(subject, validated, CallbackContext(run_dir, spec, seed=0, total_steps=steps))
        subject.expect_type(callback, keras.callbacks.Callback, "a keras.callbacks.Callback")
        cwd = os.getcwd()
        os.chdir(elsewhere)  # a relative path is written here, not into the caller's directory
        try:
            _short_run(subject, spec, steps, jit_compile, callbacks=[callback])
        finally:
            os.chdir(cwd)
        strays = sorted(path.name for path in elsewhere.iterdir())
        if strays:
            subject.fail(f"it wrote {', '.join(strays)} into the current directory: write under context.run_dir")
    return callback


# -- augmentation --------------------------------------------------------------------------------------


def check_augmentation(name: str, options: dict[str, Any] | None = None, *, registry: Registry | None = None,
                       spec: DataSpec = TINY_SPEC, steps: int = 2, jit_compile: bool = False) -> Augmentation:
    """Check augmentation ``name`` on images of ``spec``; returns it."""
    import keras
    import tensorflow as tf

    subject, validated = _subject("augmentation", name, options, registry)
    augment = _build(subject, validated, spec)
    subject.expect_type(augment, Augmentation, "ganframe.Augmentation")
    images = tf.constant(tiny_data(spec, n=_BATCH).images)
    weights = tf.constant(np.random.default_rng(1).normal(size=images.shape).astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(images)
        with subject.doing(f"augmenting images of shape {tuple(images.shape)}"):
            out = augment(images, keras.random.SeedGenerator(0))
        array = np.asarray(out)
        if array.shape != tuple(images.shape) or array.dtype != np.float32:
            subject.fail(f"it returned {array.dtype} {array.shape} for float32 {tuple(images.shape)}: "
                         "keep the shape and dtype")
        weighted = tf.reduce_sum(out * weights)
    subject.expect_finite(array, "the augmented images")
    if not np.array_equal(array, np.asarray(augment(images, keras.random.SeedGenerator(0)))):
        subject.fail("the same seed gave different images: draw randomness only from the seed argument "
                     "(keras.random.* with seed=seed)")
    _check_gradient(subject, tape.gradient(weighted, images), "the gradient of the augmented images with respect to the input")
    _short_run(subject, spec, steps, jit_compile, augmentations=[augment])
    return augment


# -- metric and feature extractor ----------------------------------------------------------------------


def check_metric(name: str, options: dict[str, Any] | None = None, *, registry: Registry | None = None,
                 spec: DataSpec = TINY_SPEC, n: int = 32) -> Metric:
    """Check metric ``name`` on ``n`` images of ``spec`` per set; returns it."""
    subject, validated = _subject("metric", name, options, registry)
    metric = _build(subject, validated, spec)
    subject.expect_type(metric, Metric, "ganframe.Metric")
    real = tiny_data(spec, n=n, seed=0).images
    different = np.full_like(real, spec.value_range[0])  # every image blank: as far from real as it gets
    identical = _scores(subject, metric, real, real.copy(), "identical sets")
    apart = _scores(subject, metric, real, different, "different sets")
    if set(identical) != set(apart):
        subject.fail(f"it returned keys {sorted(identical)} for one pair of sets and {sorted(apart)} for another")
    better = max if metric.higher_is_better else min
    for key in identical:
        if better(identical[key], apart[key]) != identical[key] and not np.isclose(identical[key], apart[key]):
            subject.fail(f"{key!r} scores identical sets worse ({identical[key]:g}) than different ones "
                         f"({apart[key]:g}); is higher_is_better ({metric.higher_is_better}) right?")
    return metric


def _scores(subject: _Subject, metric: Metric, real: np.ndarray, fake: np.ndarray, what: str) -> dict[str, float]:
    with subject.doing(f"compute on {what}"):
        scores = metric.compute(real, fake)
    if not isinstance(scores, dict) or not scores:
        subject.fail(f"compute on {what} returned {scores!r}, expected a non-empty dict of name -> float")
    for key, value in scores.items():
        if not isinstance(key, str) or isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            subject.fail(f"compute on {what} returned {key!r}: {value!r}, expected str -> float")
        subject.expect_finite(value, f"{key!r} on {what}")
    return {key: float(value) for key, value in scores.items()}


def check_feature_extractor(name: str, options: dict[str, Any] | None = None, *, registry: Registry | None = None,
                            spec: DataSpec = TINY_SPEC, n: int = 8) -> FeatureExtractor:
    """Check feature extractor ``name`` on ``n`` images of ``spec``; returns it."""
    subject, validated = _subject("feature_extractor", name, options, registry)
    extract = _build(subject, validated, spec)
    subject.expect_type(extract, FeatureExtractor, "ganframe.FeatureExtractor")
    if extract.weights_hash is not None and not (isinstance(extract.weights_hash, str) and extract.weights_hash):
        subject.fail(f"weights_hash is {extract.weights_hash!r}, expected None or a non-empty string")
    images = tiny_data(spec, n=n).images
    with subject.doing(f"extracting features of images {images.shape}"):
        features = np.asarray(extract(images))
    if features.ndim != 2 or features.shape[0] != n or features.shape[1] == 0:
        subject.fail(f"it returned features of shape {features.shape}, expected ({n}, D)")
    subject.expect_finite(features, "the features")
    half = np.asarray(extract(images[: n // 2]))
    if not np.array_equal(features, np.asarray(extract(images))) or not np.allclose(half, features[: n // 2],
                                                                                      rtol=1e-4, atol=1e-5):
        subject.fail("an image's features depend on the call or on the other images in the batch: "
                     "they must be a fixed function of the image (no batch statistics, no randomness)")
    return extract


# -- pytest fixtures (this module is ganframe's pytest11 plugin) ---------------------------------------

try:
    import pytest
except ModuleNotFoundError:  # the checks work without pytest; only the fixtures need it
    pass
else:

    @pytest.fixture
    def ganframe_plugins() -> list[str]:
        """Entry-point names under test: none by default (built-ins only); override it with your plugin's."""
        return []

    @pytest.fixture
    def ganframe_registry(ganframe_plugins: list[str]) -> Registry:
        """ganframe's built-ins plus only the ``ganframe_plugins`` entry points."""
        return isolated_registry(ganframe_plugins)

    @pytest.fixture
    def tiny_image_data() -> ImageData:
        """64 random 8x8x1 images in [0, 1] with 2 classes (:data:`TINY_SPEC`)."""
        return tiny_data()
