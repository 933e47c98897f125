"""Train-step speed: ganframe against a hand-written XLA step and the classic seed loop.

One process on one Keras backend (``--backend tensorflow|jax``, default ``$KERAS_BACKEND``,
else tensorflow), identical networks (the same initial weights, copied into each loop)
and the same data; each loop is warmed up (traced, XLA-compiled) and then timed in
interleaved rounds of ``--steps`` steps. Loops:

``seed``
    The classic Keras loop as a practitioner writes it, in the variant that really
    trains D on Keras 3: D + sigmoid compiled with BCE and its train function built
    by one ``train_on_batch`` *before* ``trainable = False``; per step
    ``generator.predict``, ``discriminator.train_on_batch(real+fake)``,
    ``gan.train_on_batch(noise, ones)``. The script checks that both networks'
    weights change while it is timed, and fails if not.
    TensorFlow only: on JAX, ``train_on_batch`` reads the trainable variables at each call,
    so after ``trainable = False`` D's own ``train_on_batch`` has none to update (and fails).
``handwritten``
    ganframe's algorithm (one D update on a real batch and fresh noise, one G update on
    fresh noise against the updated D; non-saturating loss on logits; Adam 2e-4, beta_1
    0.5 per network) written by hand for the backend. TensorFlow: a
    ``tf.function(jit_compile=True)`` GradientTape step, fed by
    ``ganframe.pipeline.make_dataset`` iterated in Python. JAX: a pure function of the
    state (both networks' variable values, both optimizers', a PRNG key) built from
    ``stateless_call``, ``jax.value_and_grad`` and ``stateless_apply`` under ``jax.jit``
    with the state donated, fed by ``ganframe.feed.batches``; each round reads the state
    from the Keras variables and writes it back at its end, as ``fit`` does.
``ganframe``
    ``ganframe.run.build_gan(RunConfig(...))`` driven by ``gan.fit(dataset, epochs=1,
    steps_per_epoch=N, verbose=0)``: what ``ganframe.train`` does, callbacks aside.
``ganframe+callbacks``
    The same with the built-in callbacks at their default intervals (samples every
    500 steps, checkpoint every 1000, metrics every 50), built through the registry
    as ``ganframe.train`` builds them, plus the ``Progress`` line printer, writing into
    a temporary directory. The save that ends every ``fit`` (final checkpoint and
    grid) is taken out of its time and reported apart, as ``end of fit``: a real run
    pays it once, not every round.

Every loop pays its own per-round setup inside the timing: ``fit`` creates a fresh
data iterator per call, so the hand-written loop does the same each round. The input is
the backend's, as ``ganframe.train`` feeds it: ``tf.data`` on TensorFlow; on JAX numpy
batches from ``ganframe.feed.batches``, handed to ``fit`` as a generator of ``(batch,)``
tuples.

``--data synthetic`` replaces MNIST by a pool of random batches of MNIST shape (or of
side ``--image-size``), fed without shuffling or per-image batching
(``from_tensor_slices(pool).repeat()`` on TensorFlow, the numpy batches cycled on JAX;
the seed loop cycles through the same numpy batches); comparing it with ``--data mnist``
shows what the input pipeline costs. It needs no files.

The FLOP-bound ceiling puts the speeds in proportion to the machine: the FLOPs of one
train step (:func:`train_step_flops`) against the rate of a large XLA float32 matmul timed
in the same process, on the same backend (:func:`matmul_timer`: the fastest of 3 runs
before the loops and one after each round), as steps/s no loop could beat, and each
loop's fraction of it.

    python benchmarks/step_speed.py --data-dir ../shared/datasets/mnist --rounds 5 --steps 200
    python benchmarks/step_speed.py --data synthetic --quick
    python benchmarks/step_speed.py --backend jax --data synthetic --quick
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

#: The speed targets, printed with the results (medians of steps/s).
TARGETS = {"ganframe/handwritten": 0.95, "ganframe/seed": 2.3}

#: The Keras backends the script runs on.
BACKENDS = ("tensorflow", "jax")
#: The loops timed unless --loops names others (those the backend has).
DEFAULT_LOOPS = ("seed", "handwritten", "ganframe", "ganframe+callbacks")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=BACKENDS, default=None,
                        help="the Keras backend to run on (default: $KERAS_BACKEND, else tensorflow); "
                             "set before Keras is imported")
    parser.add_argument("--data", choices=("mnist", "synthetic"), default="mnist",
                        help="mnist (needs --data-dir or GANFRAME_DATA_DIR) or synthetic random batches of MNIST shape")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="directory holding the MNIST files (default: $GANFRAME_DATA_DIR, else the Keras cache)")
    parser.add_argument("--arch", default="dense", help="architecture to build (default: dense, the seed's model)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--image-size", type=int, default=28,
                        help="side of the synthetic square one-channel images (default 28, MNIST's; mnist is always 28)")
    parser.add_argument("--steps-per-execution", type=int, default=1,
                        help="the ganframe loops' steps_per_execution (default 1, the config's default); "
                             "must divide --steps and --warmup")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (default 5)")
    parser.add_argument("--steps", type=int, default=200, help="steps per loop per round (default 200)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps per loop before timing (default 10)")
    parser.add_argument("--loops", default=None,
                        help="comma-separated subset of: seed (tensorflow only), handwritten, ganframe, "
                             "ganframe+callbacks, ganframe-unguarded "
                             f"(default: those of {', '.join(DEFAULT_LOOPS)} the backend has)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the networks' initial weights and the data order")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run (< 90 s on 2 cores): 2 rounds of 5 steps after 2 warm-up steps; "
                             "ganframe+callbacks reuses ganframe's compiled GAN")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    args.backend = args.backend or os.environ.get("KERAS_BACKEND") or "tensorflow"
    if args.backend not in BACKENDS:
        parser.error(f"KERAS_BACKEND is {args.backend!r}; the script runs on {' or '.join(BACKENDS)} (--backend)")
    keras = sys.modules.get("keras")  # Keras fixes its backend when first imported: set it before that
    if keras is not None and keras.backend.backend() != args.backend:
        parser.error(f"--backend {args.backend}: Keras was already imported on the {keras.backend.backend()!r} backend "
                     "in this process")
    os.environ["KERAS_BACKEND"] = args.backend
    if args.quick:
        args.rounds, args.steps, args.warmup = 2, 5, 2
    if args.loops is None:
        args.loops = [name for name in DEFAULT_LOOPS if args.backend in LOOPS[name]]
    else:
        args.loops = list(dict.fromkeys(name.strip() for name in args.loops.split(",") if name.strip()))
    unknown = set(args.loops) - set(LOOPS)
    if unknown:
        parser.error(f"unknown loop(s) {', '.join(sorted(unknown))}; choose from {', '.join(LOOPS)}")
    elsewhere = [name for name in args.loops if args.backend not in LOOPS[name]]
    if elsewhere:
        parser.error(f"loop(s) {', '.join(elsewhere)} run on {' or '.join(sorted({b for n in elsewhere for b in LOOPS[n]}))} "
                     f"only, not on {args.backend}; drop them from --loops")
    if min(args.rounds, args.steps, args.batch_size, args.steps_per_execution) < 1 or args.warmup < 1:
        parser.error("--rounds, --steps, --batch-size, --warmup and --steps-per-execution must be at least 1")
    if args.steps % args.steps_per_execution or args.warmup % args.steps_per_execution:
        parser.error("--steps-per-execution must divide --steps and --warmup: Keras runs whole executions")
    if args.data == "mnist" and args.image_size != 28:
        parser.error("--image-size applies to --data synthetic; MNIST images are 28x28")
    return args


# -- memory ---------------------------------------------------------------------------------------


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def current_rss_mib() -> float | None:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


# -- FLOPs ------------------------------------------------------------------------------------------


def forward_macs(model: Any) -> int:
    """Multiply-accumulates of one image's forward pass through ``model``'s Dense and convolution layers.

    Dense: kernel size × positions; Conv: kernel size × output positions; transposed Conv:
    kernel size × *input* positions (each input pixel scatters the whole kernel). Other
    layers (BatchNorm, activations, bias adds) are elementwise and left out: they are a few
    percent of these models' FLOPs. Raises ValueError where a layer's shapes are unknown.
    """
    import math

    import keras

    transposed = (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose)
    counted = (keras.layers.Dense, keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D, *transposed)
    total = 0
    for layer in model.layers:
        if hasattr(layer, "layers"):  # a nested model
            total += forward_macs(layer)
        elif isinstance(layer, counted):
            try:
                shape = (layer.input if isinstance(layer, transposed) else layer.output).shape
            except (AttributeError, ValueError) as error:
                raise ValueError(f"layer {layer.name!r}: shapes unknown ({error})") from None
            total += math.prod(shape[1:-1]) * math.prod(layer.kernel.shape)
    return total


def train_step_flops(generator: Any, discriminator: Any, batch: int, n_critic: int = 1) -> dict[str, int]:
    """FLOPs of one ganframe train step: {"G": forward per image, "D": forward per image, "step": the step}.

    A forward pass is 2 FLOPs per MAC. Backward costs about 2 forwards: the gradients of the
    layer inputs and of the weights. Per D update: G forward only (1×: D's tape needs no
    gradient through G), D on the real and on the fake batch, each forward + backward (3× + 3×).
    The G update: G forward + backward (3×), and D forward + input gradients (2×: D's weight
    gradients are not needed; XLA drops them). So, with F the forward MACs per image,
    step = 2 · batch · (n_critic · (F_G + 6 F_D) + 3 F_G + 2 F_D). The seed loop does the same
    work. Optimizer updates (about 10 FLOPs per weight) are left out: under 1% here.
    """
    f_g, f_d = forward_macs(generator), forward_macs(discriminator)
    step = 2 * batch * (n_critic * (f_g + 6 * f_d) + 3 * f_g + 2 * f_d)
    return {"G": 2 * f_g, "D": 2 * f_d, "step": step}


def matmul_timer(size: int = 1024, chain: int = 8) -> Callable[[], float]:
    """A timer of ``chain`` XLA float32 ``size``² matmuls in a row (compiled here, all threads, on
    Keras's backend: ``tf.function(jit_compile=True)`` or ``jax.jit``); each call runs them once,
    waits for the result as a numpy array and returns their GFLOP/s.

    Callers take the fastest of many calls spread over the benchmark: on a shared machine the
    rate of a moment can be half the machine's, and the ceiling is what the machine can do.
    """
    import keras
    import numpy as np

    if keras.backend.backend() == "jax":
        import jax

        x_key, w_key = jax.random.split(jax.random.key(0))
        x, w = jax.random.normal(x_key, (size, size)), jax.random.normal(w_key, (size, size))
        compile_, matmul = jax.jit, jax.numpy.matmul
    else:
        import tensorflow as tf

        x, w = tf.random.normal((size, size)), tf.random.normal((size, size))
        compile_, matmul = (lambda fn: tf.function(fn, jit_compile=True)), tf.matmul
    w = w / size**0.5  # keeps the chain's values of unit scale

    @compile_
    def run(x: Any, w: Any) -> Any:
        for _ in range(chain):
            x = matmul(x, w)
        return x

    np.asarray(run(x, w))  # compile

    def timed() -> float:
        start = time.perf_counter()
        np.asarray(run(x, w))
        return 2 * size**3 * chain / (time.perf_counter() - start) / 1e9

    return timed


def flop_ceiling(networks: Any, batch: int, n_critic: int, matmul_rate: float) -> dict[str, Any]:
    """The FLOP-bound ceiling of ``networks``' train step: FLOPs, the matmul rate, the steps/s they allow.

    ``flops`` is None (and so the ceiling) for networks whose layer shapes cannot be read.
    """
    try:
        flops = train_step_flops(networks.generator, networks.discriminator, batch, n_critic)
    except ValueError as error:
        return {"flops": None, "matmul_gflops": matmul_rate, "ceiling_steps_per_s": None, "why": str(error)}
    return {"flops": flops, "matmul_gflops": matmul_rate, "ceiling_steps_per_s": matmul_rate * 1e9 / flops["step"]}


# -- data -------------------------------------------------------------------------------------------


@dataclass
class Data:
    """What every loop trains on: the images (numpy) and the stream of batches ganframe would use."""

    images: Any  # float32 (N, H, W, C): the data set (mnist) or the pool of batches, flattened (synthetic)
    spec: Any  # ganframe.DataSpec
    fresh: Callable[[], Iterator[Any]]  # a new endless iterator of batches from the first, as each fit call reads
    next_real: Callable[[], Any]  # the seed loop's real batch, a numpy array
    description: str
    #: TensorFlow: the tf.data.Dataset of (batch, H, W, C) float32 images (with labels for labelled data)
    #: that fit takes; None on JAX, where the batches are dicts of numpy arrays (the images under "image").
    dataset: Any = None

    def fit_input(self) -> Any:
        """What one ``fit`` call takes: the tf.data.Dataset (``fit`` iterates it afresh), or on JAX a new generator
        of ``(batch,)`` tuples, as ``ganframe.train`` hands its batches over (Keras reads a tuple as (inputs,))."""
        return self.dataset if self.dataset is not None else ((batch,) for batch in self.fresh())


def load_data(args: argparse.Namespace) -> Data:
    import itertools

    import keras
    import numpy as np

    import ganframe

    batch = args.batch_size
    rng = np.random.default_rng(args.seed)
    on_tf = keras.backend.backend() == "tensorflow"
    if on_tf:
        import tensorflow as tf

        from ganframe.pipeline import make_dataset
    if args.data == "synthetic":
        pool_batches, side = 4 if args.quick else 32, args.image_size
        pool = rng.random((pool_batches, batch, side, side, 1), dtype=np.float32)
        spec = ganframe.DataSpec((side, side, 1), (0.0, 1.0), None)
        cursor = iter(range(10**12))

        def next_real() -> Any:
            return pool[next(cursor) % pool_batches]

        description = f"synthetic: {pool_batches} random batches of {batch}x{side}x{side}x1, no shuffle"
        if on_tf:
            dataset = tf.data.Dataset.from_tensor_slices(pool).repeat().prefetch(tf.data.AUTOTUNE)
            return Data(pool.reshape(-1, side, side, 1), spec, lambda: iter(dataset), next_real, description, dataset)
        # Batch dicts, as ganframe.feed gives them (ganframe's step reads a generator's 1-tuple of a dict).
        return Data(pool.reshape(-1, side, side, 1), spec, lambda: ({"image": b} for b in itertools.cycle(pool)),
                    next_real, description + " (numpy batches cycled)")

    data_dir = args.data_dir or (Path(os.environ["GANFRAME_DATA_DIR"]) if os.environ.get("GANFRAME_DATA_DIR") else None)
    registry = ganframe.get_registry()
    data = registry.build("dataset", "mnist", {}, ganframe.DataContext(data_dir, args.seed))
    images = data.float_images()

    def next_real() -> Any:  # the seed's X_train[np.random.randint(0, N, batch_size)]
        return images[rng.integers(0, len(images), batch)]

    if on_tf:
        dataset = make_dataset(data, batch, seed=args.seed)
        return Data(images, data.spec, lambda: iter(dataset), next_real,
                    f"mnist: {len(images)} images via ganframe.pipeline.make_dataset (shuffle, batch, prefetch)",
                    dataset)
    from ganframe import feed

    return Data(images, data.spec, lambda: feed.batches(data, batch, seed=args.seed), next_real,
                f"mnist: {len(images)} images via ganframe.feed.batches (shuffle, batch, read ahead in a thread)")


# -- the loops --------------------------------------------------------------------------------------


def snapshot(variables: list[Any]) -> list[Any]:
    import keras

    return [keras.ops.convert_to_numpy(v) for v in variables]


def changed(before: list[Any], after: list[Any]) -> int:
    """How many of the variables changed."""
    import numpy as np

    return sum(not np.array_equal(b, a) for b, a in zip(before, after))


class Loop:
    """One way of training; ``run(n)`` trains n steps and returns when they are done."""

    name = ""
    generator: Any
    discriminator: Any  # the logit D, as the architecture built it

    def warmup(self, steps: int) -> None:
        self.run(steps)

    def run(self, steps: int) -> float | None:
        """Train ``steps`` steps; may return seconds of once-per-run work in it, to leave out of the timing."""
        raise NotImplementedError

    def trained_variables(self) -> tuple[list[Any], list[Any]]:
        """The variables each network's optimizer must update: (G's, D's)."""
        return list(self.generator.trainable_weights), list(self.discriminator.trainable_weights)


def build_networks(args: argparse.Namespace, spec: Any, weights: tuple[list[Any], list[Any]] | None) -> Any:
    import keras

    import ganframe

    keras.utils.set_random_seed(args.seed)
    networks = ganframe.get_registry().build("architecture", args.arch, {}, spec)
    if weights is not None:
        networks.generator.set_weights(weights[0])
        networks.discriminator.set_weights(weights[1])
    return networks


class SeedLoop(Loop):
    name = "seed"

    def __init__(self, args: argparse.Namespace, data: Data, weights: Any) -> None:
        import keras
        import numpy as np

        networks = build_networks(args, data.spec, weights)
        self.generator, self.discriminator = networks.generator, networks.discriminator
        self.latent_dim = networks.latent_dim
        self.data, self.batch = data, args.batch_size
        self.rng = np.random.default_rng(args.seed + 1)
        self.ones = np.ones((self.batch, 1), np.float32)
        self.labels = np.concatenate([self.ones, np.zeros((self.batch, 1), np.float32)])

        # Keras 3: the train function is traced with the variables that are trainable when it is
        # first built, so D's must be built by one train_on_batch *before* trainable = False.
        self.d_model = keras.Sequential([self.discriminator, keras.layers.Activation("sigmoid")], name="d_prob")
        self.d_model.compile(optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5), loss="binary_crossentropy")
        # Record D's trainable variables now: after trainable = False they are listed as non-trainable.
        self.d_variables = list(self.discriminator.trainable_weights)
        self.g_variables = list(self.generator.trainable_weights)
        self._d_step()
        self.d_model.trainable = False
        self.gan = keras.Sequential([self.generator, self.d_model], name="gan")
        self.gan.compile(optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5), loss="binary_crossentropy")

    def noise(self) -> Any:
        import numpy as np

        return self.rng.standard_normal((self.batch, self.latent_dim)).astype(np.float32)

    def _d_step(self) -> None:
        import numpy as np

        real = self.data.next_real()
        fake = self.generator.predict(self.noise(), verbose=0)
        self.d_model.train_on_batch(np.concatenate([real, fake]), self.labels)

    def run(self, steps: int) -> None:
        for _ in range(steps):
            self._d_step()
            self.gan.train_on_batch(self.noise(), self.ones)

    def trained_variables(self) -> tuple[list[Any], list[Any]]:
        return self.g_variables, self.d_variables


