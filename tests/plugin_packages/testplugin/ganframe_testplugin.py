"""A tiny ganframe plugin: architecture ``tiny`` and loss ``lsq``. Uses only the public ganframe API."""

from pydantic import Field

import ganframe
from ganframe import AdversarialLoss, Networks, Options, hookimpl

if ganframe.CONTRACT_VERSION.split(".")[0] != "1":
    raise ImportError(
        f"ganframe-testplugin needs ganframe plugin contract 1.x, "
        f"but the installed ganframe has contract {ganframe.CONTRACT_VERSION}"
    )


class TinyOptions(Options):
    latent_dim: int = Field(8, gt=0)
    width: int = Field(16, gt=0)


def build_tiny(spec, options):
    import keras  # only when a network is built: listing plugins stays fast

    latent = keras.Input((options.latent_dim,))
    x = keras.layers.Dense(options.width)(latent)
    x = keras.layers.LeakyReLU(0.2)(x)
    x = keras.layers.Dense(spec.size, activation="sigmoid")(x)
    generator = keras.Model(latent, keras.layers.Reshape(spec.shape)(x), name="tiny_generator")

    image = keras.Input(spec.shape)
    y = keras.layers.Flatten()(image)
    y = keras.layers.Dense(options.width)(y)
    y = keras.layers.LeakyReLU(0.2)(y)
    discriminator = keras.Model(image, keras.layers.Dense(1)(y), name="tiny_discriminator")

    return Networks(generator, discriminator, latent_dim=options.latent_dim, output_range=(0.0, 1.0))


class LeastSquares(AdversarialLoss):
    """Least-squares GAN loss on D's raw outputs."""

    def discriminator_loss(self, real_logits, fake_logits):
        from keras import ops

        return 0.5 * (ops.mean(ops.square(real_logits - 1.0)) + ops.mean(ops.square(fake_logits)))

    def generator_loss(self, fake_logits):
        from keras import ops

        return 0.5 * ops.mean(ops.square(fake_logits - 1.0))


@hookimpl
def ganframe_register_architectures(register):
    register("tiny", build_tiny, "A very small dense GAN (tests).", TinyOptions)


@hookimpl
def ganframe_register_losses(register):
    register("lsq", lambda spec, options: LeastSquares(), "Least squares on logits (tests).")
