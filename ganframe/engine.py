"""The adversarial step: one ``keras.Model`` whose ``train_step`` is the whole GAN algorithm.

Per step (Goodfellow et al. 2014, Algorithm 1): ``n_critic`` discriminator
updates, each on a fresh slice of real images and fresh noise, then one
generator update on fresh noise against the updated discriminator. Each
optimizer is given exactly its own network's trainable variables, so no
``trainable`` flag (the seed's Keras 3 trap) can silently freeze a network.

Driven by ``fit``: Keras compiles ``train_step`` (XLA when ``jit_compile``),
runs callbacks and ``steps_per_execution``. Only this module and the input
pipeline touch TensorFlow directly; components use ``keras.layers``/``keras.ops``.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from ganframe.contract import AdversarialLoss, Augmentation, Networks, Penalty
from ganframe.errors import ConfigError


def input_gradients(fn: Callable[[Any], Any], inputs: Any) -> Any:
    """d sum(fn(inputs)) / d inputs, differentiable again (for gradient penalties, R1).

    ``keras.ops`` has no gradient op; penalties call this instead of a backend tape.
    """
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        outputs = fn(inputs)
    return tape.gradient(outputs, inputs)


class GAN(keras.Model):
    """A generator and a discriminator trained against each other by ``fit``.

    The data yields ``n_critic * batch_size`` real images per step (with labels
    for conditional networks). Metrics are running means since the last
    ``reset_metrics()``: ``d_loss``, ``g_loss``, ``d_real`` and ``d_fake`` (mean
    raw D output on real and generated images).
    """

    def __init__(
        self,
        networks: Networks,
        loss: AdversarialLoss,
        *,
        penalties: Sequence[Penalty] = (),
        augmentations: Sequence[Augmentation] = (),
        n_critic: int = 1,
        num_classes: int | None = None,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.generator = networks.generator
        self.discriminator = networks.discriminator
        self.latent_dim = networks.latent_dim
        self.output_range = networks.output_range
        self.conditional = networks.conditional
        if self.conditional and not num_classes:
            raise ConfigError("conditional networks need labelled data: the data set has no num_classes")
        self.num_classes = num_classes
        self.adversarial_loss = loss
        self.d_penalties = [p for p in penalties if p.applies_to == "discriminator"]
        self.g_penalties = [p for p in penalties if p.applies_to == "generator"]
        self.augmentations = list(augmentations)
        self.n_critic = n_critic
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in ("d_loss", "g_loss", "d_real", "d_fake")}

    def compile(
        self,
        d_optimizer: keras.optimizers.Optimizer,
        g_optimizer: keras.optimizers.Optimizer,
        **kwargs: Any,
    ) -> None:
        """Attach one optimizer per network and build their slots now, outside the compiled step."""
        for network in (self.discriminator, self.generator):
            if not network.trainable_variables:
                raise ConfigError(
                    f"the {network.name} has no trainable variables (was `trainable` set to False?); "
                    "the engine chooses which variables each optimizer updates, so leave `trainable` alone"
                )
        super().compile(**kwargs)
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        d_optimizer.build(self.discriminator.trainable_variables)
        g_optimizer.build(self.generator.trainable_variables)

    def get_compile_config(self) -> dict[str, Any]:
        return {
            "d_optimizer": keras.optimizers.serialize(self.d_optimizer),
            "g_optimizer": keras.optimizers.serialize(self.g_optimizer),
            "jit_compile": self.jit_compile,
            "steps_per_execution": self.steps_per_execution,
        }

    def compile_from_config(self, config: dict[str, Any]) -> None:
        self.compile(
            keras.optimizers.deserialize(config["d_optimizer"]),
            keras.optimizers.deserialize(config["g_optimizer"]),
            jit_compile=config["jit_compile"],
            steps_per_execution=config["steps_per_execution"],
        )

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return list(self.trackers.values())

    @property
    def global_step(self) -> int:
        """Completed train steps (generator updates), restored with the optimizer on resume."""
        return int(self.g_optimizer.iterations.numpy())

    # -- the step ---------------------------------------------------------------------------

    def _noise(self, batch_size: int) -> tuple[Any, Any]:
        noise = keras.random.normal((batch_size, self.latent_dim), seed=self.seed_generator)
        labels = None
        if self.conditional:
            labels = keras.random.randint((batch_size,), 0, self.num_classes, seed=self.seed_generator)
        return noise, labels

    def _generate(self, noise: Any, labels: Any, training: bool) -> Any:
        inputs = [noise, labels] if self.conditional else noise
        return self.generator(inputs, training=training)

    def _critic(self, labels: Any) -> Callable[[Any], Any]:
        """D as a function of images alone: augmentations applied, labels bound, training mode."""

        def critic(images: Any) -> Any:
            for augment in self.augmentations:
                images = augment(images, self.seed_generator)
            inputs = [images, labels] if self.conditional else images
            return self.discriminator(inputs, training=True)

        return critic

    def train_step(self, data: Any) -> dict[str, Any]:
        real_all, labels_all = (data if isinstance(data, tuple) else (data, None))[:2]
        batch_size = real_all.shape[0] // self.n_critic

        for i in range(self.n_critic):
            real = real_all[i * batch_size:(i + 1) * batch_size]
            real_labels = None if labels_all is None else labels_all[i * batch_size:(i + 1) * batch_size]
            noise, fake_labels = self._noise(batch_size)
            with tf.GradientTape() as tape:
                fake = self._generate(noise, fake_labels, training=True)
                real_logits = self._critic(real_labels)(real)
                fake_logits = self._critic(fake_labels)(fake)
                d_loss = self.adversarial_loss.discriminator_loss(real_logits, fake_logits)
                for penalty in self.d_penalties:
                    d_loss += penalty(self._critic(real_labels), real, fake)
            variables = self.discriminator.trainable_variables
            self.d_optimizer.apply_gradients(zip(tape.gradient(d_loss, variables), variables))

        noise, fake_labels = self._noise(batch_size)
        with tf.GradientTape() as tape:
            fake = self._generate(noise, fake_labels, training=True)
            fake_logits_g = self._critic(fake_labels)(fake)
            g_loss = self.adversarial_loss.generator_loss(fake_logits_g)
            for penalty in self.g_penalties:
                g_loss += penalty(self._critic(fake_labels), real, fake)
        variables = self.generator.trainable_variables
        self.g_optimizer.apply_gradients(zip(tape.gradient(g_loss, variables), variables))

        values = {
            "d_loss": d_loss,
            "g_loss": g_loss,
            "d_real": keras.ops.mean(real_logits),
            "d_fake": keras.ops.mean(fake_logits),
        }
        for name, value in values.items():
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def call(self, inputs: Any, training: bool = False) -> Any:
        """G(inputs): the GAN as a model is its generator."""
        return self.generator(inputs, training=training)

    # -- sampling ---------------------------------------------------------------------------

    def generate(self, n: int, seed: int = 0, labels: np.ndarray | None = None, batch_size: int = 256) -> np.ndarray:
        """``n`` images (N, H, W, C) for noise drawn from ``seed``; the same seed gives the same images."""
        noise = np.random.default_rng(seed).standard_normal((n, self.latent_dim)).astype(np.float32)
        if self.conditional and labels is None:
            labels = np.arange(n) % self.num_classes
        chunks = []
        for start in range(0, n, batch_size):
            batch_labels = None if labels is None else np.asarray(labels[start:start + batch_size], np.int32)
            chunks.append(np.asarray(self._generate(noise[start:start + batch_size], batch_labels, training=False)))
        return np.concatenate(chunks) if chunks else np.zeros((0, *self.generator.output_shape[1:]), np.float32)
