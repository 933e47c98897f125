"""The adversarial step: one ``keras.Model`` whose ``train_step`` is the whole GAN algorithm.

Per step (Goodfellow et al. 2014, Algorithm 1): ``n_critic`` discriminator
updates, each on a fresh slice of real images and fresh noise, then one
generator update on fresh noise against the updated discriminator. Each
optimizer is given exactly its own network's trainable variables, so no
``trainable`` flag (the seed's Keras 3 trap) can silently freeze a network.

The parts around the step have modules of their own: :mod:`ganframe.updates` applies each
network's gradients (the divergence guard, which skips a non-finite update inside the compiled
step, and float16 loss scaling); :mod:`ganframe.sampling` makes images (G's forward pass, seeded
sampling, grids, and the generator's EMA, whose weights sampling uses). Networks built under a
16-bit Keras dtype policy (:func:`precision_policy`) compute in 16 bits on float32 variables; G's
images and D's logits are cast to float32, so losses, metrics and samples are float32.

Driven by ``fit``: Keras compiles ``train_step`` (XLA when ``jit_compile``),
runs callbacks and ``steps_per_execution``. Only this module and the input
pipeline touch TensorFlow directly; components use ``keras.layers``/``keras.ops``.

Under a ``tf.distribute`` strategy (a GAN built inside ``strategy.scope()``), ``fit`` runs
``train_step`` once per replica on its slice of the global batch, and ``apply_gradients``
sums the replicas' gradients (scaled so the sum is the global batch's gradient, see
:mod:`ganframe.updates`). The noise comes with the data (:class:`~ganframe.pipeline.NoiseSpec`),
since the engine's seed generator is mirrored and would give every replica the same noise,
and the metrics are means over all replicas.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, Sequence, get_args

import keras
import numpy as np

from ganframe import backends
from ganframe.config import Precision
from ganframe.contract import AdversarialLoss, Augmentation, Networks, Penalty, Update
from ganframe.errors import ConfigError
from ganframe.sampling import NoiseSpec, Sampler, network_inputs
from ganframe.updates import GuardedUpdates

#: The dtype policies ``precision`` may name (docs/performance.md): Keras's names.
PRECISIONS: tuple[str, ...] = get_args(Precision)
#: This process's backend (Keras fixes it at import): its train step, gradients and data parallelism.
_backend = backends.current()


@contextlib.contextmanager
def precision_policy(precision: str) -> Iterator[None]:
    """While inside, new layers compute in ``precision`` (a Keras dtype policy); the previous policy after.

    Networks built inside keep their policy; restoring the global one keeps it from leaking into
    the next run built in the same process.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def input_gradients(fn: Callable[[Any], Any], inputs: Any) -> Any:
    """d sum(fn(inputs)) / d inputs, differentiable again (for gradient penalties, R1).

    ``keras.ops`` has no gradient op; penalties call this instead of a backend's own
    (a ``GradientTape`` on TensorFlow, ``jax.grad`` on JAX).
    """
    return _backend.input_gradients(fn, inputs)


