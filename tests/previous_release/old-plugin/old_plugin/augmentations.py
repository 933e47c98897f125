"""Augmentation "old-plugin-flip": flips half the images left to right."""

from ganframe import Augmentation, DataSpec, NoOptions


class RandomFlip(Augmentation):
    def __call__(self, images, seed):
        import keras

        flip = keras.random.uniform((keras.ops.shape(images)[0], 1, 1, 1), seed=seed) < 0.5
        return keras.ops.where(flip, keras.ops.flip(images, axis=2), images)


def build_flip(spec: DataSpec, options: NoOptions) -> RandomFlip:
    return RandomFlip()
