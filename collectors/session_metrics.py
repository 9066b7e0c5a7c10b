"""The collector session's metrics: label children bound once, hot counts kept locally and flushed.

Per published trade only plain attribute arithmetic happens here; `flush()` (every 0.5 s and at stop)
moves the local counts into the Prometheus children. `trades_received` counts trades accepted for
publishing (live and backfilled); duplicates are counted in `trades_duplicate` instead.
`trade_latency_seconds` is sampled (see LATENCY_SAMPLE_NS).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Final

from collectors.adapter import PARSE_ERROR_TYPES
from core.types import FeedState, FeedStatus, Trade
from monitoring.metrics import PlatformMetrics

NS_PER_SECOND = 1_000_000_000

# The session's own collector_errors_total{error_type} values (the adapters' are PARSE_ERROR_TYPES).
INTERNAL: Final = "internal"
CONNECT_FAILED: Final = "connect_failed"
CONNECTION_LOST: Final = "connection_lost"
STALE: Final = "stale"
PING_TIMEOUT: Final = "ping_timeout"
PUBLISH_FAILED: Final = "publish_failed"
PUBLISH_ABANDONED: Final = "publish_abandoned"
BACKFILL_FAILED: Final = "backfill_failed"
GAP_ABANDONED: Final = "gap_abandoned"
DISCOVERY_FAILED: Final = "discovery_failed"
SEQUENCE_RESTARTED: Final = "sequence_restarted"
LOOK_BACK_CUT: Final = "look_back_cut"  # an outage's REST look-back cancelled at stop: recorded unverified
SESSION_ERROR_TYPES: Final = frozenset(
    {
        INTERNAL,
        CONNECT_FAILED,
        CONNECTION_LOST,
        STALE,
        PING_TIMEOUT,
        PUBLISH_FAILED,
        PUBLISH_ABANDONED,
        BACKFILL_FAILED,
        GAP_ABANDONED,
        DISCOVERY_FAILED,
        SEQUENCE_RESTARTED,
        LOOK_BACK_CUT,
    }
)
_LOG_INTERVAL_S = 1.0
# trade_latency_seconds is sampled: at most one observation per frame and per millisecond of receipt
# time (every trade at normal rates; about 1000/s during bursts, where observe() would cost 25%).
LATENCY_SAMPLE_NS = 1_000_000


class _SymbolCounters:
    """One symbol's counts: deltas not yet flushed to Prometheus, and totals since start (for FeedStatus)."""

    __slots__ = (
        "abandoned_total",
        "backfilled",
        "backfilled_child",
        "backfilled_total",
        "duplicate_child",
        "duplicates",
        "gap_missing_child",
        "gaps_child",
        "gaps_total",
        "last_recv",
        "last_sequence",
        "last_ts",
        "last_ts_child",
        "received",
        "received_child",
        "received_total",
        "state_children",
        "symbol",
    )

    def __init__(self, metrics: PlatformMetrics, exchange: str, symbol: str) -> None:
        self.symbol = symbol
        self.received = 0
        self.backfilled = 0
        self.duplicates = 0
        self.last_ts = 0
        self.last_recv = 0
        self.last_sequence: int | None = None
        self.received_total = self.backfilled_total = self.gaps_total = self.abandoned_total = 0
        self.state_children = {
            state: metrics.feed_state.labels(exchange, symbol, state.value) for state in FeedState
        }
        self.received_child = metrics.trades_received.labels(exchange, symbol)
        self.backfilled_child = metrics.trades_backfilled.labels(exchange, symbol)
        self.duplicate_child = metrics.trades_duplicate.labels(exchange, symbol)
        self.last_ts_child = metrics.last_trade_timestamp.labels(exchange, symbol)
        self.gaps_child = metrics.trade_gaps.labels(exchange, symbol)
        self.gap_missing_child = metrics.trade_gap_missing.labels(exchange, symbol)

    def status(self, exchange: str, raw: str, state: FeedState, now_ns: int, missing: int) -> FeedStatus:
        return FeedStatus(
            exchange=exchange,
            symbol=self.symbol,
            raw_symbol=raw,
            state=state,
            updated_ns=now_ns,
            last_trade_ns=self.last_ts,
            last_receive_ns=self.last_recv,
            last_sequence=self.last_sequence,
            trades_received=self.received_total,
            gaps=self.gaps_total,
            missing=missing,
            repaired=self.backfilled_total,
            abandoned=self.abandoned_total,
        )

    def flush(self) -> None:
        if self.received:
            self.received_child.inc(self.received)
            self.received_total += self.received
            self.received = 0
        if self.backfilled:
            self.backfilled_child.inc(self.backfilled)
            self.backfilled_total += self.backfilled
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
        # every error type exists from the start at 0, so that rate() and increase() see the first one
        self._errors = {
            kind: metrics.collector_errors.labels(exchange, kind)
            for kind in sorted(PARSE_ERROR_TYPES | SESSION_ERROR_TYPES)
        }
        self._status = metrics.collector_status.labels(exchange)
        self._shed = metrics.trades_shed.labels(exchange)
        self._outbox = metrics.collector_outbox.labels(exchange)
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

    @property
    def exchange(self) -> str:
        return self._exchange

    def shed(self, trades: Sequence[Trade]) -> None:
        """Trades the full outbox refused (trades_shed_total; they are repaired later or recorded)."""
        self._shed.inc(len(trades))

    def restarted(self) -> None:
        self.error(SEQUENCE_RESTARTED)

    def outbox(self, waiting: int) -> None:
        self._outbox.set(waiting)

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
        child = self._errors.get(error_type)
        if child is None:
            child = self._errors[error_type] = self._metrics.collector_errors.labels(
                self._exchange, error_type
            )
        child.inc()

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
            counters.gaps_total += 1

    def abandoned(self, raw_symbol: str, count: int) -> None:
        """Sequence numbers given up on (they could not be repaired): also an error `gap_abandoned`."""
        self.error(GAP_ABANDONED)
        counters = self._symbols.get(raw_symbol)
        if counters is not None:
            counters.abandoned_total += count

    def feed_statuses(
        self, connected: Mapping[str, bool], missing: Mapping[str, int], now_ns: int, quiet_after_ns: int
    ) -> list[FeedStatus]:
        """Every symbol's FeedStatus now (counts flushed first), and the feed_state gauges set to match.
        `connected` and `missing` are per raw symbol (missing: sequence numbers still to repair)."""
        self.flush()
        statuses = []
        for raw, counters in self._symbols.items():
            still_missing = missing.get(raw, 0)
            state = feed_state(
                connected.get(raw, False), still_missing, now_ns - counters.last_recv, quiet_after_ns
            )
            for each, child in counters.state_children.items():
                child.set(1 if each is state else 0)
            statuses.append(counters.status(self._exchange, raw, state, now_ns, still_missing))
        return statuses

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
                counters.last_recv = trade.ts_recv
                counters.last_sequence = trade.sequence
        if latest_live is not None and latest_live.ts_recv - self._latency_sampled_at >= LATENCY_SAMPLE_NS:
            self._latency_sampled_at = latest_live.ts_recv
            self._latency.observe(max(latest_live.ts_recv - latest_live.ts_event, 0) / NS_PER_SECOND)

    def flush(self) -> None:
        for counters in self._symbols.values():
            counters.flush()


def feed_state(connected: bool, missing: int, since_last_ns: int, quiet_after_ns: int) -> FeedState:
    """A feed is disconnected while its connection is down, repairing while sequence numbers are missing,
    streaming while trades arrived within `quiet_after_ns`, else quiet (connected, a quiet market)."""
    if not connected:
        return FeedState.DISCONNECTED
    if missing:
        return FeedState.REPAIRING
    return FeedState.STREAMING if since_last_ns <= quiet_after_ns else FeedState.QUIET
