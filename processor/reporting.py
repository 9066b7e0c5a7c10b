"""What the processor service counts and logs: every metric it touches and every log line about the data
(quality tallies, duplicates, late and unreadable trades, coverage events, expired holds, stored bars).
The pure pipeline (processor/pipeline.py) returns what happened; this module reports it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from operator import attrgetter
from typing import Any

from prometheus_client import Counter as PromCounter

from core.timeframes import NS_PER_SECOND
from core.types import Bar, ClosedBar, CoverageEvent, CoverageKind, Trade
from monitoring.metrics import PlatformMetrics
from processor.holds import ExpiredHold
from processor.pipeline import Applied, BarRevision, SymbolKey
from processor.quality import QualityMonitor, QualityTally

_exchange_of = attrgetter("exchange")


class ProcessorReport:
    """Counts into `metrics` and logs through `log` (a loguru logger bound to the processor)."""

    def __init__(self, metrics: PlatformMetrics, log: Any, quality: QualityMonitor) -> None:
        self._metrics = metrics
        self._log = log
        self._quality = quality
        # resolved once: the engine is timed on every closed bar
        self.indicator_timer = metrics.indicator_calculation_duration.labels("all")
        self.feature_timer = metrics.feature_calculation_duration

    def applied(self, trades: Sequence[Trade], applied: Applied) -> None:
        """A batch of new trades went through the pipeline."""
        self.quality(applied.tally)
        if applied.ahead:
            self._log.warning("{} trades ahead of their receive time not aggregated", applied.ahead)
        self._per_symbol(
            applied.late,
            self._metrics.late_trades,
            "{} trades arrived after their bar closed; stored, the bar is now incomplete",
            "WARNING",
        )
        self._per_symbol(
            applied.unreadable,
            self._metrics.trades_unreadable,
            "{} stored trades have a price or size that is not a plain decimal: left out of bars",
            "ERROR",
        )
        processed = self._metrics.trades_processed
        for exchange, count in Counter(map(_exchange_of, trades)).items():
            processed.labels(exchange).inc(count)

    def duplicates(self, trades: Sequence[Trade], new_trades: Sequence[Trade]) -> None:
        """Trades the store already had (a redelivery after a crash, a repeated backfill): counted and
        logged, never silently dropped."""
        dropped = Counter((t.exchange, t.symbol) for t in trades)
        dropped.subtract((t.exchange, t.symbol) for t in new_trades)
        self._per_symbol(
            dropped,
            self._metrics.trades_duplicate,
            "{} trades were already stored; not applied again",
            "INFO",
        )

    def quality(self, tally: QualityTally) -> None:
        checks = self._metrics.data_quality_checks
        for check, count in tally.passed.items():
            checks.labels(check, "passed").inc(count)
        for check, count in tally.failed.items():
            checks.labels(check, "failed").inc(count)
        for (exchange, symbol, anomaly), count in tally.anomalies.items():
            self._metrics.data_anomalies_detected.labels(exchange, symbol, anomaly).inc(count)
        for exchange, symbol in tally.symbols:
            self._metrics.data_quality_score.labels(exchange, symbol).set(
                self._quality.score(exchange, symbol)
            )

    def features(self, count: int) -> None:
        self._metrics.features_calculated.inc(count)

    def stored_bars(self, closed: Sequence[ClosedBar], now_ns: int) -> None:
        """Closed bars were stored at wall time `now_ns`."""
        metrics = self._metrics
        for item in closed:
            bar = item.bar
            metrics.bars_completed.labels(bar.exchange, bar.symbol, bar.timeframe).inc()
            metrics.bars_by_coverage.labels(bar.exchange, bar.timeframe, bar.coverage.value).inc()
            metrics.bar_completion_duration.labels(bar.timeframe).observe(
                max(0, now_ns - bar.close_time) / NS_PER_SECOND
            )

    def revised(self, revised: Sequence[BarRevision]) -> None:
        """Stored bars that became incomplete (not those that already were)."""
        for exchange, _, timeframe, _ in revised:
            self._metrics.bars_coverage_revised.labels(exchange, timeframe).inc()

    def coverage(self, event: CoverageEvent) -> None:
        self._metrics.coverage_events.labels(event.exchange, event.kind.value).inc()
        seconds = max(event.end_ns - event.start_ns, 0) / NS_PER_SECOND
        if event.kind is CoverageKind.UNVERIFIED:
            self._metrics.unverified_seconds.labels(event.exchange).inc(seconds)
        level = "INFO" if event.kind is CoverageKind.REPAIRED else "WARNING"
        self._log.log(
            level,
            "coverage {}: sequence {}..{}, {} trades, {:.3f}s of event time ({})",
            event.kind.value,
            event.first_sequence,
            event.last_sequence,
            event.trades,
            seconds,
            event.detail or "no detail",
            exchange=event.exchange,
            symbol=event.symbol,
        )

    def expired(self, holds: Sequence[ExpiredHold], max_hold_s: float) -> None:
        for hold in holds:
            self._metrics.coverage_holds_expired.labels(hold.exchange).inc()
            self._log.warning(
                "gap {}..{} still unrepaired after {:.0f}s: its bars close without it",
                *hold.gap,
                max_hold_s,
                exchange=hold.exchange,
                symbol=hold.symbol,
            )

    def _per_symbol(self, counts: Counter[SymbolKey], metric: PromCounter, message: str, level: str) -> None:
        """Add each symbol's count to `metric` and log `message` (formatted with the count) for it."""
        for (exchange, symbol), count in counts.items():
            if count:
                metric.labels(exchange, symbol).inc(count)
                self._log.log(level, message, count, exchange=exchange, symbol=symbol)


def bar_attributes(bar: Bar) -> dict[str, str | int]:
    """A closed bar as the attributes of a span event (times ns UTC)."""
    return {
        "exchange": bar.exchange,
        "symbol": bar.symbol,
        "timeframe": bar.timeframe,
        "open_time_ns": bar.open_time,
        "close_time_ns": bar.close_time,
        "coverage": bar.coverage.value,
        "trades": bar.trade_count,
    }
