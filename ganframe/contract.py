"""The types a plugin's factories receive and return: ganframe's plugin contract.

A plugin registers named components through the hooks in :mod:`ganframe.hookspecs`.
Each component is a factory plus a pydantic options model; ganframe validates the
user's options with that model and calls the factory with them. What each kind's
factory receives and returns is fixed here, so that components written by
different people fit together:

==================  ====================================  =====================
kind                factory(...)                          returns
==================  ====================================  =====================
architecture        ``(spec: DataSpec, options)``          :class:`Networks`
dataset             ``(context: DataContext, options)``    :class:`ImageData`, :class:`DataSource` or :class:`DataStream`
loss                ``(spec: DataSpec, options)``          :class:`AdversarialLoss` or :class:`Penalty`
callback            ``(context: CallbackContext, options)`` ``keras.callbacks.Callback``
augmentation        ``(spec: DataSpec, options)``          :class:`Augmentation`
metric              ``(spec: DataSpec, options)``          :class:`Metric`
feature_extractor   ``(spec: DataSpec, options)``          :class:`FeatureExtractor`
==================  ====================================  =====================

This module imports no TensorFlow: listing plugins and validating a config stay fast.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Mapping

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ganframe.errors import DataError

#: Version of the plugin contract. The major number changes when a factory's
#: arguments or return type change incompatibly, the minor when something is added
#: (1.1: a dataset may return a :class:`DataSource`; 1.2: losses and penalties may read the whole
#: :class:`Update`, and data may pair each image with a condition that networks take; 1.3, the step's
#: contract: D may return named heads beside its logit, a term may join both networks' losses, read
#: the heads, the noise and G, and weigh itself by the step (:class:`WeightOptions`), and G may take
#: the class while D does not; 1.4: :class:`ImageData` may hold uint8 images, and a dataset may return
#: a :class:`DataStream`, read front to back, of a size that may be unknown). Each was an addition:
#: components written to 1.0 load and train unchanged, and plugins made by ``ganframe new`` refuse a
#: major number other than their own, so the major number stays 1 until something breaks. Plugins may check it.
CONTRACT_VERSION = "1.4"

#: Component kinds, in the order ``ganframe plugins`` lists them.
KINDS = ("architecture", "dataset", "loss", "callback", "augmentation", "metric", "feature_extractor")

Kind = Literal["architecture", "dataset", "loss", "callback", "augmentation", "metric", "feature_extractor"]


class Options(BaseModel):
    """Base for a component's options: unknown fields are refused, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoOptions(Options):
    """Options of a component that takes none."""


class WeightOptions(Options):
    """Options of a term whose weight may follow the train step: subclass it and give ``weight`` its default.

    ``weight_schedule = "linear"`` or ``"cosine"`` moves the weight from ``weight`` at step 0 to
    ``final_weight`` at step ``weight_steps`` and holds it there; the term multiplies by
    :meth:`weight_at` of its update's step, so a resumed run continues on the same curve.
    """

    weight: float = Field(1.0, ge=0.0, description="The term's weight (at step 0, when it follows a schedule).")
    weight_schedule: Literal["constant", "linear", "cosine"] = Field(
        "constant", description="How the weight moves from weight to final_weight over weight_steps train steps.")
    final_weight: float = Field(0.0, ge=0.0, description="The weight from step weight_steps on (with a schedule).")
    weight_steps: int | None = Field(None, gt=0, description="Train steps the schedule takes (needed with one).")

    @model_validator(mode="after")
    def _steps_with_a_schedule(self) -> WeightOptions:
        if self.weight_schedule != "constant" and self.weight_steps is None:
            raise ValueError(f"weight_schedule {self.weight_schedule!r} needs weight_steps, the train steps it takes "
                             "to reach final_weight")
        return self

    def weight_at(self, step: Any) -> Any:
        """The weight at train ``step`` (an integer tensor inside the step; a number works too)."""
        if self.weight_schedule == "constant":
            return self.weight
        from keras import ops

        progress = ops.minimum(ops.cast(step, "float32") / float(self.weight_steps), 1.0)
        if self.weight_schedule == "cosine":
            progress = 0.5 * (1.0 - ops.cos(np.pi * progress))
        return self.weight + (self.final_weight - self.weight) * progress