class HandwrittenLoop(Loop):
    name = "handwritten"

    def __init__(self, args: argparse.Namespace, data: Data, weights: Any) -> None:
        import keras
        import tensorflow as tf

        networks = build_networks(args, data.spec, weights)
        G = self.generator = networks.generator
        D = self.discriminator = networks.discriminator
        self.dataset, batch, latent_dim = data.dataset, args.batch_size, networks.latent_dim
        d_opt = keras.optimizers.Adam(2e-4, beta_1=0.5)
        g_opt = keras.optimizers.Adam(2e-4, beta_1=0.5)
        d_opt.build(D.trainable_variables)
        g_opt.build(G.trainable_variables)
        noise_rng = tf.random.Generator.from_seed(args.seed)

        @tf.function(jit_compile=True)
        def step(data: Any) -> tuple[tf.Tensor, tf.Tensor]:
            real = data["image"] if isinstance(data, dict) else data  # ganframe's batch dict, or plain images
            noise = noise_rng.normal((batch, latent_dim))
            with tf.GradientTape() as tape:
                fake = G(noise, training=True)
                real_logits = D(real, training=True)
                fake_logits = D(fake, training=True)
                d_loss = tf.reduce_mean(tf.nn.softplus(-real_logits)) + tf.reduce_mean(tf.nn.softplus(fake_logits))
            d_opt.apply_gradients(zip(tape.gradient(d_loss, D.trainable_variables), D.trainable_variables))

            noise = noise_rng.normal((batch, latent_dim))
            with tf.GradientTape() as tape:
                g_loss = tf.reduce_mean(tf.nn.softplus(-D(G(noise, training=True), training=True)))
            g_opt.apply_gradients(zip(tape.gradient(g_loss, G.trainable_variables), G.trainable_variables))
            return d_loss, g_loss

        self.step = step

    def run(self, steps: int) -> None:
        iterator = iter(self.dataset)  # a fresh iterator per round, as fit makes per call
        losses = None
        for _ in range(steps):
            losses = self.step(next(iterator))
        float(losses[0])  # wait for the last step