class GAN(_backend.StepAdapter, keras.Model):
    """A generator and a discriminator trained against each other by ``fit``.

    The data yields one batch per step, ``n_critic * batch_size`` real images: the pipeline's
    dict ``{"image", "label"}`` (labels for conditional networks), or images / ``(images, labels)``
    given by hand; built under a strategy, the dict also holds the noise (see :mod:`ganframe.pipeline`). Metrics are running means since the last
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
        ema: float | None = None,
        schedules: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.generator = networks.generator
        self.discriminator = networks.discriminator
        self._prepare_networks()
        self.latent_dim = networks.latent_dim
        self.output_range = networks.output_range
        self.conditional = networks.conditional
        #: D takes the class labels (as G does, unless the networks say otherwise: AC-GAN's D does not).
        self.discriminator_conditional = networks.discriminator_conditional
        if self.conditional and not num_classes:
            raise ConfigError("conditional networks need labelled data: the data set has no num_classes")
        self.num_classes = num_classes
        self.adversarial_loss = loss
        self.d_penalties = [p for p in penalties if p.joins("discriminator")]
        self.g_penalties = [p for p in penalties if p.joins("generator")]
        #: G's update runs D on real images too, for the loss or a term that reads them.
        self.generator_sees_real = loss.generator_sees_real or any(p.generator_sees_real for p in self.g_penalties)
        self.augmentations = list(augmentations)
        self.n_critic = n_critic
        self.seed_generator = keras.random.SeedGenerator(seed)
        #: The noise the input pipeline must draw (None: the engine draws it): set under a strategy.
        self.noise_spec = (
            NoiseSpec(self.latent_dim, num_classes if self.conditional else None) if _backend.has_strategy() else None
        )
        self.trackers = {name: keras.metrics.Mean(name=name) for name in ("d_loss", "g_loss", "d_real", "d_fake")}
        self.multi_worker = _backend.multi_worker()
        compute = {self.generator.compute_dtype, self.discriminator.compute_dtype}
        #: The networks compute in 16 bits (a mixed dtype policy): their outputs are cast to float32.
        self.mixed = compute != {"float32"}
        #: Applies each network's update: the divergence guard and, with float16, loss scaling.
        self.updates = GuardedUpdates(guard=guard, loss_scaling="float16" in compute)
        #: The guard's counters and loss scales (variables; checkpoint group "guard").
        self.skip_state = self.updates.state
        #: Total skips when the newest checkpoint was written or loaded (kept by ganframe.checkpoints).
        self.checkpointed_skips = 0
        #: G's forward pass, seeded sampling and grids, and G's EMA (``ema``: its decay, or None).
        self.sampler = Sampler(networks, num_classes, mixed=self.mixed, ema=ema)
        self.ema = ema
        #: The EMA of each of G's trainable variables, in their order; empty without EMA.
        self.ema_weights = self.sampler.average.weights
        #: The optimizers' learning-rate schedules by network ("d", "g"), where they follow one
        #: (:mod:`ganframe.schedules`); checkpoints keep their scales.
        self.schedules: dict[str, Any] = dict(schedules or {})
        # Variables the step reads besides the networks', optimizers', guard's and EMA's, as attributes so
        # that the model tracks them (a stateless step, JAX's, carries exactly the tracked ones):
        #: The seed states of the loss's, penalties' and augmentations' own seed generators, in a fixed order
        #: (a component drawing random numbers, WGAN-GP's eps, must draw on where a resumed run stopped).
        components = [(name, value) for component in (loss, *self.d_penalties, *self.g_penalties, *self.augmentations)
                      for name, value in sorted(getattr(component, "__dict__", {}).items())]
        self.component_seeds = [value.state for _, value in components if isinstance(value, keras.random.SeedGenerator)]
        #: The components' other variables (a weight a callback may change between steps).
        self.component_variables = [value for _, value in components if isinstance(value, keras.Variable)]
        #: The schedules' learning-rate scales (lowered by a rollback), in network order.
        self.schedule_scales = [self.schedules[net].scale for net in sorted(self.schedules)]

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
        self._attach_optimizers(d_optimizer, g_optimizer)
        self.built = True  # the networks hold their variables: under a strategy, Keras must not trace call() on data

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
    def step_variables(self) -> list[keras.Variable]:
        """Every variable the step reads: both networks' (with BatchNorm's statistics and seed states), both
        optimizers', the guard's, the EMA's and the metrics'."""
        return [*self.variables, *self.d_optimizer.variables, *self.g_optimizer.variables]

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

    def _unpack(self, data: Any) -> tuple[dict[str, Any], Any, Any]:
        """(examples, noise, noise labels) of one step: ``examples`` holds ``image`` and, where the data has
        them, ``label`` and ``condition``, each ``n_critic`` slices stacked along the first axis; the noise
        ``n_critic + 1`` slices, or None when the engine draws it.
        """
        if isinstance(data, tuple) and len(data) == 1 and isinstance(data[0], dict):  # a generator's (batch,)
            data = data[0]
        if isinstance(data, dict) and "noise" in data:
            return _examples(data), data["noise"], data.get("noise_label")
        if _backend.replicas_in_sync() > 1:
            raise ConfigError(
                "under a tf.distribute strategy the data must carry the noise (ganframe.pipeline.make_dataset "
                "with noise=gan.noise_spec and the strategy): the engine's mirrored seed generator would give every replica the same noise"
            )
        if isinstance(data, dict):  # the pipeline's batch
            return _examples(data), None, None
        real, labels = (data if isinstance(data, tuple) else (data, None))[:2]  # arrays passed to fit by hand
        return _examples({"image": real, "label": labels}), None, None

    def _noise(self, batch_size: int, index: int, noise_all: Any = None, labels_all: Any = None) -> tuple[Any, Any]:
        """Update ``index``'s noise (and labels): its slice of the data's, else fresh from the seed generator."""
        if noise_all is not None:
            rows = slice(index * batch_size, (index + 1) * batch_size)
            return noise_all[rows], None if labels_all is None else labels_all[rows]
        return self.sampler.random_inputs(batch_size, self.seed_generator)

    def discriminator_outputs(self, images: Any, labels: Any, condition: Any = None,
                              training: bool = True) -> dict[str, Any]:
        """D's outputs on ``images``, given their ``condition`` and class ``labels`` where D takes them, float32:
        ``logit`` and the named heads D returns besides it (:class:`~ganframe.Networks`)."""
        inputs = network_inputs((images, True), (condition, self.sampler.takes_condition),
                                (labels, self.discriminator_conditional))
        outputs = self.discriminator(inputs, training=training)
        if not isinstance(outputs, dict):
            outputs = {"logit": outputs}
        elif "logit" not in outputs:
            raise ConfigError(f"the discriminator returned a dict with {', '.join(map(repr, outputs))} but no 'logit': "
                              "a discriminator's outputs hold its logits as 'logit', beside any named heads")
        return {name: keras.ops.cast(value, "float32") for name, value in outputs.items()} if self.mixed else dict(outputs)

    def discriminate(self, images: Any, labels: Any, condition: Any = None, training: bool = True) -> Any:
        """D's raw logits on ``images`` (:meth:`discriminator_outputs`' ``logit``)."""
        return self.discriminator_outputs(images, labels, condition, training)["logit"]

    def _critic(self, labels: Any, condition: Any, training: bool) -> Callable[[Any], dict[str, Any]]:
        """D's outputs as a function of images alone: labels and condition bound; in training, augmentations applied."""

        def outputs(images: Any) -> dict[str, Any]:
            if training:
                for augment in self.augmentations:
                    images = augment(images, self.seed_generator)
            return self.discriminator_outputs(images, labels, condition, training)

        return outputs

    def forward(self, network: str, examples: dict[str, Any], noise: Any, fake_labels: Any, step: Any,
                training: bool = True) -> Update:
        """One update of ``network`` as its loss and terms see it: G's images for ``noise`` (and the examples'
        condition), D's outputs on them, and on the real images where D's update or a reader of them needs it.

        The step calls it in training mode; the build-time checks and the health probe in inference mode,
        without augmentations, so that all three show losses the same update.
        """
        real, labels, condition = examples["image"], examples.get("label"), examples.get("condition")

        def generate(z: Any) -> Any:
            return self.sampler(z, fake_labels, training=training, condition=condition)

        fake = generate(noise)
        for_d = network == "discriminator"
        real_out = self._critic(labels, condition, training)(real) if for_d or self.generator_sees_real else {}
        fake_out = self._critic(fake_labels, condition, training)(fake)
        critic = self._critic(labels if for_d else fake_labels, condition, training)
        return Update(network=network, real=real, fake=fake, real_logits=real_out.get("logit"),
                      fake_logits=fake_out["logit"], labels=labels, fake_labels=fake_labels,
                      critic=lambda images: critic(images)["logit"], step=step, condition=condition,
                      real_heads=_heads(real_out), fake_heads=_heads(fake_out),
                      noise=noise if self.latent_dim else None, generate=generate)

    def _loss(self, update: Update, penalties: Sequence[Penalty]) -> Any:
        """The adversarial loss of ``update`` plus its network's penalties."""
        loss = self.adversarial_loss.update_loss(update)
        for penalty in penalties:
            loss += penalty.update_loss(update)
        return loss

    def _update(self, network: str, examples: dict[str, Any], noise: Any, fake_labels: Any, step: Any
                ) -> tuple[Any, dict[str, Any]]:
        """One guarded update of ``network`` (``"discriminator"`` or ``"generator"``): its loss, and D's mean
        logits on real and fake images (``d_real``, ``d_fake``) for the metrics."""
        net = network[0]
        penalties = self.d_penalties if net == "d" else self.g_penalties
        optimizer = self.d_optimizer if net == "d" else self.g_optimizer
        variables = (self.discriminator if net == "d" else self.generator).trainable_variables

        def compute() -> tuple[Any, dict[str, Any]]:
            update = self.forward(network, examples, noise, fake_labels, step)
            logits = {"d_fake": keras.ops.mean(update.fake_logits)}
            if update.real_logits is not None:
                logits["d_real"] = keras.ops.mean(update.real_logits)
            return self._loss(update, penalties), logits

        statistics = self.updates.statistics((self.generator, self.discriminator))
        return self.updates.apply(net, optimizer, compute, variables, statistics, step)

    def _step(self, data: Any) -> dict[str, Any]:
        """One train step: ``n_critic`` D updates, then G's (see the module's docstring); the metrics' means."""
        batch, noise_all, noise_labels_all = self._unpack(data)
        batch_size = batch["image"].shape[0] // self.n_critic

        step = self.g_optimizer.iterations.value  # G updates done: what schedules read
        for i in range(self.n_critic):
            examples = {key: values[i * batch_size:(i + 1) * batch_size] for key, values in batch.items()}
            noise, fake_labels = self._noise(batch_size, i, noise_all, noise_labels_all)
            d_loss, logits = self._update("discriminator", examples, noise, fake_labels, step)

        noise, fake_labels = self._noise(batch_size, self.n_critic, noise_all, noise_labels_all)
        g_loss, _ = self._update("generator", examples, noise, fake_labels, step)  # the last slice's examples
        if self.ema is not None:
            self.sampler.average.update()

        values = {"d_loss": d_loss, "g_loss": g_loss, **logits}
        for name, value in values.items():
            value = _backend.mean_over_replicas(value)
            if self.updates.guard:  # a skipped update's NaN must not poison the running means either
                finite = keras.ops.isfinite(value)
                value = keras.ops.where(finite, value, keras.ops.zeros_like(value))
                self.trackers[name].update_state(value, sample_weight=keras.ops.cast(finite, value.dtype))
            else:
                self.trackers[name].update_state(value)
        results = {name: tracker.result() for name, tracker in self.trackers.items()}
        if self.multi_worker:  # Keras 3.15 reduces a multi-worker step's outputs along axis 0, which a scalar lacks
            results = {name: keras.ops.reshape(value, (1,)) for name, value in results.items()}
        return results

    def call(self, inputs: Any, training: bool = False) -> Any:
        """G(inputs): the GAN as a model is its generator."""
        return self.generator(inputs, training=training)

    # -- sampling (ganframe.sampling) -------------------------------------------------------------

    def sampling_weights(self) -> contextlib.AbstractContextManager[None]:
        """While inside, G holds the weights sampling uses: its EMA when the GAN keeps one, else its own."""
        return self.sampler.average.swapped_in()

    def generate(self, n: int, seed: int = 0, labels: Any = None, batch_size: int = 256,
                 conditions: Any = None) -> np.ndarray:
        """``n`` images for noise drawn from ``seed`` (:meth:`ganframe.sampling.Sampler.generate`)."""
        return self.sampler.generate(n, seed, labels, batch_size, conditions)

    def sample_labels(self, n: int, labels: Any = None) -> np.ndarray | None:
        """The labels ``generate`` uses for ``n`` images (:meth:`ganframe.sampling.Sampler.labels`)."""
        return self.sampler.labels(n, labels)

    def sample_grid(self, n: int, seed: int = 0) -> tuple[np.ndarray, int | None]:
        """``n`` samples in grid order and the grid's columns (:meth:`ganframe.sampling.Sampler.grid`)."""
        return self.sampler.grid(n, seed)


def _heads(outputs: dict[str, Any]) -> dict[str, Any]:
    """D's named outputs besides its logit."""
    return {name: value for name, value in outputs.items() if name != "logit"}


def _examples(batch: dict[str, Any]) -> dict[str, Any]:
    """The real examples of a batch: ``image``, and ``label`` and ``condition`` where present, as tensors (numpy
    batches on JAX run eagerly, where a network refuses a mix of arrays and tensors)."""
    return {key: keras.ops.convert_to_tensor(batch[key]) for key in ("image", "label", "condition")
            if batch.get(key) is not None}
