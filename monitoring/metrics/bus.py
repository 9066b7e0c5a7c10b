"""The trade bus's families (Redis Streams or in-process), labelled by `bus`: published trades,
backpressure waits, queue depth, dead letters.

Each family is created once per `PlatformMetrics` (monitoring.metrics), on its registry.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class BusMetrics:
    """Part of `PlatformMetrics`: creates these families on registry `r`."""

    def __init__(self, r: CollectorRegistry) -> None:
        self.bus_dead_letters = Counter(
            "bus_dead_letters",
            "Bus content set aside because it could not be stored (store refused it, undecodable entry)",
            ["bus", "reason"],
            registry=r,
        )
        self.bus_published = Counter(
            "bus_trades_published", "Trades published to the bus", ["bus"], registry=r
        )
        self.bus_backpressure = Counter(
            "bus_backpressure_waits",
            "Times a publisher waited because the bus queue was full",
            ["bus"],
            registry=r,
        )
        self.bus_queue_depth = Gauge(
            "bus_queue_depth",
            "Trades waiting in the bus (in-process queue or unacknowledged stream)",
            ["bus"],
            registry=r,
        )
