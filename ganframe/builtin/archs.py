"""Built-in architectures: the seed's dense GAN, a small DCGAN and an SNGAN-style ResNet.

Every discriminator ends in a linear layer with no activation: D emits one raw logit per
image and the losses apply the sigmoid in a numerically stable form. The generator's last
activation fixes its output range, which the returned :class:`~ganframe.Networks` declares
so the engine can check it against the data.

Each architecture supplies two bodies, G's (a code vector to an image) and D's feature
extractor φ (an image to a vector or a feature map); :func:`_networks` wires them into
functional models the same way for all three. So the options they share
(:class:`ArchOptions`) mean the same everywhere: ``conditional`` concatenates the class's
one-hot code to G's noise (Mirza & Osindero 2014) and makes D a projection discriminator
(Miyato & Koyama 2018), logit = ψ(φ(x)) + ⟨embed(y), φ(x)⟩, the projection on φ(x)
flattened; ``auxiliary_classifier`` gives G the class the same way but D a class head beside its
logit instead (AC-GAN, Odena et al. 2017), ``feature_head`` returns φ(x) as D's ``features``;
``spectral_norm`` wraps every weight of D, the class embedding included, in
``keras.layers.SpectralNormalization`` (Miyato et al. 2018).

G takes the one-hot code itself, not a learned embedding of it: an embedding E followed by
G's first layer W is a product E·W, whose class path then learns faster than the noise
path W alone; measured on a conditional dcgan, G came to ignore its noise and made one
image per class (docs/architectures.md, "Conditional generation").

Keras is imported inside the factories: listing plugins stays TensorFlow-free.
Layers are ``keras.layers`` only, so the networks are backend-portable. Built under a
``tf.distribute`` strategy, BatchNorm is synchronized across the replicas.
"""

from __future__ import annotations

from typing import Annotated, Any, Callable, Literal

from pydantic import Field

from ganframe import ConfigError, DataSpec, Networks, Options, hookimpl

OutputActivation = Literal["sigmoid", "tanh"]

#: The interval each output activation maps into (what ``Networks.output_range`` declares).
OUTPUT_RANGES: dict[str, tuple[float, float]] = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0)}

Width = Annotated[int, Field(gt=0)]
DropoutRate = Annotated[float, Field(ge=0.0, lt=1.0)]

#: A network body: a symbolic tensor in, a symbolic tensor out (Keras functional API).
Body = Callable[[Any], Any]

#: Negative slope of every LeakyReLU (the seed's and DCGAN's 0.2).
LEAKY_SLOPE = 0.2


class ArchOptions(Options):
    """Options every built-in architecture shares: the noise, G's output activation, conditioning, D's normalization."""

    latent_dim: int = Field(100, gt=0, description="Width of the noise vector G maps to an image.")
    output_activation: OutputActivation = Field(
        "sigmoid", description="G's last activation: sigmoid for data in [0, 1], tanh for data in [-1, 1]."
    )
    conditional: bool = Field(
        False,
        description="Class-conditional G and D (needs labelled data): G gets the class's one-hot code concatenated "
        "to its noise, D is a projection discriminator; both then take [inputs, labels].",
    )
    spectral_norm: bool = Field(
        False, description="Spectral normalization of every weight of D (keeps D's Lipschitz constant near 1)."
    )
    auxiliary_classifier: bool = Field(
        False,
        description="AC-GAN (needs labelled data): G takes the class as with conditional, D sees the image alone "
        "and names its class in a 'class' head; train with the 'classification' term.",
    )
    feature_head: bool = Field(
        False, description="D also returns the features its logit reads, as a 'features' head (feature_matching)."
    )


class DenseOptions(ArchOptions):
    """Options of ``dense``; the defaults are the seed's layer widths."""

    g_widths: tuple[Width, ...] = Field((256, 512, 1024), min_length=1, description="G's hidden Dense widths.")
    d_widths: tuple[Width, ...] = Field((1024, 512, 256), min_length=1, description="D's hidden Dense widths.")
    dropout: DropoutRate = Field(0.3, description="Dropout after each of D's hidden layers (0 disables it).")


