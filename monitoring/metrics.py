"""Every metric of the platform, defined once, with bounded labels.

Names are a public interface: dashboards and alert rules use them. Histograms never carry a `symbol`
label. Components receive a `PlatformMetrics` (default: `METRICS`, on the default registry); tests build
their own on a fresh `CollectorRegistry()` or read deltas with `REGISTRY.get_sample_value`.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, Info

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
FAST_BUCKETS = (0.000_01, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0)

CIRCUIT_STATES = {"closed": 0, "open": 1, "half_open": 2}


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
        self.trade_latency = Histogram(
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
        self.bar_completion_duration = Histogram(
            "bar_completion_duration_seconds",
            "Bar end (by event time) to the bar stored and published",
            ["timeframe"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.indicator_calculation_duration = Histogram(
            "indicator_calculation_duration_seconds",
            "Time to update one indicator on a closed bar",
            ["indicator"],
            buckets=FAST_BUCKETS,
            registry=r,
        )
        self.features_calculated = Counter(
            "features_calculated", "Feature vectors calculated on closed bars", registry=r
        )
        self.feature_calculation_duration = Histogram(
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
        self.db_query_duration = Histogram(
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
        self.http_request_duration = Histogram(
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
        # Build
        self.build_info = Info("build", "Platform build and runtime versions", registry=r)


METRICS = PlatformMetrics()
