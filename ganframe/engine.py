"""The adversarial step: one ``keras.Model`` whose ``train_step`` is the whole GAN algorithm.

Per step (Goodfellow et al. 2014, Algorithm 1): ``n_critic`` discriminator
updates, each on a fresh slice of real images and fresh noise, then one
generator update on fresh noise against the updated discriminator. Each
optimizer is given exactly its own network's trainable variables, so no
``trainable`` flag (the seed's Keras 3 trap) can silently freeze a network.

Divergence guard (``guard=True``): an update whose loss or gradients are not all finite
is skipped inside the compiled step (a select in each of the optimizer's writes; see
``_update``), so a NaN never reaches the weights or the optimizer's slots.
Skips are counted in non-trainable variables (``d_skipped``, ``g_skipped``), saved in
checkpoints; ``ganframe.run`` watches them and rolls back when they pile up.

Generator EMA (``ema=d``): after each G update the step also moves a shadow copy of G's
trainable weights, ``ema_w = d·ema_w + (1 − d)·w`` (non-trainable variables, saved in
checkpoints as their own group). Sampling (``generate``, hence sample grids and evaluation)
and export use those averaged weights (:meth:`GAN.sampling_weights`); BatchNorm's moving
statistics stay G's own.

Mixed precision (networks built under a ``mixed_float16`` or ``mixed_bfloat16`` Keras dtype
policy, :func:`precision_policy`): the networks compute in 16 bits on float32 variables; the
engine casts G's images and D's logits to float32, so losses, metrics and samples are float32.
With float16 it also scales each network's loss dynamically (as Keras's LossScaleOptimizer
does, but inside the guarded update, see ``_update``): the gradients are taken of
loss × scale and divided by it; a non-finite update is skipped and halves the scale (not
below 1), 2000 finite ones in a row double it. Such an overflow is the scale finding its
level, not divergence: the guard counts a skip only when the loss itself is non-finite or the
scale is already 1. Both scales are checkpointed with the guard's counters.

Driven by ``fit``: Keras compiles ``train_step`` (XLA when ``jit_compile``),
runs callbacks and ``steps_per_execution``. Only this module and the input
pipeline touch TensorFlow directly; components use ``keras.layers``/``keras.ops``.

Under a ``tf.distribute`` strategy (a GAN built inside ``strategy.scope()``), ``fit`` runs
``train_step`` once per replica on its slice of the global batch, and ``apply_gradients``
sums the replicas' gradients. So each replica's gradients are scaled by
1 / ``num_replicas_in_sync``: the sum is then the gradient of the global batch's mean loss,
as on one device. The noise comes with the data (:class:`~ganframe.pipeline.NoiseSpec`),
since the engine's seed generator is mirrored and would give every replica the same noise,
and the metrics are means over all replicas.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, Sequence, get_args

import keras
import numpy as np
import tensorflow as tf

from ganframe.config import Precision
from ganframe.contract import AdversarialLoss, Augmentation, Networks, Penalty
from ganframe.distribute import multi_worker
from ganframe.errors import ConfigError
from ganframe.pipeline import NoiseSpec

#: The dtype policies ``precision`` may name (docs/performance.md): Keras's names.
PRECISIONS: tuple[str, ...] = get_args(Precision)

#: float16 loss scaling (Keras's LossScaleOptimizer defaults): the first scale, and the finite updates in a row that double it.
LOSS_SCALE_START, LOSS_SCALE_GROWTH = 2.0**15, 2000


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

    ``keras.ops`` has no gradient op; penalties call this instead of a backend tape.
    """
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        outputs = fn(inputs)
    return tape.gradient(outputs, inputs)


