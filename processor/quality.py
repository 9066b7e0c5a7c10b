"""Data-quality checks on trades and closed bars: pure, bounded labels, a rolling score per symbol.

Checks run over a batch and add up in a `QualityTally`: passed and failed counts per check (one of CHECKS)
and anomaly counts per (exchange, symbol, anomaly type) (one of ANOMALY_TYPES), so every label is a safe
metric label value (`data_quality_checks{check,result}`, `data_anomalies_detected{anomaly_type}`). Trade
checks run for every trade in a tight loop that allocates nothing for a passing trade.

Trade checks (times are ns UTC):
- trade_values: price and quantity parse as finite numbers > 0, else "invalid_value".
- trade_timestamp: ts_event - ts_recv <= future_tolerance_ns, else "future_timestamp".
- trade_latency: ts_recv - ts_event <= max_latency_ns, else "high_latency" (live trades only).
- trade_price_jump: |price / last price - 1| <= spike_ratio, else "price_spike" (live trades only; the
  last price moves to every valid live trade, so a lasting level change is flagged once).
- trade_order: sequence > the last live sequence, else "out_of_order" (live trades of venues with a
  contiguous sequence only: backfilled trades fill gaps and are older by nature, and venue ids without a
  sequence are never parsed or compared).

Bar checks:
- bar_ohlc: low <= open, close <= high, else "ohlc_inconsistent".
- volume_sanity: volume > 0 and volume == buy + sell exactly (decimal), else "volume_sanity".
- bar_trade_count: trade_count > 0, else "empty_bar".
- bar_vwap: low <= vwap <= high (1e-9 relative slack for float sums), else "vwap_out_of_range".
- bar_continuity: INFO only -- passed is always True; anomaly "missing_bars" when open_time is later
  than the previous bar's close_time of the same timeframe (a quiet market makes no bars by design).

`score(exchange, symbol)` is the share of passed checks among the last `window` results (1.0 before any).
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Iterable

from core.types import Bar, Trade
from processor.decimals import read_size

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

TRADE_ANOMALIES: dict[str, str] = {
    CHECK_TRADE_VALUES: ANOMALY_INVALID_VALUE,
    CHECK_TRADE_TIMESTAMP: ANOMALY_FUTURE_TIMESTAMP,
    CHECK_TRADE_LATENCY: ANOMALY_HIGH_LATENCY,
    CHECK_TRADE_PRICE_JUMP: ANOMALY_PRICE_SPIKE,
    CHECK_TRADE_ORDER: ANOMALY_OUT_OF_ORDER,
}
"""The anomaly each failed trade check reports."""

_REL = 1e-9


class QualityTally:
    """What a batch of checks found: counts per check, anomalies per symbol, the symbols checked, and the
    trades whose event time leads their receive time too far (`future`)."""

    __slots__ = ("anomalies", "failed", "future", "passed", "symbols")

    def __init__(self) -> None:
        self.passed: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.anomalies: Counter[tuple[str, str, str]] = Counter()
        self.symbols: set[tuple[str, str]] = set()
        self.future: list[Trade] = []  # trades that failed trade_timestamp: not to be aggregated


class _SymbolQuality:
    """A symbol's check state. The score window holds the last `window` results: `seen` counts every
    result recorded and `failures` keeps the positions of the failed ones (failures are rare, so this
    costs nothing per passing check)."""

    __slots__ = ("bar_close", "failures", "last_price", "last_sequence", "seen")

    def __init__(self) -> None:
        self.last_price: float | None = None
        self.last_sequence: int | None = None
        self.bar_close: dict[str, int] = {}
        self.seen = 0
        self.failures: deque[int] = deque()


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
            state = self._symbols[(exchange, symbol)] = _SymbolQuality()
        return state

    def check_trades(self, trades: Iterable[Trade]) -> QualityTally:
        """Run the trade checks (see module doc) over `trades` in order and record them in each symbol's
        score."""
        tally = QualityTally()
        future, latency, spike = self.future_tolerance_ns, self.max_latency_ns, self.spike_ratio
        trades_checked = live = jumps = orders = 0
        exchange = symbol = ""
        state = _SymbolQuality()
        position = 0  # the current symbol's result count (state.seen while it is current)
        failed_at: list[int] = []  # the current symbol's failures: positions and checks, tallied per run
        failed_checks: list[str] = []

        for trade in trades:
            if trade.symbol != symbol or trade.exchange != exchange:
                self._tally_failures(tally, exchange, symbol, state, failed_at, failed_checks)
                state.seen = position
                exchange, symbol = trade.exchange, trade.symbol
                state = self._state(exchange, symbol)
                position = state.seen
                tally.symbols.add((exchange, symbol))
            trades_checked += 1
            try:
                price, quantity = float(trade.price), float(trade.quantity)
            except ValueError:
                price = quantity = math.nan
            price_ok = 0.0 < price < math.inf  # False for NaN
            if not (price_ok and 0.0 < quantity < math.inf):
                failed_at.append(position)
                failed_checks.append(CHECK_TRADE_VALUES)
            lead = trade.ts_event - trade.ts_recv
            if lead > future:
                failed_at.append(position + 1)
                failed_checks.append(CHECK_TRADE_TIMESTAMP)
                tally.future.append(trade)
            position += 2
            if trade.backfilled:
                continue
            live += 1
            if -lead > latency:
                failed_at.append(position)
                failed_checks.append(CHECK_TRADE_LATENCY)
            position += 1
            last_price = state.last_price
            if price_ok and last_price is not None:
                jumps += 1
                if abs(price / last_price - 1.0) > spike:
                    failed_at.append(position)
                    failed_checks.append(CHECK_TRADE_PRICE_JUMP)
                position += 1
            sequence = trade.sequence
            last_sequence = state.last_sequence
            if sequence is not None and last_sequence is not None:
                orders += 1
                if sequence <= last_sequence:
                    failed_at.append(position)
                    failed_checks.append(CHECK_TRADE_ORDER)
                position += 1
            if price_ok:
                state.last_price = price
            if sequence is not None and (last_sequence is None or sequence > last_sequence):
                state.last_sequence = sequence
        self._tally_failures(tally, exchange, symbol, state, failed_at, failed_checks)
        state.seen = position
        checked = {
            CHECK_TRADE_VALUES: trades_checked,
            CHECK_TRADE_TIMESTAMP: trades_checked,
            CHECK_TRADE_LATENCY: live,
            CHECK_TRADE_PRICE_JUMP: jumps,
            CHECK_TRADE_ORDER: orders,
        }
        for check, count in checked.items():
            if count > tally.failed[check]:
                tally.passed[check] = count - tally.failed[check]
        return tally

    @staticmethod
    def _tally_failures(
        tally: QualityTally,
        exchange: str,
        symbol: str,
        state: _SymbolQuality,
        failed_at: list[int],
        failed_checks: list[str],
    ) -> None:
        """Move one run of a symbol's failures into its score window and the tally; clears both lists."""
        if not failed_at:
            return
        state.failures.extend(failed_at)
        for check, count in Counter(failed_checks).items():
            tally.failed[check] += count
            tally.anomalies[(exchange, symbol, TRADE_ANOMALIES[check])] += count
        failed_at.clear()
        failed_checks.clear()

    def ahead(self, trade: Trade) -> bool:
        """Whether the trade's event time leads its receive time beyond the tolerance (the check that
        keeps it out of bars), without recording anything: for trades replayed from the store."""
        return trade.ts_event - trade.ts_recv > self.future_tolerance_ns

    def check_bars(self, bars: Iterable[Bar]) -> QualityTally:
        """Run the bar checks (see module doc) and record them in each symbol's score."""
        tally = QualityTally()
        for bar in bars:
            o, h, lo, c = (float(x) for x in (bar.open, bar.high, bar.low, bar.close))
            volume = read_size(bar.volume)
            slack = _REL * abs(h)
            outcomes = [
                (CHECK_BAR_OHLC, lo <= min(o, c) and max(o, c) <= h, ANOMALY_OHLC),
                (CHECK_BAR_VOLUME, volume[0] > 0 and _sums_to(volume, bar.buy_volume, bar.sell_volume),
                 ANOMALY_VOLUME),
                (CHECK_BAR_TRADE_COUNT, bar.trade_count > 0, ANOMALY_EMPTY_BAR),
                (CHECK_BAR_VWAP, lo - slack <= bar.vwap <= h + slack, ANOMALY_VWAP),
            ]  # fmt: skip
            state = self._state(bar.exchange, bar.symbol)
            previous = state.bar_close.get(bar.timeframe)
            if previous is not None:
                tally.passed[CHECK_BAR_CONTINUITY] += 1  # info only: never a failure
                if bar.open_time > previous:
                    tally.anomalies[(bar.exchange, bar.symbol, ANOMALY_MISSING_BARS)] += 1
                state.seen += 1
            if previous is None or bar.close_time > previous:
                state.bar_close[bar.timeframe] = bar.close_time
            for check, passed, anomaly in outcomes:
                if passed:
                    tally.passed[check] += 1
                else:
                    tally.failed[check] += 1
                    tally.anomalies[(bar.exchange, bar.symbol, anomaly)] += 1
                    state.failures.append(state.seen)
                state.seen += 1
            tally.symbols.add((bar.exchange, bar.symbol))
        return tally

    def score(self, exchange: str, symbol: str) -> float:
        """Share of passed checks among the last `window` for the symbol, 0..1 (1.0 if none yet)."""
        state = self._symbols.get((exchange, symbol))
        if state is None or not state.seen:
            return 1.0
        failures, oldest = state.failures, state.seen - self.window
        while failures and failures[0] < oldest:
            failures.popleft()
        results = min(state.seen, self.window)
        return (results - len(failures)) / results


def _sums_to(total: tuple[int, int], *parts: str) -> bool:
    """Whether the decimal texts `parts` add up exactly to `total` (units, scale)."""
    values = [read_size(part) for part in parts]
    scale = max(total[1], *(s for _, s in values))
    return total[0] * 10 ** (scale - total[1]) == sum(u * 10 ** (scale - s) for u, s in values)