class JaxHandwrittenLoop(Loop):
    """The hand-written step on JAX, the Keras 3 way: a pure function of the state under ``jax.jit``.

    The state is the values of G's and D's trainable and non-trainable variables (BatchNorm's
    statistics, seed generators), of both optimizers' variables, and a PRNG key for the noise.
    The networks run through ``stateless_call``, the optimizers through ``stateless_apply``; the
    state is donated, so XLA updates it in place. Each ``run`` reads the state from the Keras
    variables and writes the final one back into them, as ``fit`` does on JAX.
    """

    name = "handwritten"

    def __init__(self, args: argparse.Namespace, data: Data, weights: Any) -> None:
        import jax
        import jax.numpy as jnp
        import keras

        networks = build_networks(args, data.spec, weights)
        G = self.generator = networks.generator
        D = self.discriminator = networks.discriminator
        self.data, batch, latent_dim = data, args.batch_size, networks.latent_dim
        d_opt = keras.optimizers.Adam(2e-4, beta_1=0.5)
        g_opt = keras.optimizers.Adam(2e-4, beta_1=0.5)
        d_opt.build(D.trainable_variables)
        g_opt.build(G.trainable_variables)
        # The Keras variables behind the state, in its order; the key follows them.
        self.state_variables = [G.trainable_variables, G.non_trainable_variables, D.trainable_variables,
                                D.non_trainable_variables, g_opt.variables, d_opt.variables]
        self.key = jax.random.key(args.seed)

        def d_loss(d_trainable: Any, d_other: Any, g_trainable: Any, g_other: Any, real: Any, noise: Any) -> Any:
            fake, g_other = G.stateless_call(g_trainable, g_other, noise, training=True)
            real_logits, d_other = D.stateless_call(d_trainable, d_other, real, training=True)
            fake_logits, d_other = D.stateless_call(d_trainable, d_other, fake, training=True)
            loss = jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))
            return loss, (d_other, g_other)

        def g_loss(g_trainable: Any, g_other: Any, d_trainable: Any, d_other: Any, noise: Any) -> Any:
            fake, g_other = G.stateless_call(g_trainable, g_other, noise, training=True)
            logits, d_other = D.stateless_call(d_trainable, d_other, fake, training=True)
            return jnp.mean(jax.nn.softplus(-logits)), (g_other, d_other)

        d_gradients = jax.value_and_grad(d_loss, has_aux=True)  # with respect to D's trainable values only
        g_gradients = jax.value_and_grad(g_loss, has_aux=True)

        def step(state: tuple[Any, ...], real: Any) -> tuple[tuple[Any, Any], tuple[Any, ...]]:
            g_trainable, g_other, d_trainable, d_other, g_opt_values, d_opt_values, key = state
            key, d_key, g_key = jax.random.split(key, 3)
            noise = jax.random.normal(d_key, (batch, latent_dim))
            (d_value, (d_other, g_other)), grads = d_gradients(d_trainable, d_other, g_trainable, g_other, real, noise)
            d_trainable, d_opt_values = d_opt.stateless_apply(d_opt_values, grads, d_trainable)

            noise = jax.random.normal(g_key, (batch, latent_dim))
            (g_value, (g_other, d_other)), grads = g_gradients(g_trainable, g_other, d_trainable, d_other, noise)
            g_trainable, g_opt_values = g_opt.stateless_apply(g_opt_values, grads, g_trainable)
            return (d_value, g_value), (g_trainable, g_other, d_trainable, d_other, g_opt_values, d_opt_values, key)

        self.step = jax.jit(step, donate_argnums=0)

    def run(self, steps: int) -> None:
        state = (*([variable.value for variable in variables] for variables in self.state_variables), self.key)
        batches = self.data.fresh()  # a fresh iterator per round, as fit makes per call
        losses = None
        for _ in range(steps):
            batch = next(batches)
            losses, state = self.step(state, batch["image"] if isinstance(batch, dict) else batch)
        float(losses[0])  # wait for the last step
        *values, self.key = state
        for variables, new_values in zip(self.state_variables, values):
            for variable, value in zip(variables, new_values):
                variable.assign(value)