class GAN(keras.Model):
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
        #: The noise the input pipeline must draw (None: the engine draws it): set under a strategy.
        self.noise_spec = (
            NoiseSpec(self.latent_dim, num_classes if self.conditional else None) if tf.distribute.has_strategy() else None
        )
        self.trackers = {name: keras.metrics.Mean(name=name) for name in ("d_loss", "g_loss", "d_real", "d_fake")}
        self.multi_worker = multi_worker(tf.distribute.get_strategy())
        self.guard = guard
        compute = {self.generator.compute_dtype, self.discriminator.compute_dtype}
        #: The networks compute in 16 bits (a mixed dtype policy): their outputs are cast to float32.
        self.mixed = compute != {"float32"}
        # Divergence bookkeeping, per network: updates skipped, and the loss and step of the
        # last skipped one; with float16, also the loss scale and the finite updates since it last
        # changed. Variables (not Python numbers), so they count inside compiled calls, across
        # steps_per_execution, and travel in checkpoints (group "guard").
        bookkeeping = [("skipped", 0, "int64"), ("bad_loss", 0.0, "float32"), ("bad_step", -1, "int64")]
        #: float16: each network's loss is scaled dynamically (see the module docstring).
        self.loss_scaling = "float16" in compute
        if self.loss_scaling:
            bookkeeping += [("loss_scale", LOSS_SCALE_START, "float32"), ("scale_streak", 0, "int64")]
        self.skip_state = {
            f"{net}_{what}": keras.Variable(init, dtype=dtype, trainable=False, name=f"{net}_{what}")
            for net in ("d", "g")
            for what, init, dtype in bookkeeping
        }
        #: Total skips when the newest checkpoint was written or loaded (kept by ganframe.checkpoints).
        self.checkpointed_skips = 0
        if ema is not None and not 0 < ema < 1:
            raise ConfigError(f"ema must be a decay in (0, 1), e.g. 0.999; got {ema}")
        self.ema = ema
        #: The exponential moving average of each of G's trainable variables, in their order; empty without EMA.
        #: Every replica computes the same average, so the first replica's write stands for all.
        self.ema_weights = [
            # from a copy of the value: a Keras variable made from another one's value shares it
            keras.Variable(variable.numpy(), trainable=False, aggregation="only_first_replica", name=f"ema_{index}")
            for index, variable in enumerate(self.generator.trainable_variables if ema is not None else [])
        ]

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

    def _maybe_symbolic_build(self, iterator: Any = None, data_batch: Any = None) -> None:
        """Keras's hook before ``fit``: under a strategy it reduces a sample batch over the replicas.

        MultiWorkerMirroredStrategy cannot reduce a dict (the pipeline's element under a strategy),
        so on several workers this takes this worker's first replica's share instead; everything
        is built in ``compile`` anyway, so only the batch's shapes could matter.
        """
        if iterator is not None and self.multi_worker:
            for _, _, batches in iterator:
                data_batch = tf.nest.map_structure(
                    lambda value: self.distribute_strategy.experimental_local_results(value)[0], next(batches))
                break
            iterator = None
        super()._maybe_symbolic_build(iterator, data_batch)

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

    def _unpack(self, data: Any) -> tuple[Any, Any, Any, Any]:
        """(real, labels, noise, noise labels) of one step, each ``n_critic`` (noise: ``n_critic + 1``)
        slices of the batch stacked along the first axis; noise None when the engine draws it.
        """
        if isinstance(data, dict) and "noise" in data:
            return tuple(data.get(key) for key in ("image", "label", "noise", "noise_label"))
        if tf.distribute.get_replica_context().num_replicas_in_sync > 1:
            raise ConfigError(
                "under a tf.distribute strategy the data must carry the noise (ganframe.pipeline.make_dataset "
                "with noise=gan.noise_spec and the strategy): the engine's mirrored seed generator would give every replica the same noise"
            )
        if isinstance(data, dict):  # the pipeline's batch
            return data["image"], data.get("label"), None, None
        real, labels = (data if isinstance(data, tuple) else (data, None))[:2]  # arrays passed to fit by hand
        return real, labels, None, None

    def _noise(self, batch_size: int, index: int, noise_all: Any = None, labels_all: Any = None) -> tuple[Any, Any]:
        """Update ``index``'s noise (and labels): its slice of the data's, else fresh from the seed generator."""
        if noise_all is not None:
            rows = slice(index * batch_size, (index + 1) * batch_size)
            return noise_all[rows], None if labels_all is None else labels_all[rows]
        noise = keras.random.normal((batch_size, self.latent_dim), seed=self.seed_generator)
        labels = None
        if self.conditional:
            labels = keras.random.randint((batch_size,), 0, self.num_classes, seed=self.seed_generator)
        return noise, labels

    def _generate(self, noise: Any, labels: Any, training: bool) -> Any:
        inputs = [noise, labels] if self.conditional else noise
        images = self.generator(inputs, training=training)
        return keras.ops.cast(images, "float32") if self.mixed else images

    def _critic(self, labels: Any) -> Callable[[Any], Any]:
        """D as a function of images alone: augmentations applied, labels bound, training mode."""

        def critic(images: Any) -> Any:
            for augment in self.augmentations:
                images = augment(images, self.seed_generator)
            inputs = [images, labels] if self.conditional else images
            logits = self.discriminator(inputs, training=True)
            return keras.ops.cast(logits, "float32") if self.mixed else logits

        return critic

    def train_step(self, data: Any) -> dict[str, Any]:
        real_all, labels_all, noise_all, noise_labels_all = self._unpack(data)
        batch_size = real_all.shape[0] // self.n_critic

        for i in range(self.n_critic):
            real = real_all[i * batch_size:(i + 1) * batch_size]
            real_labels = None if labels_all is None else labels_all[i * batch_size:(i + 1) * batch_size]
            noise, fake_labels = self._noise(batch_size, i, noise_all, noise_labels_all)
            statistics = self._statistics()
            with tf.GradientTape() as tape:
                fake = self._generate(noise, fake_labels, training=True)
                real_logits = self._critic(real_labels)(real)
                fake_logits = self._critic(fake_labels)(fake)
                d_loss = self.adversarial_loss.discriminator_loss(real_logits, fake_logits)
                for penalty in self.d_penalties:
                    d_loss += penalty(self._critic(real_labels), real, fake)
            self._update("d", self.d_optimizer, d_loss, tape, self.discriminator.trainable_variables, statistics)

        noise, fake_labels = self._noise(batch_size, self.n_critic, noise_all, noise_labels_all)
        statistics = self._statistics()
        with tf.GradientTape() as tape:
            fake = self._generate(noise, fake_labels, training=True)
            fake_logits_g = self._critic(fake_labels)(fake)
            g_loss = self.adversarial_loss.generator_loss(fake_logits_g)
            for penalty in self.g_penalties:
                g_loss += penalty(self._critic(fake_labels), real, fake)
        self._update("g", self.g_optimizer, g_loss, tape, self.generator.trainable_variables, statistics)
        for average, weight in zip(self.ema_weights, self.generator.trainable_variables):
            average.assign(self.ema * average.value + (1 - self.ema) * weight.value)

        values = {
            "d_loss": d_loss,
            "g_loss": g_loss,
            "d_real": keras.ops.mean(real_logits),
            "d_fake": keras.ops.mean(fake_logits),
        }
        for name, value in values.items():
            value = _mean_over_replicas(value)
            if self.guard:  # a skipped update's NaN must not poison the running means either
                finite = keras.ops.isfinite(value)
                value = keras.ops.where(finite, value, keras.ops.zeros_like(value))
                self.trackers[name].update_state(value, sample_weight=keras.ops.cast(finite, value.dtype))
            else:
                self.trackers[name].update_state(value)
        results = {name: tracker.result() for name, tracker in self.trackers.items()}
        if self.multi_worker:  # Keras 3.15 reduces a multi-worker step's outputs along axis 0, which a scalar lacks
            results = {name: keras.ops.reshape(value, (1,)) for name, value in results.items()}
        return results

    def _statistics(self) -> list[tuple[Any, Any]]:
        """(variable, value now) of both networks' float non-trainable variables (BatchNorm's moving
        statistics), which forward passes update outside the optimizers; a skipped update puts them back.
        """
        if not (self.guard or self.loss_scaling):
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
        data position and checkpoint names, stay as without the guard).

        On one device the skip is a select in every write the update makes
        (:func:`_writes_only_if`), which XLA fuses into the update's own kernels; a conditional
        around the update (Keras's LossScaleOptimizer's way) made XLA copy every weight and
        slot, about 15% of the dense GAN's step. Under a strategy the replicas must take the
        same branch and the update synchronizes them: the choice is made once in cross-replica
        context with a conditional, as LossScaleOptimizer does there, skipping when any replica
        saw a non-finite value.

        With float16 loss scaling, non-finite updates are skipped the same way, guard or not;
        :meth:`_rescale` moves the scale and says which skips the guard counts.
        """
        replicas = tf.distribute.get_replica_context().num_replicas_in_sync
        scale = None if replicas == 1 else keras.ops.cast(1 / replicas, loss.dtype)  # see the module docstring
        loss_scale = None
        if self.loss_scaling:  # d(loss × loss_scale), then ÷ loss_scale
            loss_scale = tf.identity(self.skip_state[f"{net}_loss_scale"].value)
            scale = loss_scale if scale is None else scale * loss_scale
        grads = tape.gradient(loss, variables, output_gradients=scale)
        if loss_scale is not None:
            grads = [None if grad is None else keras.ops.divide(grad, loss_scale) for grad in grads]
        elif not self.guard:
            optimizer.apply_gradients(zip(grads, variables))
            return
        finite = keras.ops.all(keras.ops.isfinite(loss))
        for grad in grads:
            if grad is not None:
                finite = keras.ops.logical_and(finite, keras.ops.all(keras.ops.isfinite(grad)))
        targets = [variable for variable, _ in statistics]
        saved = [value for _, value in statistics]

        if not tf.distribute.has_strategy():
            counted = keras.ops.logical_not(finite) if loss_scale is None else self._rescale(net, finite, loss)
            if self.guard:
                self._count_skip(net, counted, loss)  # before G's update advances the step
            with _writes_only_if(optimizer, finite):
                optimizer.apply_gradients(zip(grads, variables))
            for variable, value in zip(targets, saved):
                variable.assign(keras.ops.where(finite, variable.value, value))
            return

        def apply(grads: list[Any]) -> None:
            if loss_scale is not None:
                self._rescale(net, True, 0.0)
            optimizer.apply_gradients(zip(grads, variables))

        def skip(bad_loss: Any, saved: list[Any]) -> None:
            counted = True if loss_scale is None else self._rescale(net, False, bad_loss)
            if self.guard:
                self._count_skip(net, counted, bad_loss)
            optimizer.iterations.assign_add(1)
            for variable, value in zip(targets, saved):
                variable.assign(value)

        def choose(strategy: tf.distribute.Strategy, bad: Any, grads: list[Any], loss: Any, saved: list[Any]) -> None:
            run = strategy.extended.call_for_each_replica
            keras.ops.cond(
                strategy.reduce("SUM", bad, axis=None) == 0,
                lambda: run(apply, args=(grads,)),
                lambda: run(skip, args=(strategy.reduce("MEAN", loss, axis=None), saved)),
            )

        bad = keras.ops.cast(keras.ops.logical_not(finite), "float32")
        tf.distribute.get_replica_context().merge_call(
            choose, args=(bad, grads, keras.ops.cast(keras.ops.mean(loss), "float32"), saved)
        )

    def _rescale(self, net: str, finite: Any, loss: Any) -> Any:
        """Move ``net``'s float16 loss scale after an update (``finite``: it was applied); True where the
        update is a divergence skip for the guard: non-finite with a non-finite loss, or at scale 1.
        """
        scale, streak = self.skip_state[f"{net}_loss_scale"], self.skip_state[f"{net}_scale_streak"]
        finite = keras.ops.convert_to_tensor(finite)
        grow = keras.ops.logical_and(finite, streak.value + 1 >= LOSS_SCALE_GROWTH)
        diverged = keras.ops.logical_and(
            keras.ops.logical_not(finite),
            keras.ops.logical_or(keras.ops.logical_not(keras.ops.all(keras.ops.isfinite(loss))), scale.value <= 1),
        )
        scale.assign(keras.ops.where(finite, keras.ops.where(grow, scale.value * 2, scale.value),
                                     keras.ops.maximum(scale.value / 2, 1.0)))
        streak.assign(keras.ops.where(keras.ops.logical_and(finite, keras.ops.logical_not(grow)), streak.value + 1, 0))
        return diverged

    def _count_skip(self, net: str, skipped: Any, loss: Any) -> None:
        """Record a skipped update of ``net`` (where ``skipped``): the count, its loss and its step."""
        state = self.skip_state
        bad_loss = keras.ops.cast(keras.ops.mean(loss), "float32")
        step = keras.ops.cast(self.g_optimizer.iterations, "int64") + 1
        state[f"{net}_bad_loss"].assign(keras.ops.where(skipped, bad_loss, state[f"{net}_bad_loss"].value))
        state[f"{net}_bad_step"].assign(keras.ops.where(skipped, step, state[f"{net}_bad_step"].value))
        state[f"{net}_skipped"].assign_add(keras.ops.cast(skipped, state[f"{net}_skipped"].dtype))

    def call(self, inputs: Any, training: bool = False) -> Any:
        """G(inputs): the GAN as a model is its generator."""
        return self.generator(inputs, training=training)

    # -- sampling ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def sampling_weights(self) -> Iterator[None]:
        """While inside, G holds the weights sampling uses: its EMA when the GAN keeps one, else its own.

        G's own weights are put back on exit, bit for bit. ``generate`` and ``Run.export`` use it.
        """
        weights = self.generator.trainable_variables
        own = [np.array(variable.numpy()) for variable in weights] if self.ema_weights else []
        try:
            for variable, average in zip(weights, self.ema_weights):
                variable.assign(average.value)
            yield
        finally:
            for variable, value in zip(weights, own):
                variable.assign(value)

    def generate(self, n: int, seed: int = 0, labels: Any = None, batch_size: int = 256) -> np.ndarray:
        """``n`` images (N, H, W, C) for noise drawn from ``seed``; the same seed gives the same images.

        A conditional GAN generates class ``labels[i]`` as image ``i`` (default: the classes in turn).
        """
        noise = np.random.default_rng(seed).standard_normal((n, self.latent_dim)).astype(np.float32)
        labels = self.sample_labels(n, labels)
        chunks = []
        with self.sampling_weights():
            for start in range(0, n, batch_size):
                batch_labels = None if labels is None else labels[start:start + batch_size]
                chunks.append(np.asarray(self._generate(noise[start:start + batch_size], batch_labels, training=False)))
        return np.concatenate(chunks) if chunks else np.zeros((0, *self.generator.output_shape[1:]), np.float32)

    def sample_labels(self, n: int, labels: Any = None) -> np.ndarray | None:
        """The labels ``generate`` uses for ``n`` images: ``labels`` checked against the classes, as int32, or
        the default (the classes in turn; None for unconditional networks).
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

    def sample_grid(self, n: int, seed: int = 0) -> tuple[np.ndarray, int | None]:
        """``n`` samples in grid order and the grid's columns (None: square).

        A conditional GAN's grid has one class per row: the ``n`` images share out over the classes
        as evenly as they go, and a row with one image fewer ends in a blank cell (the lowest value).
        """
        if not self.conditional:
            return self.generate(n, seed=seed), None
        labels = np.sort(np.arange(n) % self.num_classes).astype(np.int32)
        images = self.generate(n, seed=seed, labels=labels)
        columns = -(-n // self.num_classes)
        grid = np.full((min(n, self.num_classes) * columns, *images.shape[1:]), self.output_range[0], np.float32)
        within_class = np.arange(n) - np.searchsorted(labels, labels)  # labels are sorted: first index of each class
        grid[labels * columns + within_class] = images
        return grid, columns


def _mean_over_replicas(value: Any) -> Any:
    """``value``'s mean over the replicas (each holds the mean of its equal slice): the global batch's value."""
    context = tf.distribute.get_replica_context()
    return value if context.num_replicas_in_sync == 1 else context.all_reduce("MEAN", value)


@contextlib.contextmanager
def _writes_only_if(optimizer: keras.optimizers.Optimizer, condition: Any) -> Iterator[None]:
    """While ``apply_gradients`` is traced inside: each write to a weight or slot takes effect only if ``condition``.

    Keras optimizers write through their ``assign``, ``assign_add`` and ``assign_sub`` methods
    (``update_step``); shadowing them on the instance turns each write into a select. The
    optimizer's ``iterations`` counter is written directly, so it still advances. One device
    only: a strategy traces replicas in threads, which must not share shadowed methods.
    """
    cls = type(optimizer)

    def dense(value: Any) -> Any:
        return tf.convert_to_tensor(value)  # an IndexedSlices gradient (embeddings) becomes a dense update

    def assign(variable: Any, value: Any) -> None:
        cls.assign(optimizer, variable, keras.ops.where(condition, dense(value), variable))

    def assign_add(variable: Any, value: Any) -> None:
        value = dense(value)
        cls.assign_add(optimizer, variable, keras.ops.where(condition, value, keras.ops.zeros_like(value)))

    def assign_sub(variable: Any, value: Any) -> None:
        value = dense(value)
        cls.assign_sub(optimizer, variable, keras.ops.where(condition, value, keras.ops.zeros_like(value)))

    optimizer.assign, optimizer.assign_add, optimizer.assign_sub = assign, assign_add, assign_sub
    try:
        yield
    finally:
        del optimizer.assign, optimizer.assign_add, optimizer.assign_sub
