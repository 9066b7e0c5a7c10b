"""A collector's families: trades received, the websocket, gaps and their repair, the outbox,
feed states and coverage events; labels `exchange` (and `symbol` on counters and gauges only).

Each family is created once per `PlatformMetrics` (monitoring.metrics), on its registry.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from monitoring.metrics.histogram import LATENCY_BUCKETS, SymbolFreeHistogram


class CollectorMetrics:
    """Part of `PlatformMetrics`: creates these families on registry `r`."""

    def __init__(self, r: CollectorRegistry) -> None:
        self.trades_received = Counter(
            "trades_received",
            "Trades received from an exchange (live and backfilled)",
            ["exchange", "symbol"],
            registry=r,
        )
        self.collector_errors = Counter(
            "collector_errors",
            "Collector errors by type (malformed frames, transport, backfill...)",
            ["exchange", "error_type"],
            registry=r,
        )
        self.websocket_reconnections = Counter(
            "websocket_reconnections", "Websocket reconnections to an exchange", ["exchange"], registry=r
        )
        self.collector_status = Gauge(
            "collector_status",
            "1 while the collector for an exchange is running, 0 when stopped",
            ["exchange"],
            registry=r,
        )
        self.exchange_connected = Gauge(
            "exchange_connected", "1 while the websocket to an exchange is open", ["exchange"], registry=r
        )
        self.last_trade_timestamp = Gauge(
            "last_trade_timestamp",
            "Exchange time of the newest trade received, unix seconds",
            ["exchange", "symbol"],
            registry=r,
        )
        self.trade_gaps = Counter("trade_gaps", "Trade-id gaps detected", ["exchange", "symbol"], registry=r)
        self.trade_gap_missing = Counter(
            "trade_gap_missing_trades",
            "Trade ids found missing from the live stream",
            ["exchange", "symbol"],
            registry=r,
        )
        self.trades_backfilled = Counter(
            "trades_backfilled", "Missing trades recovered over REST", ["exchange", "symbol"], registry=r
        )
        self.trades_duplicate = Counter(
            "trades_duplicate",
            "Trades dropped as duplicates of ones already seen",
            ["exchange", "symbol"],
            registry=r,
        )
        self.trades_shed = Counter(
            "trades_shed",
            "Trades a collector could not queue for the bus (its outbox was full): repaired over REST later "
            "where the venue allows it, else recorded as an unverified interval",
            ["exchange"],
            registry=r,
        )
        self.collector_outbox = Gauge(
            "collector_outbox_trades",
            "Trades a collector has read and not yet handed to the bus",
            ["exchange"],
            registry=r,
        )
        self.feed_state = Gauge(
            "feed_state",
            "1 for the state a symbol's feed is in (streaming, quiet, disconnected, repairing), else 0",
            ["exchange", "symbol", "state"],
            registry=r,
        )
        self.coverage_events = Counter(
            "coverage_events",
            "Coverage events stored: gaps found, repaired, abandoned; unverifiable intervals",
            ["exchange", "kind"],
            registry=r,
        )
        self.unverified_seconds = Counter(
            "unverified_seconds",
            "Event-time seconds whose trades cannot be proven complete (no sequence, REST out of reach)",
            ["exchange"],
            registry=r,
        )
        self.coverage_holds_expired = Counter(
            "coverage_holds_expired",
            "Bar holds for a gap under repair lifted because the repair took too long",
            ["exchange"],
            registry=r,
        )
        self.trade_latency = SymbolFreeHistogram(
            "trade_latency_seconds",
            "Exchange event time to local receipt",
            ["exchange"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
