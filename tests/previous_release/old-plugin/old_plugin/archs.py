"""Architecture "old-plugin-mlp": a small dense GAN for any image shape."""

from pydantic import Field

from ganframe import DataSpec, Networks, Options


class MlpOptions(Options):
    latent_dim: int = Field(32, gt=0, description="size of the generator's noise input")
    width: int = Field(128, gt=0, description="hidden width of both networks")


def build_mlp(spec: DataSpec, options: MlpOptions) -> Networks:
    import keras  # inside the factory: listing plugins stays fast (no TensorFlow)

    low, high = spec.value_range
    if (low, high) == (0.0, 1.0):
        activation, output_range = "sigmoid", (0.0, 1.0)
    elif (low, high) == (-1.0, 1.0):
        activation, output_range = "tanh", (-1.0, 1.0)
    else:
        raise ValueError(f"old-plugin-mlp supports data in [0, 1] or [-1, 1], not {spec.value_range}")

    noise = keras.Input((options.latent_dim,))
    x = keras.layers.Dense(options.width)(noise)
    x = keras.layers.LeakyReLU(0.2)(x)
    x = keras.layers.Dense(options.width * 2)(x)
    x = keras.layers.LeakyReLU(0.2)(x)
    x = keras.layers.Dense(spec.size, activation=activation)(x)
    generator = keras.Model(noise, keras.layers.Reshape(spec.shape)(x), name="old_plugin_generator")

    image = keras.Input(spec.shape)
    y = keras.layers.Flatten()(image)
    y = keras.layers.Dense(options.width * 2)(y)
    y = keras.layers.LeakyReLU(0.2)(y)
    y = keras.layers.Dense(options.width)(y)
    y = keras.layers.LeakyReLU(0.2)(y)
    logit = keras.layers.Dense(1)(y)  # one raw logit per image: the losses apply the sigmoid
    discriminator = keras.Model(image, logit, name="old_plugin_discriminator")

    return Networks(generator, discriminator, latent_dim=options.latent_dim, output_range=output_range)
