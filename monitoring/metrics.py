"""Every metric of the platform, defined once, with bounded labels.

Names are a public interface: dashboards and alert rules use them. Histograms never carry a `symbol`
label. Components receive a `PlatformMetrics` (default: `METRICS`, on the default registry); tests build
their own on a fresh `CollectorRegistry()` or read deltas with `REGISTRY.get_sample_value`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, Info

from monitoring.timing import track_time

if TYPE_CHECKING:  # served lazily by __getattr__: monitoring.server imports this module
    from monitoring.server import MetricsServer, set_build_info, start_metrics_server

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
FAST_BUCKETS = (0.000_01, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0)

CIRCUIT_STATES = {"closed": 0, "open": 1, "half_open": 2}
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


class PlatformMetrics:
    """The platform's metric objects, registered on one registry."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.registry = registry
        r = registry
        # Collector
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
        # Bus
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
        # Processing
        self.bars_completed = Counter(
            "bars_completed", "Bars closed", ["exchange", "symbol", "timeframe"], registry=r
        )
        self.bar_completion_duration = SymbolFreeHistogram(
            "bar_completion_duration_seconds",
            "Bar end (by event time) to the bar stored and published",
            ["timeframe"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.indicator_calculation_duration = SymbolFreeHistogram(
            "indicator_calculation_duration_seconds",
            "Time to update the indicators on a closed bar (indicator=all: the engine, one call)",
            ["indicator"],
            buckets=FAST_BUCKETS,
            registry=r,
        )
        self.features_calculated = Counter(
            "features_calculated", "Feature vectors calculated on closed bars", registry=r
        )
        self.feature_calculation_duration = SymbolFreeHistogram(
            "feature_calculation_duration_seconds",
            "Time to calculate the features of one bar",
            buckets=FAST_BUCKETS,
            registry=r,
        )
        self.late_trades = Counter(
            "late_trades",
            "Trades that arrived after their bar closed (stored, bar not revised)",
            ["exchange", "symbol"],
            registry=r,
        )
        self.trades_processed = Counter(
            "trades_processed", "Trades applied to bars by the processor", ["exchange"], registry=r
        )
        self.trades_unreadable = Counter(
            "trades_unreadable",
            "Stored trades left out of bars: price or size not a plain decimal",
            ["exchange", "symbol"],
            registry=r,
        )
        self.bars_by_coverage = Counter(
            "bars_by_coverage",
            "Closed bars by coverage: complete, repaired, incomplete, unverifiable (processor/coverage.py)",
            ["exchange", "timeframe", "coverage"],
            registry=r,
        )
        self.bars_coverage_revised = Counter(
            "bars_coverage_revised",
            "Stored bars made incomplete afterwards: a trade of theirs arrived after they closed",
            ["exchange", "timeframe"],
            registry=r,
        )
        self.bars_verified = Counter(
            "bars_verified",
            "Closed 1m bars checked against the venue's own candles: match, mismatch (a differing or missing"
            " minute on either side), unavailable (the venue serves no candles, or its REST API failed)",
            ["exchange", "result"],
            registry=r,
        )
        # Database
        self.db_queries = Counter(
            "db_queries", "Database operations by outcome", ["operation", "status"], registry=r
        )
        self.db_query_duration = SymbolFreeHistogram(
            "db_query_duration_seconds",
            "Database operation duration",
            ["operation"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.db_connection_pool_size = Gauge(
            "db_connection_pool_size", "Connections in the database pool", registry=r
        )
        self.db_connections_available = Gauge(
            "db_connections_available", "Idle connections available in the database pool", registry=r
        )
        self.db_rows_written = Counter(
            "db_rows_written", "Rows written to the database", ["table"], registry=r
        )
        # Cache
        self.cache_hits = Counter("cache_hits", "Cache hits", ["cache"], registry=r)
        self.cache_misses = Counter("cache_misses", "Cache misses", ["cache"], registry=r)
        self.cache_size_bytes = Gauge("cache_size_bytes", "Bytes held by the latest-value cache", registry=r)
        # API
        self.http_requests = Counter(
            "http_requests",
            "HTTP requests by route template and status",
            ["method", "endpoint", "status"],
            registry=r,
        )
        self.http_request_duration = SymbolFreeHistogram(
            "http_request_duration_seconds",
            "HTTP request duration by route template",
            ["method", "endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.websocket_connections = Gauge(
            "websocket_connections", "Open API websocket connections", registry=r
        )
        self.websocket_messages_sent = Counter(
            "websocket_messages_sent", "Messages sent to API websocket clients", registry=r
        )
        self.rate_limit_exceeded = Counter(
            "rate_limit_exceeded", "Requests refused by the API rate limiter", ["endpoint"], registry=r
        )
        self.http_shed = Counter(
            "http_shed",
            "API connections closed and requests refused by the server's limits "
            "(header/body/send timeout, connection limit, body too large, overloaded, websocket limit)",
            ["reason"],
            registry=r,
        )
        # Circuit breaker
        self.circuit_breaker_state = Gauge(
            "circuit_breaker_state", "Circuit state: 0 closed, 1 open, 2 half-open", ["component"], registry=r
        )
        self.circuit_breaker_transitions = Counter(
            "circuit_breaker_transitions",
            "Circuit state transitions",
            ["component", "from_state", "to_state"],
            registry=r,
        )
        self.circuit_breaker_failures = Counter(
            "circuit_breaker_failures", "Failures counted by a circuit breaker", ["component"], registry=r
        )
        # Data quality
        self.data_quality_score = Gauge(
            "data_quality_score",
            "Share of recent quality checks passed, 0 to 1",
            ["exchange", "symbol"],
            registry=r,
        )
        self.data_quality_checks = Counter(
            "data_quality_checks", "Data-quality checks by outcome", ["check", "result"], registry=r
        )
        self.data_anomalies_detected = Counter(
            "data_anomalies_detected",
            "Anomalies detected in trades or bars",
            ["exchange", "symbol", "anomaly_type"],
            registry=r,
        )
        # Logging
        self.log_events_sampled_out = Counter(
            "log_events_sampled_out",
            "Routine log events not written because of sampling (LOG_SAMPLE_RATE)",
            ["event_type"],
            registry=r,
        )
        # Build
        self.build_info = Info("build", "Platform build and runtime versions", registry=r)


METRICS = PlatformMetrics()


# The families as module-level names, as the user guide imports them
# (`from monitoring.metrics import trades_received_total`): each is the very object `METRICS` holds, so
# what user code records lands on the platform's own series. Named as exposed on /metrics; histograms
# also without their `_seconds` unit, as the guide spells them.
trades_received_total: Counter = METRICS.trades_received
collector_errors_total: Counter = METRICS.collector_errors
websocket_reconnections_total: Counter = METRICS.websocket_reconnections
collector_status: Gauge = METRICS.collector_status
exchange_connected: Gauge = METRICS.exchange_connected
last_trade_timestamp: Gauge = METRICS.last_trade_timestamp
trade_gaps_total: Counter = METRICS.trade_gaps
trade_gap_missing_trades_total: Counter = METRICS.trade_gap_missing
trades_backfilled_total: Counter = METRICS.trades_backfilled
trades_duplicate_total: Counter = METRICS.trades_duplicate
trades_shed_total: Counter = METRICS.trades_shed
collector_outbox_trades: Gauge = METRICS.collector_outbox
feed_state: Gauge = METRICS.feed_state
coverage_events_total: Counter = METRICS.coverage_events
unverified_seconds_total: Counter = METRICS.unverified_seconds
coverage_holds_expired_total: Counter = METRICS.coverage_holds_expired
trade_latency_seconds: SymbolFreeHistogram = METRICS.trade_latency
trade_latency: SymbolFreeHistogram = METRICS.trade_latency
bus_dead_letters_total: Counter = METRICS.bus_dead_letters
bus_trades_published_total: Counter = METRICS.bus_published
bus_backpressure_waits_total: Counter = METRICS.bus_backpressure
bus_queue_depth: Gauge = METRICS.bus_queue_depth
bars_completed_total: Counter = METRICS.bars_completed
bar_completion_duration_seconds: SymbolFreeHistogram = METRICS.bar_completion_duration
bar_completion_duration: SymbolFreeHistogram = METRICS.bar_completion_duration
indicator_calculation_duration_seconds: SymbolFreeHistogram = METRICS.indicator_calculation_duration
indicator_calculation_duration: SymbolFreeHistogram = METRICS.indicator_calculation_duration
features_calculated_total: Counter = METRICS.features_calculated
feature_calculation_duration_seconds: SymbolFreeHistogram = METRICS.feature_calculation_duration
feature_calculation_duration: SymbolFreeHistogram = METRICS.feature_calculation_duration
late_trades_total: Counter = METRICS.late_trades
trades_processed_total: Counter = METRICS.trades_processed
trades_unreadable_total: Counter = METRICS.trades_unreadable
bars_by_coverage_total: Counter = METRICS.bars_by_coverage
bars_coverage_revised_total: Counter = METRICS.bars_coverage_revised
bars_verified_total: Counter = METRICS.bars_verified
db_queries_total: Counter = METRICS.db_queries
db_query_duration_seconds: SymbolFreeHistogram = METRICS.db_query_duration
db_query_duration: SymbolFreeHistogram = METRICS.db_query_duration
db_connection_pool_size: Gauge = METRICS.db_connection_pool_size
db_connections_available: Gauge = METRICS.db_connections_available
db_rows_written_total: Counter = METRICS.db_rows_written
cache_hits_total: Counter = METRICS.cache_hits
cache_misses_total: Counter = METRICS.cache_misses
cache_size_bytes: Gauge = METRICS.cache_size_bytes
http_requests_total: Counter = METRICS.http_requests
http_request_duration_seconds: SymbolFreeHistogram = METRICS.http_request_duration
http_request_duration: SymbolFreeHistogram = METRICS.http_request_duration
websocket_connections: Gauge = METRICS.websocket_connections
websocket_messages_sent_total: Counter = METRICS.websocket_messages_sent
rate_limit_exceeded_total: Counter = METRICS.rate_limit_exceeded
http_shed_total: Counter = METRICS.http_shed
circuit_breaker_state: Gauge = METRICS.circuit_breaker_state
circuit_breaker_transitions_total: Counter = METRICS.circuit_breaker_transitions
circuit_breaker_failures_total: Counter = METRICS.circuit_breaker_failures
data_quality_score: Gauge = METRICS.data_quality_score
data_quality_checks_total: Counter = METRICS.data_quality_checks
data_anomalies_detected_total: Counter = METRICS.data_anomalies_detected
log_events_sampled_out_total: Counter = METRICS.log_events_sampled_out
build_info: Info = METRICS.build_info


_SERVER_NAMES = frozenset({"MetricsServer", "set_build_info", "start_metrics_server"})


def __getattr__(name: str) -> Any:
    """`start_metrics_server`, `set_build_info` and `MetricsServer`, the very objects of
    monitoring.server, imported on first use (monitoring.server imports this module)."""
    if name in _SERVER_NAMES:
        from monitoring import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


FAMILIES: dict[str, Counter | Gauge | Histogram | Info] = {
    name: value
    for name, value in list(globals().items())
    if not name.startswith("_") and isinstance(value, Counter | Gauge | Histogram | Info)
}
"""Every module-level metric name -> its object (docs and tests check the catalogue against it)."""

__all__ = [  # the families are listed once, above
    "CIRCUIT_STATES",
    "FAMILIES",
    "FAST_BUCKETS",
    "LATENCY_BUCKETS",
    "METRICS",
    "MetricsServer",
    "PlatformMetrics",
    "SymbolFreeHistogram",
    "set_build_info",
    "start_metrics_server",
    "track_time",
    *FAMILIES,
]
