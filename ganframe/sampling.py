"""Making images with a trained generator: one sampler for the step, runs, grids, evaluation and health.

:class:`Sampler` owns G's side of the GAN outside the optimizers: G's forward pass (cast to
float32 under a mixed precision policy; the train step calls it too), the noise and class labels
drawn from a NumPy generator for sampling, the images a seed gives, sample grids, and the
generator's exponential moving average (:class:`MovingAverage`), whose weights sampling uses.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Iterator

import keras
import numpy as np

from ganframe.contract import Networks
from ganframe.errors import ConfigError
from ganframe.images import translation_grid


@dataclass(frozen=True)
class NoiseSpec:
    """The noise an input pipeline draws for G (under a strategy, see :mod:`ganframe.pipeline`): ``latent_dim``
    wide, with labels from ``num_classes`` when conditional."""

    latent_dim: int
    num_classes: int | None = None


def network_inputs(*inputs: tuple[Any, bool]) -> Any:
    """What a network is called with: of ``(value, taken)`` pairs in the contract's order
    (:class:`~ganframe.Networks`), the values it takes; one as itself, several as a list."""
    taken = [value for value, used in inputs if used]
    return taken[0] if len(taken) == 1 else taken


class MovingAverage:
    """An exponential moving average of G's trainable weights: ``ema_w = d·ema_w + (1 − d)·w`` after each G update.

    The averages are non-trainable variables (checkpointed as their own group); BatchNorm's moving
    statistics stay G's own. Every replica computes the same average, so the first replica's write
    stands for all.
    """

    def __init__(self, generator: keras.Model, decay: float | None) -> None:
        if decay is not None and not 0 < decay < 1:
            raise ConfigError(f"ema must be a decay in (0, 1), e.g. 0.999; got {decay}")
        self.decay = decay
        self.tracked = generator.trainable_variables if decay is not None else []
        #: The average of each tracked variable, in their order; empty without EMA.
        self.weights = [
            # from a copy of the value: a Keras variable made from another one's value shares it
            keras.Variable(variable.numpy(), trainable=False, aggregation="only_first_replica", name=f"ema_{index}")
            for index, variable in enumerate(self.tracked)
        ]

    def update(self) -> None:
        """Move each average towards its variable (inside the compiled step, after G's update)."""
        for average, weight in zip(self.weights, self.tracked):
            average.assign(self.decay * average.value + (1 - self.decay) * weight.value)

    @contextlib.contextmanager
    def swapped_in(self) -> Iterator[None]:
        """While inside, G holds the averages (when kept); its own weights are put back on exit, bit for bit."""
        own = [np.array(variable.numpy()) for variable in self.tracked]
        try:
            for variable, average in zip(self.tracked, self.weights):
                variable.assign(average.value)
            yield
        finally:
            for variable, value in zip(self.tracked, own):
                variable.assign(value)


class Sampler:
    """G's inputs and images: the forward pass the step trains, and seeded sampling with the averaged weights."""

    def __init__(self, networks: Networks, num_classes: int | None, *, mixed: bool, ema: float | None) -> None:
        self.generator = networks.generator
        self.latent_dim = networks.latent_dim
        self.output_range = networks.output_range
        self.conditional = networks.conditional
        self.takes_condition = networks.takes_condition
        self.num_classes = num_classes
        self.mixed = mixed
        self.average = MovingAverage(self.generator, ema)
        #: Conditions to sample from when the caller gives none (G takes a condition): examples of the
        #: run's data, set by the run; None until then.
        self.conditions: np.ndarray | None = None
        #: The images of those examples, which grids show beside G's outputs; None when unknown.
        self.targets: np.ndarray | None = None

    def __call__(self, noise: Any, labels: Any, training: bool, condition: Any = None) -> Any:
        """G's images for ``noise``, ``condition`` and class ``labels``, each where G takes it (see
        :class:`~ganframe.Networks`), float32 whatever G computes in."""
        inputs = network_inputs((noise, self.latent_dim > 0), (condition, self.takes_condition), (labels, self.conditional))
        images = self.generator(inputs, training=training)
        return keras.ops.cast(images, "float32") if self.mixed else images

    def random_inputs(self, n: int, seed: keras.random.SeedGenerator) -> tuple[Any, Any]:
        """G's noise (standard normal) and classes (uniform; None when unconditional) for ``n`` images,
        drawn inside the train step from ``seed``."""
        noise = keras.random.normal((n, self.latent_dim), seed=seed)
        labels = keras.random.randint((n,), 0, self.num_classes, seed=seed) if self.conditional else None
        return noise, labels

    def noise(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` rows of G's noise, standard normal, from ``rng``."""
        return rng.standard_normal((n, self.latent_dim)).astype(np.float32)

    def random_labels(self, n: int, rng: np.random.Generator) -> np.ndarray | None:
        """``n`` classes drawn uniformly from ``rng``, as the step draws G's; None when unconditional."""
        return rng.integers(0, self.num_classes, n).astype(np.int32) if self.conditional else None

    def labels(self, n: int, labels: Any = None) -> np.ndarray | None:
        """The labels :meth:`generate` uses for ``n`` images: ``labels`` checked against the classes, as int32,
        or the default (the classes in turn; None for unconditional networks).
        """
        if labels is None:
            return (np.arange(n) % self.num_classes).astype(np.int32) if self.conditional else None
        if not self.conditional:
            raise ConfigError("class labels were given, but this GAN is not conditional: train it with conditional "
                              "networks (--conditional, arch option conditional = true) to generate chosen classes")
        labels = np.asarray(labels)
        if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
            raise ConfigError(f"labels must be {n} integer class ids, one per image; got shape {labels.shape}, "
                              f"dtype {labels.dtype}")
        wrong = labels[(labels < 0) | (labels >= self.num_classes)]
        if wrong.size:
            raise ConfigError(f"class {wrong[0]} is not one of this run's {self.num_classes} classes "
                              f"(0..{self.num_classes - 1})")
        return labels.astype(np.int32)

    def condition_inputs(self, n: int, conditions: Any = None) -> np.ndarray | None:
        """The conditions :meth:`generate` uses for ``n`` images: ``conditions`` checked, or the run's own
        (:attr:`conditions`, repeated as needed); None when G takes none."""
        if not self.takes_condition:
            if conditions is not None:
                raise ConfigError("conditions were given, but this GAN's generator takes none")
            return None
        if conditions is None:
            if self.conditions is None:
                raise ConfigError("this GAN generates from conditions (e.g. input images): give them, one per image")
            return self.conditions[np.arange(n) % len(self.conditions)]
        conditions = np.asarray(conditions, np.float32)
        shape = None if self.conditions is None else self.conditions.shape[1:]
        if len(conditions) != n or (shape is not None and conditions.shape[1:] != shape):
            expected = f"({n}, {', '.join(map(str, shape))})" if shape is not None else f"{n} conditions"
            raise ConfigError(f"conditions must be {expected}, one per image; got shape {conditions.shape}")
        return conditions

    def generate(self, n: int, seed: int = 0, labels: Any = None, batch_size: int = 256,
                 conditions: Any = None) -> np.ndarray:
        """``n`` images (N, H, W, C) for noise drawn from ``seed``, with the averaged weights when kept.

        The same seed gives the same images. A conditional G generates class ``labels[i]`` as image
        ``i`` (default: the classes in turn); a G that takes a condition generates image ``i`` from
        ``conditions[i]`` (default: the run's own, :meth:`condition_inputs`).
        """
        noise = self.noise(n, np.random.default_rng(seed))
        labels = self.labels(n, labels)
        conditions = self.condition_inputs(n, conditions)
        chunks = []
        with self.average.swapped_in():
            for start in range(0, n, batch_size):
                rows = slice(start, start + batch_size)
                chunks.append(np.asarray(self(noise[rows], None if labels is None else labels[rows], training=False,
                                              condition=None if conditions is None else conditions[rows])))
        return np.concatenate(chunks) if chunks else np.zeros((0, *self.generator.output_shape[1:]), np.float32)

    def grid(self, n: int, seed: int = 0) -> tuple[np.ndarray, int | None]:
        """``n`` samples in grid order and the grid's columns (None: square).

        A G that takes a condition has one row per sample: the condition, G's output and the image
        the condition came from (:func:`~ganframe.images.translation_grid`), for the run's own
        conditions (:meth:`condition_inputs`), the same at every step. A conditional G's grid has
        one class per row: the ``n`` images share out over the classes as evenly as they go, and a
        row with one image fewer ends in a blank cell (the lowest value).
        """
        if self.takes_condition:
            conditions = self.condition_inputs(n)
            targets = None if self.targets is None else self.targets[np.arange(n) % len(self.targets)]
            return translation_grid(conditions, self.generate(n, seed=seed, conditions=conditions), targets)
        if not self.conditional:
            return self.generate(n, seed=seed), None
        labels = np.sort(np.arange(n) % self.num_classes).astype(np.int32)
        images = self.generate(n, seed=seed, labels=labels)
        columns = -(-n // self.num_classes)
        grid = np.full((min(n, self.num_classes) * columns, *images.shape[1:]), self.output_range[0], np.float32)
        within_class = np.arange(n) - np.searchsorted(labels, labels)  # labels are sorted: first index of each class
        grid[labels * columns + within_class] = images
        return grid, columns
