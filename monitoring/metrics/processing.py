"""The processor's families: trades applied, bars closed and their coverage, late trades, indicator
and feature timings, the bar verifier, and the data-quality checks.

Each family is created once per `PlatformMetrics` (monitoring.metrics), on its registry.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from monitoring.metrics.histogram import FAST_BUCKETS, LATENCY_BUCKETS, SymbolFreeHistogram


class ProcessingMetrics:
    """Part of `PlatformMetrics`: creates these families on registry `r`."""

    def __init__(self, r: CollectorRegistry) -> None:
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
