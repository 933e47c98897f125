"""Interval means: each logged number is the mean over the steps since the previous report.

The engine's metrics (``d_loss``, ``g_loss``, ``d_real``, ``d_fake``) are Keras ``Mean``
trackers, running since training began, and Keras hands those running means to every
callback as ``logs``. A running mean at step 3000 still carries step 1: it says little about
now. So the progress line, ``metrics.csv``, TensorBoard and any callback that wants "the
losses lately" take interval means instead: the difference of the trackers' totals and counts
between two reports. Nothing is reset, so callbacks never disturb one another.
"""

from __future__ import annotations

from typing import Any


class IntervalMeans:
    """Means of ``model.metrics`` over the steps between two calls of :meth:`take`.

    Create it in ``on_train_begin`` (the trackers' current totals are the baseline);
    each ``take()`` returns ``{name: mean since the previous take}`` and starts a new interval.
    A metric with no new update in the interval is left out: with the divergence guard on, a step
    whose value was not finite does not count, so an interval of skipped steps has no mean.
    """

    def __init__(self, model: Any) -> None:
        self.model = model
        self.sums = self._sums()

    def _sums(self) -> dict[str, tuple[float, float]]:
        return {m.name: (float(m.total.numpy()), float(m.count.numpy()))
                for m in self.model.metrics if hasattr(m, "total") and hasattr(m, "count")}

    def take(self) -> dict[str, float]:
        """The means since the previous call (or since creation), and a new interval from now."""
        sums, means = self._sums(), {}
        for name, (total, count) in sums.items():
            old_total, old_count = self.sums.get(name, (0.0, 0.0))
            if count < old_count:  # the trackers were reset (a new fit): their totals are the interval's
                old_total, old_count = 0.0, 0.0
            if count > old_count:
                means[name] = (total - old_total) / (count - old_count)
        self.sums = sums
        return means
