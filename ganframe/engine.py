"""The adversarial step: one ``keras.Model`` whose ``train_step`` is the whole GAN algorithm.

Per step (Goodfellow et al. 2014, Algorithm 1): ``n_critic`` discriminator
updates, each on a fresh slice of real images and fresh noise, then one
generator update on fresh noise against the updated discriminator. Each
optimizer is given exactly its own network's trainable variables, so no
``trainable`` flag (the seed's Keras 3 trap) can silently freeze a network.

Divergence guard (``guard=True``, the default): an update whose loss or gradients are not
all finite is skipped inside the compiled step (``keras.ops.cond``, as Keras's
LossScaleOptimizer does), so a NaN never reaches the weights or the optimizer's slots.
Skips are counted in non-trainable variables (``d_skipped``, ``g_skipped``), saved in
checkpoints; ``ganframe.run`` watches them and rolls back when they pile up.

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
        guard: bool = True,
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
        self.guard = guard
        # Divergence bookkeeping, per network: updates skipped, and the loss and step of the
        # last skipped one. Variables (not Python numbers), so they count inside compiled
        # calls, across steps_per_execution, and travel in checkpoints (group "guard").
        self.skip_state = {
            f"{net}_{what}": keras.Variable(init, dtype=dtype, trainable=False, name=f"{net}_{what}")
            for net in ("d", "g")
            for what, init, dtype in (("skipped", 0, "int64"), ("bad_loss", 0.0, "float32"), ("bad_step", -1, "int64"))
        }
        #: Total skips when the newest checkpoint was written or loaded (kept by ganframe.checkpoints).
        self.checkpointed_skips = 0

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
    def skipped(self) -> dict[str, int]:
        """Updates skipped as non-finite so far, per network (``discriminator``, ``generator``)."""
        return {
            "discriminator": int(self.skip_state["d_skipped"].numpy()),
            "generator": int(self.skip_state["g_skipped"].numpy()),
        }

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
            statistics = self._statistics()
            with tf.GradientTape() as tape:
                fake = self._generate(noise, fake_labels, training=True)
                real_logits = self._critic(real_labels)(real)
                fake_logits = self._critic(fake_labels)(fake)
                d_loss = self.adversarial_loss.discriminator_loss(real_logits, fake_logits)
                for penalty in self.d_penalties:
                    d_loss += penalty(self._critic(real_labels), real, fake)
            self._update("d", self.d_optimizer, d_loss, tape, self.discriminator.trainable_variables, statistics)

        noise, fake_labels = self._noise(batch_size)
        statistics = self._statistics()
        with tf.GradientTape() as tape:
            fake = self._generate(noise, fake_labels, training=True)
            fake_logits_g = self._critic(fake_labels)(fake)
            g_loss = self.adversarial_loss.generator_loss(fake_logits_g)
            for penalty in self.g_penalties:
                g_loss += penalty(self._critic(fake_labels), real, fake)
        self._update("g", self.g_optimizer, g_loss, tape, self.generator.trainable_variables, statistics)

        values = {
            "d_loss": d_loss,
            "g_loss": g_loss,
            "d_real": keras.ops.mean(real_logits),
            "d_fake": keras.ops.mean(fake_logits),
        }
        for name, value in values.items():
            if self.guard:  # a skipped update's NaN must not poison the running means either
                finite = keras.ops.isfinite(value)
                value = keras.ops.where(finite, value, keras.ops.zeros_like(value))
                self.trackers[name].update_state(value, sample_weight=keras.ops.cast(finite, value.dtype))
            else:
                self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def _statistics(self) -> list[tuple[Any, Any]]:
        """(variable, value now) of both networks' float non-trainable variables (BatchNorm's moving
        statistics), which forward passes update outside the optimizers; a skipped update puts them back.
        """
        if not self.guard:
            return []
        return [
            (variable, tf.identity(variable.value))
            for network in (self.generator, self.discriminator)
            for variable in network.non_trainable_variables
            if "float" in str(variable.dtype)  # not the dropout seed states
        ]

    def _update(self, net: str, optimizer: keras.optimizers.Optimizer, loss: Any, tape: tf.GradientTape,
                variables: list[Any], statistics: list[tuple[Any, Any]] = ()) -> None:
        """Apply the gradients of ``loss``, or, with the guard on and anything non-finite, skip them.

        A skipped update leaves weights, optimizer slots and the moving ``statistics`` as they
        were before it, and still advances ``optimizer.iterations`` (the step count, and so the
        data position and checkpoint names, stay as without the guard). Same contract as
        Keras's LossScaleOptimizer: ``ops.cond`` on one boolean, which tf.function and XLA
        compile to a conditional.
        """
        grads = tape.gradient(loss, variables)
        if not self.guard:
            optimizer.apply_gradients(zip(grads, variables))
            return
        finite = keras.ops.all(keras.ops.isfinite(loss))
        for grad in grads:
            if grad is not None:
                finite = keras.ops.logical_and(finite, keras.ops.all(keras.ops.isfinite(grad)))

        def apply() -> None:
            optimizer.apply_gradients(zip(grads, variables))

        def skip() -> None:
            self.skip_state[f"{net}_bad_loss"].assign(keras.ops.cast(keras.ops.mean(loss), "float32"))
            self.skip_state[f"{net}_bad_step"].assign(keras.ops.cast(self.g_optimizer.iterations, "int64") + 1)
            self.skip_state[f"{net}_skipped"].assign_add(1)
            optimizer.iterations.assign_add(1)
            for variable, value in statistics:
                variable.assign(value)

        keras.ops.cond(finite, apply, skip)

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
