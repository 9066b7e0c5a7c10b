"""Data-quality checks on trades and closed bars: pure, bounded labels, a rolling score per symbol.

Every check returns a `CheckResult(check, passed, anomaly_type)`; `check` is one of CHECKS and
`anomaly_type` one of ANOMALY_TYPES (or None), so both are safe metric label values
(`data_quality_checks{check,result}`, `data_anomalies_detected{anomaly_type}`).

Trade checks (times are ns UTC):
- trade_values: price and quantity parse as finite numbers > 0, else "invalid_value".
- trade_timestamp: ts_event - ts_recv <= future_tolerance_ns, else "future_timestamp".
- trade_latency: ts_recv - ts_event <= max_latency_ns, else "high_latency" (live trades only).
- trade_price_jump: |price / last price - 1| <= spike_ratio, else "price_spike" (live trades only; the
  last price moves to every valid live trade, so a lasting level change is flagged once).
- trade_order: trade_id > the last live trade id, else "out_of_order" (live trades only: backfilled
  trades fill gaps and are older by nature).

Bar checks:
- bar_ohlc: low <= open, close <= high, else "ohlc_inconsistent".
- volume_sanity: volume > 0 and volume == buy + sell within 1e-9 relative, else "volume_sanity".
- bar_trade_count: trade_count > 0, else "empty_bar".
- bar_vwap: low <= vwap <= high (1e-9 relative slack for float sums), else "vwap_out_of_range".
- bar_continuity: INFO only -- passed is always True; anomaly "missing_bars" when open_time is later
  than the previous bar's close_time of the same timeframe (a quiet market makes no bars by design).

`score(exchange, symbol)` is the share of passed checks among the last `window` results (1.0 before any).
"""

from __future__ import annotations

import math
from collections import deque

import msgspec

from core.types import Bar, Trade

CHECK_TRADE_VALUES = "trade_values"
CHECK_TRADE_TIMESTAMP = "trade_timestamp"
CHECK_TRADE_LATENCY = "trade_latency"
CHECK_TRADE_PRICE_JUMP = "trade_price_jump"
CHECK_TRADE_ORDER = "trade_order"
CHECK_BAR_OHLC = "bar_ohlc"
CHECK_BAR_VOLUME = "volume_sanity"
CHECK_BAR_TRADE_COUNT = "bar_trade_count"
CHECK_BAR_VWAP = "bar_vwap"
CHECK_BAR_CONTINUITY = "bar_continuity"
CHECKS: tuple[str, ...] = (
    CHECK_TRADE_VALUES,
    CHECK_TRADE_TIMESTAMP,
    CHECK_TRADE_LATENCY,
    CHECK_TRADE_PRICE_JUMP,
    CHECK_TRADE_ORDER,
    CHECK_BAR_OHLC,
    CHECK_BAR_VOLUME,
    CHECK_BAR_TRADE_COUNT,
    CHECK_BAR_VWAP,
    CHECK_BAR_CONTINUITY,
)

ANOMALY_INVALID_VALUE = "invalid_value"
ANOMALY_FUTURE_TIMESTAMP = "future_timestamp"
ANOMALY_HIGH_LATENCY = "high_latency"
ANOMALY_PRICE_SPIKE = "price_spike"
ANOMALY_OUT_OF_ORDER = "out_of_order"
ANOMALY_OHLC = "ohlc_inconsistent"
ANOMALY_VOLUME = "volume_sanity"
ANOMALY_EMPTY_BAR = "empty_bar"
ANOMALY_VWAP = "vwap_out_of_range"
ANOMALY_MISSING_BARS = "missing_bars"
ANOMALY_TYPES: tuple[str, ...] = (
    ANOMALY_INVALID_VALUE,
    ANOMALY_FUTURE_TIMESTAMP,
    ANOMALY_HIGH_LATENCY,
    ANOMALY_PRICE_SPIKE,
    ANOMALY_OUT_OF_ORDER,
    ANOMALY_OHLC,
    ANOMALY_VOLUME,
    ANOMALY_EMPTY_BAR,
    ANOMALY_VWAP,
    ANOMALY_MISSING_BARS,
)

_REL = 1e-9


class CheckResult(msgspec.Struct, frozen=True, gc=False):
    """One check's outcome; anomaly_type is set when an anomaly was seen (also for info checks)."""

    check: str
    passed: bool
    anomaly_type: str | None = None


_PASSED: dict[str, CheckResult] = {}


def _result(check: str, ok: bool, anomaly: str) -> CheckResult:
    """Passing results are shared constants: checks run per trade, so allocation matters."""
    if ok:
        passed = _PASSED.get(check)
        if passed is None:
            passed = _PASSED[check] = CheckResult(check, True)
        return passed
    return CheckResult(check, False, anomaly)


