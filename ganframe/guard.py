"""Watching the engine's divergence counters from outside the compiled step.

The step itself skips every non-finite update (see :mod:`ganframe.engine`). Skips that
pile up mean training has left the rails: :class:`DivergenceGuard` counts the skips since
the newest checkpoint and, past ``max_skips``, aborts ``fit`` with :class:`Diverged`.
``ganframe.run.train`` then rolls back to that checkpoint (see docs/reliability.md).
"""

from __future__ import annotations

import math
from typing import Any

import keras

NETWORKS = {"d": "discriminator", "g": "generator"}


class Diverged(Exception):
    """Raised out of ``fit`` by :class:`DivergenceGuard`; carries what was last non-finite."""

    def __init__(self, step: int, network: str, value: float, skips: int) -> None:
        self.step, self.network, self.value, self.skips = step, network, value, skips
        super().__init__(self.describe())

    def describe(self) -> str:
        """E.g. "the discriminator's update at step 17 was non-finite (loss nan); 11 updates skipped"."""
        what = f"loss {self.value:g}" + ("" if not math.isfinite(self.value) else ", gradients not finite")
        return (f"the {self.network}'s update at step {self.step} was non-finite ({what}); "
                f"{self.skips} updates skipped since the newest checkpoint")


def last_bad_update(gan: Any) -> tuple[int, str, float]:
    """(step, network, loss) of the most recent skipped update (within one step, G's comes after D's)."""
    state = gan.skip_state
    candidates = [
        (int(state[f"{net}_bad_step"].numpy()), order, NETWORKS[net], float(state[f"{net}_bad_loss"].numpy()))
        for order, net in enumerate(("d", "g"))
        if int(state[f"{net}_skipped"].numpy()) > 0
    ]
    if not candidates:
        return gan.global_step, "discriminator", float("nan")
    step, _, network, value = max(candidates)
    return step, network, value


class DivergenceGuard(keras.callbacks.Callback):
    """Aborts ``fit`` (raising :class:`Diverged`) once more than ``max_skips`` updates were skipped
    since the newest checkpoint was written or loaded.

    It raises rather than setting ``stop_training`` so that no ``on_train_end`` runs: the
    checkpoint callback would otherwise save the diverging state as the newest checkpoint.
    Put it first among the callbacks, for the same reason.
    """

    def __init__(self, max_skips: int) -> None:
        super().__init__()
        self.max_skips = max_skips

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        skips = sum(self.model.skipped.values()) - self.model.checkpointed_skips
        if skips > self.max_skips:
            step, network, value = last_bad_update(self.model)
            raise Diverged(step, network, value, skips)
