"""Built-in architectures: the seed's dense GAN and a small DCGAN.

Both discriminators end in ``Dense(1)`` with no activation: D emits one raw
logit per image and the losses apply the sigmoid in a numerically stable form.
The generator's last activation fixes its output range, which the returned
:class:`~ganframe.Networks` declares so the engine can check it against the data.

Keras is imported inside the factories: listing plugins stays TensorFlow-free.
Layers are ``keras.layers`` only, so the networks are backend-portable. Built under a
``tf.distribute`` strategy, BatchNorm is synchronized across the replicas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field

from ganframe import ConfigError, DataSpec, Networks, Options, hookimpl

if TYPE_CHECKING:
    import keras

OutputActivation = Literal["sigmoid", "tanh"]

#: The interval each output activation maps into (what ``Networks.output_range`` declares).
OUTPUT_RANGES: dict[str, tuple[float, float]] = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0)}

Width = Annotated[int, Field(gt=0)]
DropoutRate = Annotated[float, Field(ge=0.0, lt=1.0)]

#: Negative slope of every LeakyReLU (the seed's and DCGAN's 0.2).
LEAKY_SLOPE = 0.2


class GeneratorOptions(Options):
    """Options every built-in architecture shares: the noise width and G's output activation."""

    latent_dim: int = Field(100, gt=0, description="Width of the noise vector G maps to an image.")
    output_activation: OutputActivation = Field(
        "sigmoid", description="G's last activation: sigmoid for data in [0, 1], tanh for data in [-1, 1]."
    )


class DenseOptions(GeneratorOptions):
    """Options of ``dense``; the defaults are the seed's layer widths."""

    g_widths: tuple[Width, ...] = Field((256, 512, 1024), min_length=1, description="G's hidden Dense widths.")
    d_widths: tuple[Width, ...] = Field((1024, 512, 256), min_length=1, description="D's hidden Dense widths.")
    dropout: DropoutRate = Field(0.3, description="Dropout after each of D's hidden layers (0 disables it).")


class DCGANOptions(GeneratorOptions):
    """Options of ``dcgan``; ``base_channels`` is the width of G's last hidden block and D's first."""

    base_channels: int = Field(64, gt=0, description="Channels of the widest-resolution block; doubled per halving.")
    dropout: DropoutRate = Field(0.0, description="Dropout after each of D's conv blocks (0 disables it).")
    d_batchnorm: bool = Field(
        True, description="BatchNorm in D's conv blocks after the first; turn off with gradient penalties."
    )


def _networks(generator: keras.Model, discriminator: keras.Model, options: GeneratorOptions) -> Networks:
    return Networks(
        generator=generator,
        discriminator=discriminator,
        latent_dim=options.latent_dim,
        output_range=OUTPUT_RANGES[options.output_activation],
    )


def _dropout(rate: float) -> list[Any]:
    """A Dropout layer, or nothing when the rate is 0 (keeps the model summary honest)."""
    import keras

    return [keras.layers.Dropout(rate)] if rate > 0 else []


def _batchnorm(**options: Any) -> Any:
    """BatchNorm; built under a strategy, synchronized: its statistics are then the global batch's,
    as on one device, not each replica's slice's.
    """
    import keras

    from ganframe import distributed

    return keras.layers.BatchNormalization(synchronized=distributed(), **options)


# -- dense ------------------------------------------------------------------------------------


def build_dense(spec: DataSpec, options: DenseOptions) -> Networks:
    """The seed's multilayer perceptron GAN; fits any image shape, since it sees images flat."""
    import keras

    g_layers: list[Any] = [keras.Input((options.latent_dim,))]
    for width in options.g_widths:
        g_layers += [
            keras.layers.Dense(width),
            _batchnorm(momentum=0.8),
            keras.layers.LeakyReLU(LEAKY_SLOPE),
        ]
    g_layers += [
        keras.layers.Dense(spec.size, activation=options.output_activation),
        keras.layers.Reshape(spec.shape),
    ]

    d_layers: list[Any] = [keras.Input(spec.shape), keras.layers.Flatten()]
    for width in options.d_widths:
        d_layers += [keras.layers.Dense(width), keras.layers.LeakyReLU(LEAKY_SLOPE), *_dropout(options.dropout)]
    d_layers.append(keras.layers.Dense(1))

    return _networks(
        keras.Sequential(g_layers, name="generator"),
        keras.Sequential(d_layers, name="discriminator"),
        options,
    )


# -- dcgan ------------------------------------------------------------------------------------

#: Kernel of every (transposed) convolution: divisible by the stride 2, which
#: avoids the checkerboard artefacts of uneven overlap (Odena et al. 2016).
DCGAN_KERNEL = 4

DCGAN_SIZES = "square images of side 28 or a power of two >= 16 (16, 32, 64, ...)"


def dcgan_plan(spec: DataSpec) -> tuple[int, int]:
    """(s0, n_up): G's first map side and how many stride-2 upsamplings reach the image side.

    Raises ConfigError for shapes the stride-2 ladder cannot reach.
    """
    side = spec.height
    if spec.height == spec.width:
        if side == 28:
            return 7, 2
        if side >= 16 and side & (side - 1) == 0:
            return 4, side.bit_length() - 3  # 4 * 2**n_up == side
    raise ConfigError(
        f"architecture 'dcgan' supports {DCGAN_SIZES}; the data is "
        f"{spec.height}x{spec.width}x{spec.channels}. Use --arch dense for other sizes."
    )


def build_dcgan(spec: DataSpec, options: DCGANOptions) -> Networks:
    """A small DCGAN (Radford et al. 2016): strided convolutions, BatchNorm, ReLU in G, LeakyReLU in D."""
    import keras

    s0, n_up = dcgan_plan(spec)
    base = options.base_channels
    top = base * 2 ** (n_up - 1)  # channels of G's first map; halved at each upsampling

    g_layers: list[Any] = [
        keras.Input((options.latent_dim,)),
        keras.layers.Dense(s0 * s0 * top, use_bias=False),
        keras.layers.Reshape((s0, s0, top)),
        _batchnorm(),
        keras.layers.ReLU(),
    ]
    for i in range(1, n_up):
        g_layers += [
            keras.layers.Conv2DTranspose(top // 2**i, DCGAN_KERNEL, strides=2, padding="same", use_bias=False),
            _batchnorm(),
            keras.layers.ReLU(),
        ]
    g_layers.append(
        keras.layers.Conv2DTranspose(
            spec.channels, DCGAN_KERNEL, strides=2, padding="same", activation=options.output_activation
        )
    )

    d_layers: list[Any] = [keras.Input(spec.shape)]
    for i in range(n_up):
        normalise = options.d_batchnorm and i > 0
        d_layers.append(
            keras.layers.Conv2D(base * 2**i, DCGAN_KERNEL, strides=2, padding="same", use_bias=not normalise)
        )
        if normalise:
            d_layers.append(_batchnorm())
        d_layers += [keras.layers.LeakyReLU(LEAKY_SLOPE), *_dropout(options.dropout)]
    d_layers += [keras.layers.Flatten(), keras.layers.Dense(1)]

    return _networks(
        keras.Sequential(g_layers, name="generator"),
        keras.Sequential(d_layers, name="discriminator"),
        options,
    )


@hookimpl
def ganframe_register_architectures(register: Any) -> None:
    """Register the built-in architectures."""
    register("dense", build_dense, "The seed's dense GAN (MLP G and D); works for any image shape.", DenseOptions)
    register("dcgan", build_dcgan, f"A small convolutional DCGAN for {DCGAN_SIZES}.", DCGANOptions)
