"""Histogram buckets, and the histogram type every platform histogram uses (it drops a `symbol` label)."""

from __future__ import annotations

from typing import Any

from prometheus_client import Histogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
FAST_BUCKETS = (0.000_01, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0)

DROPPED_HISTOGRAM_LABELS = frozenset({"symbol"})


class SymbolFreeHistogram(Histogram):
    """A histogram that accepts, and drops, a `symbol=` keyword in `labels(...)` when it has no such label.

    The user guide times bars with `bar_completion_duration.labels(symbol=..., timeframe=...)`; a
    histogram per symbol would multiply its buckets by every symbol listed, so the call is accepted and
    lands on the series of the remaining labels (`timeframe`). Positional values must match the
    platform's label names, as for any metric.
    """

    def labels(self, *labelvalues: Any, **labelkwargs: Any) -> SymbolFreeHistogram:
        if labelkwargs and not DROPPED_HISTOGRAM_LABELS.isdisjoint(labelkwargs):
            own = self._labelnames
            labelkwargs = {
                k: v for k, v in labelkwargs.items() if k in own or k not in DROPPED_HISTOGRAM_LABELS
            }
        return super().labels(*labelvalues, **labelkwargs)
