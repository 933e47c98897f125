"""Which example of a data set comes at which position of training: a pure function of (seed, epoch), in numpy.

Position ``p`` of a data set of ``size`` examples lies in epoch ``e = p // size``, and epoch ``e`` is
``np.random.default_rng([seed, e]).permutation(size)``: every example once per epoch, a new order
each epoch, and any position found by drawing its epoch alone, so a run resumed at step 10**6 starts
as cheaply as one at step 0. Every input pipeline (TensorFlow's, :mod:`ganframe.feed`'s) reads its
indices from here, so they train on the same examples in the same order.

Why this construction: it is numpy's Fisher-Yates shuffle over a PCG64 stream seeded by the pair, the
cheapest seeded permutation numpy offers (a few milliseconds for 200,000 examples, once per epoch) and
the same on every platform. Sorting the bit generator's raw output, which numpy pins more firmly, costs
2 to 6 times as much; numpy keeps a ``Generator``'s streams across releases unless a bug forces a change,
and since such a change would change every run's order, the tests pin a short one.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from ganframe.errors import ConfigError


def epoch(size: int, seed: int, index: int) -> np.ndarray:
    """The order of epoch ``index``: a permutation of ``range(size)`` seeded by ``(seed, index)``, int64."""
    return np.random.default_rng([seed, int(index)]).permutation(size).astype(np.int64, copy=False)


def chunks(size: int, seed: int, start: int, count: int) -> Iterator[np.ndarray]:
    """Endless: the indices at positions ``start`` to ``start + count - 1``, then the next ``count``, and
    so on across epochs, each epoch drawn once."""
    index, offset = divmod(start, size)
    ahead = epoch(size, seed, index)[offset:]
    while True:
        while len(ahead) < count:
            index += 1
            ahead = np.concatenate([ahead, epoch(size, seed, index)])
        yield ahead[:count]
        ahead = ahead[count:]


def indices(size: int, seed: int, start: int, count: int) -> np.ndarray:
    """The indices at positions ``start`` to ``start + count - 1``, drawing only the epochs they lie in."""
    return next(chunks(size, seed, start, count))


def step_indices(size: int, seed: int, per_step: int, step: int, steps: int) -> np.ndarray:
    """The indices of the examples that steps ``step`` to ``step + steps - 1`` train on (``per_step`` each)."""
    return indices(size, seed, step * per_step, steps * per_step)


def check_step(size: int | None, batch_size: int, n_critic: int = 1) -> None:
    """Refuse a step that needs more examples than the data set's ``size`` (each step takes ``n_critic``
    batches), which would hold one example twice; an unknown size passes."""
    per_step = batch_size * n_critic
    if size is not None and size < per_step:
        raise ConfigError(
            f"batch_size × n_critic = {per_step} is larger than the data set ({size} images); "
            f"lower batch_size to at most {size // n_critic}"
        )


def stream_seed(seed: int, start_step: int) -> int:
    """The shuffle seed of a stream read from ``start_step`` on: the same start, the same order; another start
    (a resume), another order."""
    return int(np.random.default_rng([seed, start_step]).integers(2**31))