class DCGANOptions(ArchOptions):
    """Options of ``dcgan``; ``base_channels`` is the width of G's last hidden block and D's first."""

    base_channels: int = Field(64, gt=0, description="Channels of the widest-resolution block; doubled per halving.")
    dropout: DropoutRate = Field(0.0, description="Dropout after each of D's conv blocks (0 disables it).")
    d_batchnorm: bool = Field(
        True, description="BatchNorm in D's conv blocks after the first; turn off with gradient penalties."
    )


class ResNetOptions(ArchOptions):
    """Options of ``resnet``; the paper's CIFAR-10 model has latent_dim 128, g_channels 256, d_channels 128."""

    latent_dim: int = Field(128, gt=0, description="Width of the noise vector G maps to an image.")
    g_channels: int = Field(64, gt=0, description="Channels of G's residual blocks (the paper's: 256).")
    d_channels: int = Field(64, gt=0, description="Channels of D's residual blocks (the paper's: 128).")
    spectral_norm: bool = Field(
        True, description="Spectral normalization of every weight of D (on, as in SNGAN; off for a plain ResNet D)."
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


def _sn(layer: Any, enabled: bool) -> Any:
    """``layer`` wrapped in spectral normalization when ``enabled``.

    Keras's wrapper divides the kernel variable itself by its largest singular value (one
    power iteration per training call; the iteration's vector ``u`` is a non-trainable
    variable, so checkpoints hold it).
    """
    import keras

    return keras.layers.SpectralNormalization(layer) if enabled else layer


def _chain(layers: list[Any], x: Any) -> Any:
    for layer in layers:
        x = layer(x)
    return x


def _one_hot(labels: Any, num_classes: int) -> Any:
    import keras

    return keras.layers.CategoryEncoding(num_classes, output_mode="one_hot")(labels)


def _class_embedding(labels: Any, num_classes: int, width: int, spectral_norm: bool = False) -> Any:
    """A learned (num_classes, width) class embedding of ``labels``.

    A one-hot code through a bias-free Dense layer: the same as an embedding lookup, but it
    takes spectral normalization (Keras's wrapper casts an Embedding's output to the integer
    dtype of its input).
    """
    import keras

    return _sn(keras.layers.Dense(width, use_bias=False), spectral_norm)(_one_hot(labels, num_classes))


def _with_labels(first: Any, conditional: bool) -> tuple[Any, Any]:
    """A model's inputs, ``first`` or ``[first, labels]``, and the labels input (None when unconditional)."""
    import keras

    if not conditional:
        return first, None
    labels = keras.Input((), dtype="int32", name="labels")
    return [first, labels], labels


def _networks(name: str, spec: DataSpec, options: ArchOptions, generator_body: Body, critic_features: Body,
              pool: Body | None = None) -> Networks:
    """G = body(noise [⊕ one_hot(y)]) and D = ψ(pool(φ(x))) [+ ⟨embed(y), flat(φ(x))⟩] as functional models.

    φ(x) is D's last hidden layer or feature map; ψ reads it pooled by ``pool`` (default:
    flattened), the class projection always flattened, so that it sees where features are: on
    a sum-pooled φ a conditional resnet's G barely learned its classes (docs/architectures.md).
    G is built before D, so layer by layer the weights are initialised in the order they appear.
    """
    import keras

    for option in ("conditional", "auxiliary_classifier"):
        if getattr(options, option) and not spec.num_classes:
            raise ConfigError(
                f"architecture {name!r} with {option} = true needs labelled data, but the data set has no classes "
                "(num_classes): use a labelled data set (mnist, digits, npz with labels_key, folder with labels = true)"
            )
    noise = keras.Input((options.latent_dim,), name="noise")
    inputs, labels = _with_labels(noise, options.conditional or options.auxiliary_classifier)
    code = noise
    if labels is not None:
        code = keras.layers.Concatenate()([noise, _one_hot(labels, spec.num_classes)])
    generator = keras.Model(inputs, generator_body(code), name="generator")

    image = keras.Input(spec.shape, name="image")
    inputs, labels = _with_labels(image, options.conditional)
    features = critic_features(image)
    if pool is None and len(features.shape) > 2:
        features = keras.layers.Flatten()(features)
    read = features if pool is None else pool(features)  # what the logit and the heads read
    logit = _sn(keras.layers.Dense(1), options.spectral_norm)(read)
    if labels is not None:
        flat = keras.layers.Flatten()(features) if len(features.shape) > 2 else features
        embedded = _class_embedding(labels, spec.num_classes, flat.shape[-1], options.spectral_norm)
        logit = keras.layers.Add()([logit, keras.layers.Dot(axes=1)([embedded, flat])])
    heads = {}
    if options.auxiliary_classifier:
        heads["class"] = _sn(keras.layers.Dense(spec.num_classes), options.spectral_norm)(read)
    if options.feature_head:
        heads["features"] = read
    discriminator = keras.Model(inputs, {"logit": logit, **heads} if heads else logit, name="discriminator")

    return Networks(
        generator=generator,
        discriminator=discriminator,
        latent_dim=options.latent_dim,
        output_range=OUTPUT_RANGES[options.output_activation],
        conditional=options.conditional or options.auxiliary_classifier,
        discriminator_conditional=options.conditional,
    )


# -- dense ------------------------------------------------------------------------------------


def build_dense(spec: DataSpec, options: DenseOptions) -> Networks:
    """The seed's multilayer perceptron GAN; fits any image shape, since it sees images flat."""
    import keras

    def generator(code: Any) -> Any:
        layers: list[Any] = []
        for width in options.g_widths:
            layers += [keras.layers.Dense(width), _batchnorm(momentum=0.8), keras.layers.LeakyReLU(LEAKY_SLOPE)]
        layers += [
            keras.layers.Dense(spec.size, activation=options.output_activation),
            keras.layers.Reshape(spec.shape),
        ]
        return _chain(layers, code)

    def critic(image: Any) -> Any:
        layers: list[Any] = [keras.layers.Flatten()]
        for width in options.d_widths:
            layers += [
                _sn(keras.layers.Dense(width), options.spectral_norm),
                keras.layers.LeakyReLU(LEAKY_SLOPE),
                *_dropout(options.dropout),
            ]
        return _chain(layers, image)

    return _networks("dense", spec, options, generator, critic)


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

    def generator(code: Any) -> Any:
        layers: list[Any] = [
            keras.layers.Dense(s0 * s0 * top, use_bias=False),
            keras.layers.Reshape((s0, s0, top)),
            _batchnorm(),
            keras.layers.ReLU(),
        ]
        for i in range(1, n_up):
            layers += [
                keras.layers.Conv2DTranspose(top // 2**i, DCGAN_KERNEL, strides=2, padding="same", use_bias=False),
                _batchnorm(),
                keras.layers.ReLU(),
            ]
        layers.append(
            keras.layers.Conv2DTranspose(
                spec.channels, DCGAN_KERNEL, strides=2, padding="same", activation=options.output_activation
            )
        )
        return _chain(layers, code)

    def critic(image: Any) -> Any:
        layers: list[Any] = []
        for i in range(n_up):
            normalise = options.d_batchnorm and i > 0
            conv = keras.layers.Conv2D(base * 2**i, DCGAN_KERNEL, strides=2, padding="same", use_bias=not normalise)
            layers.append(_sn(conv, options.spectral_norm))
            if normalise:
                layers.append(_batchnorm())
            layers += [keras.layers.LeakyReLU(LEAKY_SLOPE), *_dropout(options.dropout)]
        return _chain(layers, image)

    return _networks("dcgan", spec, options, generator, critic)


# -- resnet -----------------------------------------------------------------------------------

RESNET_SIZES = "square images whose side is a power of two >= 8 (8, 16, 32, 64, ...)"


def resnet_plan(spec: DataSpec) -> int:
    """How many 2x upsampling blocks take G from 4x4 to the image side (3 for 32x32).

    Raises ConfigError for other shapes.
    """
    side = spec.height
    if spec.height == spec.width and side >= 8 and side & (side - 1) == 0:
        return side.bit_length() - 3  # 4 * 2**n_up == side
    raise ConfigError(
        f"architecture 'resnet' supports {RESNET_SIZES}; the data is "
        f"{spec.height}x{spec.width}x{spec.channels}. Use --arch dense for other sizes."
    )


def _up_block(x: Any, channels: int) -> Any:
    """SNGAN's generator block: BN, ReLU, 2x nearest upsampling, conv 3x3, BN, ReLU, conv 3x3; shortcut:
    upsampling, conv 1x1.
    """
    import keras

    residual = _chain([
        _batchnorm(), keras.layers.ReLU(), keras.layers.UpSampling2D(2),
        keras.layers.Conv2D(channels, 3, padding="same"),
        _batchnorm(), keras.layers.ReLU(),
        keras.layers.Conv2D(channels, 3, padding="same"),
    ], x)
    shortcut = _chain([keras.layers.UpSampling2D(2), keras.layers.Conv2D(channels, 1)], x)
    return keras.layers.Add()([residual, shortcut])


def _down_block(x: Any, channels: int, spectral_norm: bool, downsample: bool, first: bool) -> Any:
    """SNGAN's discriminator block: ReLU, conv 3x3, ReLU, conv 3x3, then 2x2 average pooling if ``downsample``.

    The shortcut is a conv 1x1 (then pooling) where the shape changes, else the identity. The
    first block skips the leading ReLU, which would clip the image, and pools before its
    shortcut's convolution, as in the paper's code ("optimized block").
    """
    import keras

    def conv(size: int) -> Any:
        return _sn(keras.layers.Conv2D(channels, size, padding="same"), spectral_norm)

    pool = [keras.layers.AveragePooling2D(2)] if downsample else []
    residual = _chain([*([] if first else [keras.layers.ReLU()]), conv(3), keras.layers.ReLU(), conv(3), *pool], x)
    if first:
        shortcut = _chain([*pool, conv(1)], x)
    elif downsample or x.shape[-1] != channels:
        shortcut = _chain([conv(1), *pool], x)
    else:
        shortcut = x
    return keras.layers.Add()([residual, shortcut])


def build_resnet(spec: DataSpec, options: ResNetOptions) -> Networks:
    """The SNGAN ResNet (Miyato et al. 2018, appendix B, the CIFAR-10 model) for any side 2^k >= 8.

    G: noise → 4x4 map, one upsampling residual block per doubling, BN, ReLU, conv 3x3 and the
    output activation. D: residual blocks halving the side down to 8x8, then two more at 8x8,
    ReLU, global sum pooling, one linear logit (a conditional D projects its class embedding on
    the last map flattened, not pooled). At 32x32: three up blocks, four D blocks.
    """
    import keras

    n_up = resnet_plan(spec)
    n_down = n_up - 1  # D's blocks that halve the side: from spec.height down to 8

    def generator(code: Any) -> Any:
        x = _chain([keras.layers.Dense(4 * 4 * options.g_channels), keras.layers.Reshape((4, 4, options.g_channels))],
                   code)
        for _ in range(n_up):
            x = _up_block(x, options.g_channels)
        return _chain([
            _batchnorm(), keras.layers.ReLU(),
            keras.layers.Conv2D(spec.channels, 3, padding="same", activation=options.output_activation),
        ], x)

    def critic(image: Any) -> Any:
        x = image
        for i in range(n_down + 2):
            x = _down_block(x, options.d_channels, options.spectral_norm, downsample=i < n_down, first=i == 0)
        return keras.layers.ReLU()(x)

    def global_sum_pooling(x: Any) -> Any:
        return keras.ops.sum(x, axis=(1, 2))

    return _networks("resnet", spec, options, generator, critic, pool=global_sum_pooling)


@hookimpl
def ganframe_register_architectures(register: Any) -> None:
    """Register the built-in architectures."""
    register("dense", build_dense, "The seed's dense GAN (MLP G and D); works for any image shape.", DenseOptions)
    register("dcgan", build_dcgan, f"A small convolutional DCGAN for {DCGAN_SIZES}.", DCGANOptions)
    register("resnet", build_resnet, f"The SNGAN ResNet (spectral norm in D) for {RESNET_SIZES}.", ResNetOptions)
