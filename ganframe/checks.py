"""Checks of a built GAN before its first step: the faults the conformance kit finds, found in every run.

A generator whose images leave the range it declares, a discriminator with more than one output
per image, a loss or penalty that is not a scalar: each trains without an error and learns
nothing useful. One small probe batch through the networks, the loss and the penalties, run
eagerly before anything is written, refuses them with a :class:`ConfigError` (exit 2) naming the
component and its plugin.
"""

from __future__ import annotations

from typing import Any, Sequence

import keras
import numpy as np

from ganframe.contract import DataSpec, Penalty
from ganframe.errors import ConfigError

#: Images in the probe batch.
PROBE = 4
#: How far outside its declared range a generator's value may lie (16-bit rounding of an activation's end).
RANGE_SLACK = 1e-3


def check_before_training(gan: Any, spec: DataSpec, architecture: str, loss: str,
                          penalties: Sequence[tuple[str, Penalty]]) -> None:
    """Refuse ``gan`` if its networks, loss or penalties break the contract on a probe batch.

    ``architecture``, ``loss`` and each penalty's name are how messages name them
    (:meth:`ganframe.plugins.Registry.describe`).
    """
    rng = np.random.default_rng(0)
    sampler = gan.sampler
    condition = None
    if sampler.takes_condition:
        if spec.condition_shape is None:
            raise ConfigError(f"{architecture} takes a condition with each image, but the data set has none "
                              "(DataSpec.condition_shape): train it on paired data")
        condition = rng.standard_normal((PROBE, *spec.condition_shape)).astype(np.float32)
    noise, fake_labels = sampler.noise(PROBE, rng), sampler.random_labels(PROBE, rng)
    fake = np.asarray(sampler(noise, fake_labels, training=False, condition=condition))
    if fake.shape[1:] != tuple(spec.shape):
        raise ConfigError(f"{architecture}: its generator made images of shape {fake.shape[1:]}, but the data's are "
                          f"{tuple(spec.shape)}")
    low, high = gan.output_range
    if not np.isfinite(fake).all() or fake.min() < low - RANGE_SLACK or fake.max() > high + RANGE_SLACK:
        raise ConfigError(
            f"{architecture}: its generator's images span [{np.nanmin(fake):g}, {np.nanmax(fake):g}] on a probe batch, "
            f"outside the range it declares, [{low:g}, {high:g}] (Networks.output_range): end the generator with "
            "the activation of that range (sigmoid for [0, 1], tanh for [-1, 1]) or declare the range it has")

    real = rng.uniform(low, high, fake.shape).astype(np.float32)
    labels = sampler.random_labels(PROBE, rng)
    examples = {key: keras.ops.convert_to_tensor(value) for key, value in
                (("image", real), ("label", labels), ("condition", condition)) if value is not None}
    noise = keras.ops.convert_to_tensor(noise)  # a network's inputs are all tensors or all arrays
    fake_labels = None if fake_labels is None else keras.ops.convert_to_tensor(fake_labels)
    updates = {network: gan.forward(network, examples, noise, fake_labels, np.int64(0), training=False)
               for network in ("discriminator", "generator")}
    shape = tuple(updates["discriminator"].real_logits.shape)
    if shape != (PROBE, 1):
        raise ConfigError(f"{architecture}: its discriminator returned shape {shape} for {PROBE} images, expected "
                          f"({PROBE}, 1): one raw logit per image")
    heads = updates["discriminator"].fake_heads
    for name, head in heads.items():
        if not head.shape or head.shape[0] != PROBE:
            raise ConfigError(f"{architecture}: its discriminator's head {name!r} has shape {tuple(head.shape)} for "
                              f"{PROBE} images: every head holds one row per image")
    for name, penalty in penalties:
        missing = [head for head in penalty.heads if head not in heads]
        if missing:
            returned = ", ".join(map(repr, ["logit", *heads]))
            raise ConfigError(
                f"{name}: it reads the discriminator's {' and '.join(map(repr, missing))} output, which {architecture} "
                f"does not return (it returns {returned}): choose an architecture option that adds it (the built-in "
                "ones: auxiliary_classifier = true for 'class', feature_head = true for 'features')")

    checks = [(loss, f"the {network}'s loss", gan.adversarial_loss, network) for network in ("discriminator", "generator")]
    checks += [(name, "the penalty", penalty, network) for name, penalty in penalties
               for network in ("discriminator", "generator") if penalty.joins(network)]
    for name, what, component, network in checks:
        value = np.asarray(component.update_loss(updates[network]))
        if value.shape != ():
            raise ConfigError(f"{name}: {what} has shape {value.shape} on a probe batch, expected a scalar "
                              "(the mean over the batch)")
        if not np.isfinite(value):
            raise ConfigError(f"{name}: {what} is {value} on a probe batch, where it must be finite")