@dataclass(frozen=True)
class DataSpec:
    """What the data looks like, so that architectures and losses can adapt to it.

    ``shape`` is (height, width, channels); ``value_range`` is the closed interval
    the pixel values lie in; ``num_classes`` is None for unlabelled data.
    ``condition_shape`` is the shape of the float32 condition each example carries besides its
    image (an input image for image-to-image translation, a vector for an embedding), or None.
    """

    shape: tuple[int, int, int]
    value_range: tuple[float, float] = (0.0, 1.0)
    num_classes: int | None = None
    condition_shape: tuple[int, ...] | None = None

    @property
    def height(self) -> int:
        return self.shape[0]

    @property
    def width(self) -> int:
        return self.shape[1]

    @property
    def channels(self) -> int:
        return self.shape[2]

    @property
    def size(self) -> int:
        """Number of values in one image (the width of a dense layer that sees it flat)."""
        return self.shape[0] * self.shape[1] * self.shape[2]


@dataclass(frozen=True)
class DataContext:
    """What a dataset factory gets besides its options: where local files live."""

    data_dir: Path | None
    seed: int = 0


class InvalidImageData(DataError):
    """:class:`ImageData` that does not match its spec; ``problem`` says what, without the data set's name."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.problem = problem


def in_range(images: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """uint8 ``images`` (0..255) as float32 in ``value_range``, bit for bit what TensorFlow's input pipeline makes
    of them (:func:`ganframe.pipeline.in_range`, its twin: every step in float32); float images pass as they are."""
    if images.dtype != np.uint8:
        return images
    low, high = value_range
    return (images.astype(np.float32) / np.float32(255.0)) * np.float32(high - low) + np.float32(low)


@dataclass(frozen=True, eq=False)
class ImageData:
    """A whole data set in memory: images (N, H, W, C), float32 within ``spec.value_range`` or uint8 holding 0..255.

    uint8 images stay bytes in memory (a quarter of the floats) and become floats in the value range
    a batch at a time in the input pipeline, as a :class:`DataSource`'s do; :meth:`float_images` gives
    them all as floats, :func:`ganframe.examples.take` some.

    ``labels`` are class ids (N,) in ``[0, spec.num_classes)``, or None; any integer dtype is
    accepted (numpy's default int64 included) and stored as int32. ``conditions`` are the examples'
    conditions, float32 (N, *spec.condition_shape), when the spec declares them. Construction checks the
    arrays against the spec, so a dataset plugin cannot hand over a mismatch: a problem raises
    :class:`InvalidImageData`, which a run reports under the dataset's and its plugin's name.
    """

    images: np.ndarray
    labels: np.ndarray | None
    spec: DataSpec
    name: str = "data"
    conditions: np.ndarray | None = None

    def __post_init__(self) -> None:
        problem = self._problem()
        if problem is not None:
            raise InvalidImageData(self.name, problem)
        if self.labels is not None:
            object.__setattr__(self, "labels", np.asarray(self.labels).astype(np.int32, copy=False))

    def _problem(self) -> str | None:
        """What is wrong with the arrays, or None."""
        images = self.images
        if images.ndim != 4 or tuple(images.shape[1:]) != tuple(self.spec.shape):
            return f"images have shape {tuple(images.shape)}, expected (N, {', '.join(map(str, self.spec.shape))})"
        if images.shape[0] == 0:
            return "the data set holds no images"
        if images.dtype not in (np.float32, np.uint8):
            return f"images must be float32 (in the value range) or uint8 (0..255), got {images.dtype}"
        low, high = self.spec.value_range
        if images.dtype == np.float32 and (float(images.min()) < low - 1e-6 or float(images.max()) > high + 1e-6):
            return (f"pixel values span [{images.min():g}, {images.max():g}], "
                    f"outside the declared range [{low:g}, {high:g}]")
        problem = self._condition_problem()
        if problem is not None or self.labels is None:
            return problem
        labels = np.asarray(self.labels)
        if labels.shape != (images.shape[0],):
            return f"labels have shape {labels.shape}, expected ({images.shape[0]},): one class id per image"
        if not np.issubdtype(labels.dtype, np.integer):
            return f"labels must be integer class ids, got dtype {labels.dtype}"
        if self.spec.num_classes is None:
            return "labels are given but the spec has no num_classes"
        if labels.min() < 0 or labels.max() >= self.spec.num_classes:
            return (f"labels span [{labels.min()}, {labels.max()}], but class ids must lie in "
                    f"[0, {self.spec.num_classes - 1}] (spec.num_classes = {self.spec.num_classes})")
        return None

    def _condition_problem(self) -> str | None:
        """What is wrong with the conditions, or None."""
        shape = self.spec.condition_shape
        if self.conditions is None:
            return None if shape is None else f"the spec declares conditions of shape {tuple(shape)}, but none are given"
        if shape is None:
            return "conditions are given but the spec has no condition_shape"
        expected = (self.images.shape[0], *shape)
        if tuple(self.conditions.shape) != expected:
            return f"conditions have shape {tuple(self.conditions.shape)}, expected {expected}: one per image"
        if self.conditions.dtype != np.float32:
            return f"conditions must be float32, got {self.conditions.dtype}"
        if not np.isfinite(self.conditions).all():
            return "conditions hold values that are not finite"
        return None

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def float_images(self) -> np.ndarray:
        """The images as float32 in ``spec.value_range``: themselves, or uint8 mapped bit for bit as the input
        pipeline maps them (a new array, four times the bytes)."""
        return in_range(self.images, self.spec.value_range)


class DataSource(abc.ABC):
    """A data set read from storage as training needs it, for sets too large to hold in memory.

    A dataset factory returns one instead of :class:`ImageData` (docs/datasets.md). Training asks
    for examples by index, in an order the input pipeline derives from (seed, epoch): the source
    keeps no position of its own, so a resumed run starts at its step's examples without reading
    the ones before them, and each worker of a multi-worker run reads only its share. Evaluation
    and the health probe read a seeded sample of it into memory (:func:`ganframe.examples.take`).
    """

    #: What the examples look like; ``read`` returns images of ``spec.shape``.
    spec: DataSpec
    #: How messages name the data set.
    name: str = "data"
    #: Drop an example whose ``read`` fails (a file that cannot be decoded) instead of stopping the
    #: run. Each dropped example shifts the later batches by one: the run stays deterministic, but a
    #: run resumed after a dropped example sees its batches one example later than the uninterrupted one.
    skip_unreadable: bool = False

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of examples: indices run from 0 to ``len - 1``."""

    @abc.abstractmethod
    def read(self, index: Any) -> dict[str, Any]:
        """Example ``index`` (an int64 scalar tensor), as TensorFlow ops that ``tf.data`` traces once.

        Returns ``image`` (H, W, C): uint8 holding 0..255, which the pipeline maps onto
        ``spec.value_range`` after batching (so batches travel as bytes), or float32 already in that
        range; ``label``, an int32 scalar, when ``spec.num_classes`` is set; and ``condition``, float32
        of ``spec.condition_shape``, when the spec declares one.
        """

    def describe(self, index: int) -> str:
        """How a message names example ``index`` (a file's path, a record's key) when it cannot be read."""
        return f"example {index}"


class DataStream(abc.ABC):
    """A data set read front to back, for storage that cannot be read by index (TFRecord shards, a generator,
    a feed) or whose size is not known.

    A dataset factory returns one instead of :class:`ImageData` or a :class:`DataSource`
    (docs/datasets.md). Training reads pass after pass through a shuffle buffer of
    :attr:`shuffle_buffer` examples, seeded by the run's seed and the step the pipeline starts at;
    each worker of a multi-worker run reads its own share. Without indices a resumed run cannot start
    at its step's examples: it starts a new pass, shuffled anew. Evaluation and the health probe read
    the first examples of a shuffled pass into memory (:func:`ganframe.examples.sample`).
    """

    #: What the examples look like, as for a :class:`DataSource`.
    spec: DataSpec
    #: How messages name the data set.
    name: str = "data"
    #: Examples in one pass, or None when unknown: a run on it is then as long as its steps or
    #: max_time say, and epochs are refused unless :meth:`count` finds the size.
    size: int | None = None
    #: Examples the shuffle buffer holds, each as :meth:`examples` gives it (a uint8 image costs H×W×C bytes).
    shuffle_buffer: int = 1000

    @abc.abstractmethod
    def examples(self, worker: int, workers: int) -> Any:
        """One pass over worker ``worker``'s share of ``workers``, as a ``tf.data.Dataset`` of dicts shaped as
        :meth:`DataSource.read` returns them, in an order fixed for the source (runs then repeat).

        Every example belongs to exactly one share; a source that cannot split its storage returns
        ``dataset.shard(workers, worker)``. An endless pass is allowed (``size`` None).
        """

    def count(self) -> int | None:
        """The examples in one pass, counted by reading them if need be: what a run measured in epochs needs.
        By default :attr:`size`."""
        return self.size


@dataclass(frozen=True, eq=False)
class Networks:
    """What an architecture builds: G maps (latent_dim,) noise to images, D maps images to one logit.

    ``output_range`` is the interval G's output lies in (its last activation); the
    engine refuses data whose value range differs. Conditional networks take
    ``[inputs, labels]`` and are marked ``conditional=True``; ``discriminator_conditional=False``
    keeps D's inputs free of the labels while G takes them (AC-GAN, whose D names the class instead).

    D returns its logits (B, 1), or a dict holding them as ``"logit"`` beside named heads, each
    (B, ...): ``"class"`` for class logits (B, num_classes), ``"features"`` for the features the
    logit is read from (B, F). Losses and terms find the heads in :attr:`Update.real_heads` and
    :attr:`Update.fake_heads`.

    ``takes_condition=True``: both networks also take the example's condition (of the data's
    ``condition_shape``): G's inputs are, in this order and each only where it applies, the noise
    (none when ``latent_dim`` is 0), the condition, the labels; D's the images, the condition, the
    labels. A single input is passed as a tensor, several as a list.
    """

    generator: Any
    discriminator: Any
    latent_dim: int
    output_range: tuple[float, float]
    conditional: bool = False
    takes_condition: bool = False
    discriminator_conditional: bool | None = None

    def __post_init__(self) -> None:
        if self.discriminator_conditional is None:  # D takes the labels exactly when G does, unless told
            object.__setattr__(self, "discriminator_conditional", self.conditional)


@dataclass(frozen=True)
class Update:
    """What one network's update shows its loss and penalties: the images, D's outputs on them, the step.

    The engine makes one per update: each of the ``n_critic`` discriminator updates, then the
    generator's. In G's update ``fake`` carries G's gradient and ``real`` is the last critic
    update's slice of real images; ``real_logits`` is computed there only when the loss asks for
    it (:attr:`AdversarialLoss.generator_sees_real`), else None. ``labels`` are the real images'
    classes and ``fake_labels`` the classes G was asked for (None for unconditional networks): G
    draws its own classes, so the two are not paired. ``condition`` is the examples' condition when
    the networks take one (else None): ``fake`` is G's output for it and ``real`` the image paired
    with it, in both networks' updates (G's uses the last critic slice's examples), so a
    reconstruction term compares ``fake`` with ``real``. ``critic`` is D as a function of images
    alone (augmentations applied, training mode; bound to ``labels`` in D's update, to
    ``fake_labels`` in G's), for penalties that take D's input gradients. ``step`` counts the
    generator updates done before this one (an int64 tensor): what a schedule reads.
    """

    network: Literal["discriminator", "generator"]
    real: Any
    fake: Any
    real_logits: Any
    fake_logits: Any
    labels: Any
    fake_labels: Any
    critic: Callable[[Any], Any]
    step: Any
    condition: Any = None
    real_heads: Mapping[str, Any] = field(default_factory=dict)
    fake_heads: Mapping[str, Any] = field(default_factory=dict)
    noise: Any = None
    generate: Callable[[Any], Any] | None = None


class AdversarialLoss(abc.ABC):
    """The adversarial objective, on D's raw outputs (logits for probabilistic losses).

    Most losses need only D's outputs: they write :meth:`discriminator_loss` and
    :meth:`generator_loss`. A loss that needs more of the step (D's outputs on real images in G's
    update, as relativistic losses do; the labels; the step) overrides :meth:`update_loss`, which
    the engine calls, and sets :attr:`generator_sees_real` if G's update must run D on real images.
    """

    #: D's raw output above which D calls an image real: 0 for logits and for critics (hinge,
    #: Wasserstein), the midpoint of the targets for least squares. The health probe
    #: (docs/health.md) counts D's accuracy against it; optional, so older losses keep working.
    decision_boundary: float = 0.0
    #: G's update also runs D on real images and puts them in :attr:`Update.real_logits` (one more
    #: D pass per step, so off unless the loss reads them).
    generator_sees_real: bool = False

    def discriminator_loss(self, real_logits: Any, fake_logits: Any) -> Any:
        """Scalar loss the discriminator minimises, from D's outputs alone."""
        raise NotImplementedError(f"{type(self).__name__} defines neither discriminator_loss nor update_loss")

    def generator_loss(self, fake_logits: Any) -> Any:
        """Scalar loss the generator minimises, from D's outputs on its images alone."""
        raise NotImplementedError(f"{type(self).__name__} defines neither generator_loss nor update_loss")

    def update_loss(self, update: Update) -> Any:
        """Scalar loss of ``update.network`` in this update; by default the two methods above."""
        if update.network == "discriminator":
            return self.discriminator_loss(update.real_logits, update.fake_logits)
        return self.generator_loss(update.fake_logits)


#: The valid values of :attr:`Penalty.applies_to`.
PENALTY_TARGETS = ("discriminator", "generator", "both")


class Penalty(abc.ABC):
    """A term added to one network's loss (gradient penalty, R1, a reconstruction or feature term, ...).

    ``critic`` is D as a function of images alone (labels bound, training mode);
    use :func:`ganframe.input_gradients` for gradients with respect to its input.
    The returned scalar is added as is: apply the weight inside. A discriminator
    penalty joins ``d_loss`` in every D update; a generator penalty joins ``g_loss``
    in the G update, where ``fake`` carries G's gradients and only G is updated.
    A penalty that needs more of the step (D's outputs, its heads, the labels, the noise, the step
    for a schedule) overrides :meth:`update_loss` instead of ``__call__``; one that applies to
    ``"both"`` networks joins each loss and reads :attr:`Update.network` to tell them apart.
    """

    #: Which network's loss it joins; one of :data:`PENALTY_TARGETS`.
    applies_to: Literal["discriminator", "generator", "both"] = "discriminator"
    #: D's heads it reads (:class:`Networks`); a run whose D lacks one is refused before its first step.
    heads: tuple[str, ...] = ()
    #: G's update also runs D on real images (:attr:`AdversarialLoss.generator_sees_real`), so that
    #: its ``real_logits`` and ``real_heads`` are there.
    generator_sees_real: bool = False

    def joins(self, network: str) -> bool:
        """Whether this term joins ``network``'s loss."""
        return self.applies_to in (network, "both")

    def __call__(self, critic: Callable[[Any], Any], real: Any, fake: Any) -> Any:
        """Scalar penalty for this update, from D and the images alone."""
        raise NotImplementedError(f"{type(self).__name__} defines neither __call__ nor update_loss")

    def update_loss(self, update: Update) -> Any:
        """Scalar penalty for ``update``; by default ``__call__`` on its critic and images."""
        return self(update.critic, update.real, update.fake)


class Augmentation(abc.ABC):
    """A differentiable transform applied to real and fake images before D sees them."""

    @abc.abstractmethod
    def __call__(self, images: Any, seed: Any) -> Any:
        """Augmented images; ``seed`` is a ``keras.random.SeedGenerator`` owned by the engine."""


class Metric(abc.ABC):
    """A score of generated images against real ones (computed outside the train step)."""

    higher_is_better: bool = False

    @abc.abstractmethod
    def compute(self, real: np.ndarray, fake: np.ndarray) -> dict[str, float]:
        """Named values for these samples, e.g. ``{"fid": 12.3}``."""


class FeatureExtractor(abc.ABC):
    """Maps images to feature vectors for metrics; ``weights_hash`` names its exact weights."""

    weights_hash: str | None = None

    @abc.abstractmethod
    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Features (N, D) for images (N, H, W, C)."""


@dataclass(frozen=True)
class CallbackContext:
    """What a callback factory gets besides its options: where the run writes and what it trains on."""

    run_dir: Path
    spec: DataSpec
    seed: int
    total_steps: int | None


@dataclass(frozen=True)
class Component:
    """One registered component: what ``register(...)`` recorded, plus who registered it."""

    kind: str
    name: str
    factory: Callable[..., Any]
    description: str
    options: type[Options]
    plugin: str
