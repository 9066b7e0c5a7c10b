"""The collector session's metrics: label children bound once, hot counts kept locally and flushed.

Per published trade only plain attribute arithmetic happens here; `flush()` (every 0.5 s and at stop)
moves the local counts into the Prometheus children. `trades_received` counts trades accepted for
publishing (live and backfilled); duplicates are counted in `trades_duplicate` instead.
`trade_latency_seconds` is sampled (see LATENCY_SAMPLE_NS).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from core.types import Trade
from monitoring.metrics import PlatformMetrics

NS_PER_SECOND = 1_000_000_000
_LOG_INTERVAL_S = 1.0
# trade_latency_seconds is sampled: at most one observation per frame and per millisecond of receipt
# time (every trade at normal rates; about 1000/s during bursts, where observe() would cost 25%).
LATENCY_SAMPLE_NS = 1_000_000


class _SymbolCounters:
    __slots__ = (
        "backfilled",
        "backfilled_child",
        "duplicate_child",
        "duplicates",
        "gap_missing_child",
        "gaps_child",
        "last_ts",
        "last_ts_child",
        "received",
        "received_child",
    )

    def __init__(self, metrics: PlatformMetrics, exchange: str, symbol: str) -> None:
        self.received = 0
        self.backfilled = 0
        self.duplicates = 0
        self.last_ts = 0
        self.received_child = metrics.trades_received.labels(exchange, symbol)
        self.backfilled_child = metrics.trades_backfilled.labels(exchange, symbol)
        self.duplicate_child = metrics.trades_duplicate.labels(exchange, symbol)
        self.last_ts_child = metrics.last_trade_timestamp.labels(exchange, symbol)
        self.gaps_child = metrics.trade_gaps.labels(exchange, symbol)
        self.gap_missing_child = metrics.trade_gap_missing.labels(exchange, symbol)

    def flush(self) -> None:
        if self.received:
            self.received_child.inc(self.received)
            self.received = 0
        if self.backfilled:
            self.backfilled_child.inc(self.backfilled)
            self.backfilled = 0
        if self.duplicates:
            self.duplicate_child.inc(self.duplicates)
            self.duplicates = 0
        if self.last_ts:
            self.last_ts_child.set(self.last_ts / NS_PER_SECOND)


class SessionMetrics:
    """Metrics of one `CollectorSession` (exchange label fixed; symbol labels are canonical symbols)."""

    def __init__(
        self,
        metrics: PlatformMetrics,
        exchange: str,
        canonical: dict[str, str],
        connections: int,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._metrics = metrics
        self._exchange = exchange
        self._symbols = {raw: _SymbolCounters(metrics, exchange, sym) for raw, sym in canonical.items()}
        self._connections = connections
        self._open = 0
        self._status = metrics.collector_status.labels(exchange)
        self._connected = metrics.exchange_connected.labels(exchange)
        self._reconnects = metrics.websocket_reconnections.labels(exchange)
        self._latency = metrics.trade_latency.labels(exchange)
        self._latency_sampled_at = 0
        self._monotonic = monotonic
        self._last_log: dict[str, float] = {}

    def _counters(self, trade: Trade) -> _SymbolCounters:
        counters = self._symbols.get(trade.raw_symbol)
        if counters is None:
            counters = _SymbolCounters(self._metrics, self._exchange, trade.symbol)
            self._symbols[trade.raw_symbol] = counters
        return counters

    def running(self, on: bool) -> None:
        self._status.set(1 if on else 0)
        if not on:
            self._open = 0
            self._connected.set(0)

    def connection_open(self, opened: bool) -> None:
        """exchange_connected is 1 only while every connection of the session is open."""
        self._open = max(self._open + (1 if opened else -1), 0)
        self._connected.set(1 if self._open >= self._connections else 0)

    def reconnected(self) -> None:
        self._reconnects.inc()

    def error(self, error_type: str) -> None:
        self._metrics.collector_errors.labels(self._exchange, error_type).inc()

    def should_log(self, error_type: str) -> bool:
        """At most one log line per error type per second (every occurrence is still counted)."""
        now = self._monotonic()
        if now - self._last_log.get(error_type, -_LOG_INTERVAL_S) < _LOG_INTERVAL_S:
            return False
        self._last_log[error_type] = now
        return True

    def duplicate(self, raw_symbol: str) -> None:
        counters = self._symbols.get(raw_symbol)
        if counters is not None:
            counters.duplicates += 1

    def gap(self, raw_symbol: str, missing: int) -> None:
        counters = self._symbols.get(raw_symbol)
        if counters is not None:
            counters.gaps_child.inc()
            counters.gap_missing_child.inc(missing)

    def published(self, trades: Sequence[Trade]) -> None:
        latest_live: Trade | None = None
        symbol = ""
        counters: _SymbolCounters | None = None
        for trade in trades:
            if trade.symbol != symbol or counters is None:  # runs of one symbol: one lookup per run
                symbol = trade.symbol
                counters = self._counters(trade)
            counters.received += 1
            if trade.ts_event > counters.last_ts:
                counters.last_ts = trade.ts_event
            if trade.backfilled:
                counters.backfilled += 1
            else:
                latest_live = trade
        if latest_live is not None and latest_live.ts_recv - self._latency_sampled_at >= LATENCY_SAMPLE_NS:
            self._latency_sampled_at = latest_live.ts_recv
            self._latency.observe(max(latest_live.ts_recv - latest_live.ts_event, 0) / NS_PER_SECOND)

    def flush(self) -> None:
        for counters in self._symbols.values():
            counters.flush()
