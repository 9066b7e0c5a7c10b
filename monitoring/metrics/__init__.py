"""Every metric of the platform, defined once, with bounded labels.

Names are a public interface: dashboards and alert rules use them. Histograms never carry a `symbol`
label. Components receive a `PlatformMetrics` (default: `METRICS`, on the default registry); tests build
their own on a fresh `CollectorRegistry()` or read deltas with `REGISTRY.get_sample_value`.

The families are defined by stage, each module one part of `PlatformMetrics`:
    collector.py   trades received, websocket, gaps and repair, outbox, feed states, coverage events
    bus.py         published trades, backpressure, queue depth, dead letters
    processing.py  bars, indicators, features, late trades, bar verification, data quality
    storage.py     database operations and pool, rows written; the latest-value cache
    api.py         HTTP requests, API websockets, rate limiting, load shedding
    runtime.py     circuit breakers, log sampling, build info
    histogram.py   buckets and SymbolFreeHistogram
A new family goes in its stage's module, gets a module-level name below, and a row in
docs/monitoring.md's catalogue (tests/monitoring checks all three agree).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, Info

from monitoring.metrics.api import ApiMetrics
from monitoring.metrics.bus import BusMetrics
from monitoring.metrics.collector import CollectorMetrics
from monitoring.metrics.histogram import FAST_BUCKETS, LATENCY_BUCKETS, SymbolFreeHistogram
from monitoring.metrics.processing import ProcessingMetrics
from monitoring.metrics.runtime import CIRCUIT_STATES, RuntimeMetrics
from monitoring.metrics.storage import StorageMetrics
from monitoring.timing import track_time

if TYPE_CHECKING:  # served lazily by __getattr__: monitoring.server imports this module
    from monitoring.server import MetricsServer, set_build_info, start_metrics_server


class PlatformMetrics(
    CollectorMetrics, BusMetrics, ProcessingMetrics, StorageMetrics, ApiMetrics, RuntimeMetrics
):
    """The platform's metric objects, registered on one registry; each family is an attribute (see the
    stage modules for their definitions)."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.registry = registry
        CollectorMetrics.__init__(self, registry)
        BusMetrics.__init__(self, registry)
        ProcessingMetrics.__init__(self, registry)
        StorageMetrics.__init__(self, registry)
        ApiMetrics.__init__(self, registry)
        RuntimeMetrics.__init__(self, registry)


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