class GanframeLoop(Loop):
    name = "ganframe"
    with_callbacks = False
    guard = True  # the default config's divergence guard

    def __init__(self, args: argparse.Namespace, data: Data, weights: Any) -> None:
        import keras

        import ganframe
        from ganframe.run import build_gan

        self.registry = ganframe.get_registry()
        self.config = ganframe.RunConfig(arch=args.arch, data="mnist", batch_size=args.batch_size, seed=args.seed,
                                         divergence={"enabled": self.guard},
                                         steps_per_execution=args.steps_per_execution)
        keras.utils.set_random_seed(args.seed)  # as ganframe.train does before building
        self.gan = build_gan(self.config, data.spec, self.registry)
        if weights is not None:
            self.gan.generator.set_weights(weights[0])
            self.gan.discriminator.set_weights(weights[1])
        self.generator, self.discriminator = self.gan.generator, self.gan.discriminator
        self.data = data
        self.spec = data.spec
        self.callbacks: list[Any] = []

    def fit(self, steps: int) -> None:
        self.gan.fit(self.data.fit_input(), epochs=1, steps_per_epoch=steps, callbacks=self.callbacks, shuffle=False,
                     verbose=0)

    def run(self, steps: int) -> None:
        self.fit(steps)


class GanframeUnguardedLoop(GanframeLoop):
    """ganframe with the divergence guard off: what the default's skipping of non-finite updates costs."""

    name = "ganframe-unguarded"
    guard = False