def _positive(text: str) -> float | None:
    """The value of a decimal string if finite and > 0, else None."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value > 0 else None


class _SymbolQuality:
    __slots__ = ("bar_close", "last_id", "last_price", "passed", "recent")

    def __init__(self, window: int) -> None:
        self.last_price: float | None = None
        self.last_id: int | None = None
        self.bar_close: dict[str, int] = {}
        self.recent: deque[bool] = deque(maxlen=window)
        self.passed = 0


class QualityMonitor:
    """Quality checks and a rolling score per (exchange, symbol).

    future_tolerance_ns: how far ts_event may lead ts_recv (clock skew); max_latency_ns: how far it
    may lag; spike_ratio: largest accepted relative move from the last trade price; window: results
    kept for the score.
    """

    def __init__(
        self,
        *,
        future_tolerance_ns: int = 5_000_000_000,
        max_latency_ns: int = 60_000_000_000,
        spike_ratio: float = 0.10,
        window: int = 1000,
    ) -> None:
        self.future_tolerance_ns = future_tolerance_ns
        self.max_latency_ns = max_latency_ns
        self.spike_ratio = spike_ratio
        self.window = window
        self._symbols: dict[tuple[str, str], _SymbolQuality] = {}

    def _state(self, exchange: str, symbol: str) -> _SymbolQuality:
        state = self._symbols.get((exchange, symbol))
        if state is None:
            state = self._symbols[(exchange, symbol)] = _SymbolQuality(self.window)
        return state

    def check_trade(self, trade: Trade) -> list[CheckResult]:
        """Run the trade checks (see module doc) and record them in the symbol's score."""
        state = self._state(trade.exchange, trade.symbol)
        price = _positive(trade.price)
        valid = price is not None and _positive(trade.quantity) is not None
        lead = trade.ts_event - trade.ts_recv
        results = [
            _result(CHECK_TRADE_VALUES, valid, ANOMALY_INVALID_VALUE),
            _result(CHECK_TRADE_TIMESTAMP, lead <= self.future_tolerance_ns, ANOMALY_FUTURE_TIMESTAMP),
        ]
        if not trade.backfilled:
            results.append(_result(CHECK_TRADE_LATENCY, -lead <= self.max_latency_ns, ANOMALY_HIGH_LATENCY))
            if price is not None and state.last_price is not None:
                jump = abs(price / state.last_price - 1.0)
                results.append(_result(CHECK_TRADE_PRICE_JUMP, jump <= self.spike_ratio, ANOMALY_PRICE_SPIKE))
            if state.last_id is not None:
                results.append(
                    _result(CHECK_TRADE_ORDER, trade.trade_id > state.last_id, ANOMALY_OUT_OF_ORDER)
                )
            if price is not None:
                state.last_price = price
            if state.last_id is None or trade.trade_id > state.last_id:
                state.last_id = trade.trade_id
        self._record(state, results)
        return results

    def check_bar(self, bar: Bar) -> list[CheckResult]:
        """Run the bar checks (see module doc) and record them in the symbol's score."""
        state = self._state(bar.exchange, bar.symbol)
        o, h, lo, c = (float(x) for x in (bar.open, bar.high, bar.low, bar.close))
        ohlc_ok = lo <= min(o, c) and max(o, c) <= h
        parts = bar.buy_volume + bar.sell_volume
        volume_ok = bar.volume > 0 and abs(bar.volume - parts) <= _REL * bar.volume
        slack = _REL * abs(h)
        results = [
            _result(CHECK_BAR_OHLC, ohlc_ok, ANOMALY_OHLC),
            _result(CHECK_BAR_VOLUME, volume_ok, ANOMALY_VOLUME),
            _result(CHECK_BAR_TRADE_COUNT, bar.trade_count > 0, ANOMALY_EMPTY_BAR),
            _result(CHECK_BAR_VWAP, lo - slack <= bar.vwap <= h + slack, ANOMALY_VWAP),
        ]
        previous = state.bar_close.get(bar.timeframe)
        if previous is not None:
            gap = bar.open_time > previous
            results.append(CheckResult(CHECK_BAR_CONTINUITY, True, ANOMALY_MISSING_BARS if gap else None))
        if previous is None or bar.close_time > previous:
            state.bar_close[bar.timeframe] = bar.close_time
        self._record(state, results)
        return results

    def _record(self, state: _SymbolQuality, results: list[CheckResult]) -> None:
        recent = state.recent
        for result in results:
            if len(recent) == recent.maxlen and recent[0]:
                state.passed -= 1
            recent.append(result.passed)
            state.passed += result.passed

    def score(self, exchange: str, symbol: str) -> float:
        """Share of passed checks among the last `window` for the symbol, 0..1 (1.0 if none yet)."""
        state = self._symbols.get((exchange, symbol))
        if state is None or not state.recent:
            return 1.0
        return state.passed / len(state.recent)