def _end_of_fit_clock() -> Any:
    """A callback (to go last) that times the other callbacks' ``on_train_end``: the final save."""
    import keras

    class EndOfFitClock(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.last_step = self.train_end = 0.0

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            self.last_step = time.perf_counter()

        def on_train_end(self, logs: Any = None) -> None:
            self.train_end = time.perf_counter()

    return EndOfFitClock()


class GanframeCallbacksLoop(GanframeLoop):
    name = "ganframe+callbacks"

    def __init__(self, args: argparse.Namespace, data: Data, weights: Any, shared: GanframeLoop | None = None) -> None:
        from ganframe import CallbackContext
        from ganframe.progress import Progress

        if shared is None:
            super().__init__(args, data, weights)
        else:  # --quick: train ganframe's GAN (already compiled) to save an XLA compile
            self.__dict__.update({k: v for k, v in vars(shared).items() if k not in ("callbacks", "end_times")})
        self.tempdir = tempfile.TemporaryDirectory(prefix="ganframe-step-speed-")
        context = CallbackContext(run_dir=Path(self.tempdir.name), spec=self.spec, seed=self.config.seed, total_steps=None)
        # As ganframe.run.train builds them: every configured callback through the registry, then Progress.
        self.callbacks = [
            self.registry.build("callback", name, options, context) for name, options in self.config.callbacks.items()
        ]
        self.callbacks.append(Progress(None, stream=io.StringIO(), bar=False))
        self.clock = _end_of_fit_clock()
        self.callbacks.append(self.clock)  # last: its on_train_end comes after the others' final save
        self.end_of_fit: list[float] = []

    def run(self, steps: int) -> float:  # type: ignore[override]
        """Trains; returns the seconds of the final save that ends every fit, to leave out of the timing."""
        self.fit(steps)
        self.end_of_fit.append(self.clock.train_end - self.clock.last_step)
        return self.end_of_fit[-1]


#: Each loop's class on each backend it runs on.
LOOPS: dict[str, dict[str, type[Loop]]] = {
    "seed": {"tensorflow": SeedLoop},
    "handwritten": {"tensorflow": HandwrittenLoop, "jax": JaxHandwrittenLoop},
    **{loop.name: dict.fromkeys(BACKENDS, loop)
       for loop in (GanframeLoop, GanframeCallbacksLoop, GanframeUnguardedLoop)},
}


# -- measuring --------------------------------------------------------------------------------------

#: --quick's matmul timing: a smaller one (the ceiling it gives is rougher).
QUICK_MATMUL = {"size": 512, "chain": 4}


def time_run(loop: Loop, steps: int) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of ``loop.run(steps)``, without what the loop reports as untimed.

    CPU time counts all threads, and includes the untimed once-per-run work (small).
    """
    start, cpu_start = time.perf_counter(), time.process_time()
    untimed = loop.run(steps) or 0.0
    return time.perf_counter() - start - untimed, time.process_time() - cpu_start



@dataclass
class Result:
    name: str
    rates: list[float] = field(default_factory=list)  # steps/s per round
    seconds: list[float] = field(default_factory=list)
    cpu_ms_per_step: list[float] = field(default_factory=list)  # process CPU time (all threads) per step
    setup_s: float = 0.0
    warmup_s: float = 0.0
    rss_growth_mib: float | None = None
    weights_changed: dict[str, str] = field(default_factory=dict)
    end_of_fit_s: list[float] | None = None

    def summary(self, batch: int) -> dict[str, Any]:
        median = statistics.median(self.rates)
        return {
            "median_steps_per_s": median,
            "min_steps_per_s": min(self.rates),
            "max_steps_per_s": max(self.rates),
            "mean_steps_per_s": len(self.rates) / sum(1 / r for r in self.rates),  # total steps / total time
            "median_images_per_s": median * batch,
            "median_cpu_ms_per_step": statistics.median(self.cpu_ms_per_step),
            "rounds_steps_per_s": self.rates,
            "rounds_cpu_ms_per_step": self.cpu_ms_per_step,
            "setup_s": self.setup_s,
            "warmup_s": self.warmup_s,
            "rss_growth_mib": self.rss_growth_mib,
            "weights_changed": self.weights_changed,
            **({"end_of_fit_s": self.end_of_fit_s} if self.end_of_fit_s is not None else {}),
        }


def environment() -> dict[str, Any]:
    """The backend, the versions (TensorFlow's and JAX's where imported) and the machine, recorded with every result."""
    import keras

    import ganframe

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        gpus = [f"{device} ({device.device_kind})" for device in jax.devices() if device.platform != "cpu"]
    else:
        import tensorflow as tf

        gpus = [device.name for device in tf.config.list_physical_devices("GPU")]
    return {"backend": backend, "python": platform.python_version(),
            **{name: sys.modules[name].__version__ for name in ("tensorflow", "jax") if name in sys.modules},
            "keras": keras.__version__, "ganframe": ganframe.__version__, "cpus": os.cpu_count(),
            "platform": platform.platform(), "gpus": gpus}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    data = load_data(args)
    reference = build_networks(args, data.spec, None)
    weights = (reference.generator.get_weights(), reference.discriminator.get_weights())
    matmul = matmul_timer(**QUICK_MATMUL if args.quick else {})
    matmul_rates = [matmul() for _ in range(3)]

    loops: list[Loop] = []
    results: dict[str, Result] = {}
    for name in args.loops:
        rss_before = current_rss_mib()
        t0 = time.perf_counter()
        shared = next((loop for loop in loops if type(loop) is GanframeLoop), None) if args.quick else None
        if name == "ganframe+callbacks" and shared is not None:
            loop = GanframeCallbacksLoop(args, data, weights, shared=shared)
        else:
            loop = LOOPS[name][args.backend](args, data, weights)
        t1 = time.perf_counter()
        loop.warmup(args.warmup)
        t2 = time.perf_counter()
        rss_after = current_rss_mib()
        growth = None if rss_before is None or rss_after is None else rss_after - rss_before
        results[name] = Result(name, setup_s=t1 - t0, warmup_s=t2 - t1, rss_growth_mib=growth)
        loops.append(loop)
        print(f"  ready: {name:<19} setup {t1 - t0:5.1f} s, warm-up ({args.warmup} steps, tracing/XLA) {t2 - t1:5.1f} s"
              + (f", RSS +{growth:.0f} MiB" if growth is not None else ""), flush=True)

    # Each network's trained variables are compared before and after every timed round (outside the timing).
    least_changed = {loop.name: {"G": None, "D": None} for loop in loops}
    for round_index in range(args.rounds):
        shift = round_index % len(loops)  # rotate the order, so no loop always runs first or last
        for loop in loops[shift:] + loops[:shift]:
            before = [snapshot(v) for v in loop.trained_variables()]
            seconds, cpu = time_run(loop, args.steps)
            results[loop.name].seconds.append(seconds)
            results[loop.name].rates.append(args.steps / seconds)
            results[loop.name].cpu_ms_per_step.append(1000 * cpu / args.steps)
            for network, snap, variables in zip(("G", "D"), before, loop.trained_variables()):
                count, least = changed(snap, snapshot(variables)), least_changed[loop.name][network]
                least_changed[loop.name][network] = count if least is None else min(least, count)
        matmul_rates.append(matmul())
        print(f"  round {round_index + 1}/{args.rounds}: "
              + "  ".join(f"{n} {results[n].rates[-1]:.1f}" for n in args.loops) + "  steps/s", flush=True)

    failures = []
    for loop in loops:
        for network, variables in zip(("G", "D"), loop.trained_variables()):
            least, total = least_changed[loop.name][network], len(variables)
            results[loop.name].weights_changed[network] = f"{least}/{total}"
            if not least or not total:
                failures.append(f"{loop.name}: {network}'s weights did not change in some timed round "
                                f"(as few as {least} of its {total} trained variables changed)")
        if isinstance(loop, GanframeCallbacksLoop):
            results[loop.name].end_of_fit_s = loop.end_of_fit

    ceiling = flop_ceiling(reference, args.batch_size, 1, max(matmul_rates))
    summaries = {name: result.summary(args.batch_size) for name, result in results.items()}
    for summary in summaries.values():
        summary["of_ceiling"] = (None if ceiling["ceiling_steps_per_s"] is None
                                 else summary["median_steps_per_s"] / ceiling["ceiling_steps_per_s"])
    ratios, paired, best, cpu = {}, {}, {}, {}
    for a, b in (("ganframe", "handwritten"), ("ganframe", "seed"), ("handwritten", "seed"),
                 ("ganframe+callbacks", "ganframe"), ("ganframe+callbacks", "handwritten"),
                 ("ganframe", "ganframe-unguarded"), ("ganframe-unguarded", "handwritten")):
        if a in summaries and b in summaries:
            ratios[f"{a}/{b}"] = summaries[a]["median_steps_per_s"] / summaries[b]["median_steps_per_s"]
            # The same ratio within each round (loops timed minutes apart see different machine load).
            paired[f"{a}/{b}"] = statistics.median(x / y for x, y in zip(results[a].rates, results[b].rates))
            # Other load on the machine only ever slows a round down: the fastest rounds are the least
            # disturbed (timeit's reasoning), and process CPU time per step does not count time not running.
            best[f"{a}/{b}"] = summaries[a]["max_steps_per_s"] / summaries[b]["max_steps_per_s"]
            cpu[f"{a}/{b}"] = summaries[b]["median_cpu_ms_per_step"] / summaries[a]["median_cpu_ms_per_step"]
    return {
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "settings": {"backend": args.backend, "data": data.description, "arch": args.arch,
                     "batch_size": args.batch_size, "rounds": args.rounds,
                     "steps": args.steps, "warmup": args.warmup, "seed": args.seed, "quick": args.quick},
        "environment": environment(),
        "loops": summaries,
        "ratios": ratios,
        "paired_ratios": paired,
        "best_ratios": best,
        "cpu_ratios": cpu,
        "targets": {k: {"target": v, "value": ratios.get(k), "met": ratios.get(k, 0) >= v,
                        "met_by_best": best.get(k, 0) >= v}
                    for k, v in TARGETS.items() if k in ratios},
        "flop_ceiling": ceiling,
        "matmul_gflops_samples": matmul_rates,
        "weight_check_failures": failures,
        "peak_rss_mib": peak_rss_mib(),
        "total_s": time.perf_counter() - started,
    }


def ceiling_text(ceiling: dict[str, Any]) -> str:
    """One line on the FLOP-bound ceiling: FLOPs per step, the matmul rate, the steps/s they allow."""
    rate = f"matmul rate {ceiling['matmul_gflops']:.0f} GFLOP/s (XLA float32, fastest in this process)"
    if ceiling["flops"] is None:
        return f"FLOP ceiling: n/a ({ceiling['why']}); {rate}"
    flops = ceiling["flops"]
    return (f"FLOP ceiling {ceiling['ceiling_steps_per_s']:.1f} steps/s: {flops['step'] / 1e9:.2f} GFLOP per step "
            f"(forward per image: G {flops['G'] / 1e6:.2f}, D {flops['D'] / 1e6:.2f} MFLOP) at {rate}")


def report(results: dict[str, Any]) -> str:
    settings, env = results["settings"], results["environment"]
    lines = [f"data: {settings['data']}",
             f"backend {env['backend']} {env[env['backend']]}, arch {settings['arch']}, "
             f"batch {settings['batch_size']}, {settings['rounds']} rounds x {settings['steps']} steps per loop "
             f"(+{settings['warmup']} warm-up); Keras {env['keras']}, {env['cpus']} CPUs"
             + (f", GPU {env['gpus']}" if env['gpus'] else ""),
             "",
             f"{'loop':<19} {'steps/s':>8} {'min-max':>13} {'mean':>7} {'images/s':>9} {'cpu ms/step':>11} "
             f"{'of ceiling':>10} {'warm-up s':>9} {'weights G/D':>13}"]
    for name, s in results["loops"].items():
        spread = f"{s['min_steps_per_s']:.1f}-{s['max_steps_per_s']:.1f}"
        changed_text = f"{s['weights_changed'].get('G', '?')} {s['weights_changed'].get('D', '?')}"
        fraction = "n/a" if s["of_ceiling"] is None else f"{s['of_ceiling']:.2f}"
        lines.append(f"{name:<19} {s['median_steps_per_s']:8.1f} {spread:>13} {s['mean_steps_per_s']:7.1f} "
                     f"{s['median_images_per_s']:9.0f} {s['median_cpu_ms_per_step']:11.1f} {fraction:>10} "
                     f"{s['setup_s'] + s['warmup_s']:9.1f} {changed_text:>13}")
    lines.append("(steps/s: median over rounds; mean: total steps / total time; cpu ms/step: median process CPU time, "
                 "all threads;\n of ceiling: median steps/s / the FLOP-bound ceiling below; "
                 "weights G/D: trained variables changed, fewest in any timed round / all)")
    lines.append(ceiling_text(results["flop_ceiling"]))
    extra = results["loops"].get("ganframe+callbacks", {}).get("end_of_fit_s")
    if extra:
        lines.append(f"ganframe+callbacks end of fit (final checkpoint + grid, left out above): "
                     f"median {statistics.median(extra):.2f} s per fit")
    if results["ratios"]:
        lines.append("")
        lines.append(f"{'ratio of steps/s, backend ' + results['settings']['backend']:<36} "
                     f"{'medians':>7} {'paired':>7} {'best':>7} {'cpu':>7}")
        for key, value in results["ratios"].items():
            target = results["targets"].get(key)
            mark = (f"   target >= {target['target']}: {'met' if target['met'] else 'NOT MET'} "
                    f"(best rounds: {'met' if target['met_by_best'] else 'NOT MET'})") if target else ""
            lines.append(f"{key:<36} {value:7.3f} {results['paired_ratios'][key]:7.3f} "
                         f"{results['best_ratios'][key]:7.3f} {results['cpu_ratios'][key]:7.3f}{mark}")
        lines.append("(medians: ratio of the loops' median steps/s; paired: median over rounds of the ratio within a round;\n"
                     " best: ratio of the fastest rounds, the least disturbed by other load; "
                     "cpu: inverse ratio of median CPU ms/step)")
        if results["settings"]["quick"]:
            lines.append("--quick: a smoke run; 5-step rounds are dominated by per-call costs, so these ratios mean little")
    lines.append(f"peak RSS {results['peak_rss_mib']:.0f} MiB (whole process); total {results['total_s']:.0f} s")
    for failure in results["weight_check_failures"]:
        lines.append(f"FAILED: {failure}")
    if not results["weight_check_failures"]:
        lines.append("weight check: every loop changed both networks' weights in every timed round")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"step_speed: loops {', '.join(args.loops)}; {args.rounds} rounds x {args.steps} steps", flush=True)
    results = measure(args)
    print()
    print(report(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 1 if results["weight_check_failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
