"""Data-quality checks on trades and closed bars: pure, bounded labels, a rolling score per symbol.

Checks run over a batch and add up in a `QualityTally`: passed and failed counts per check (one of CHECKS)
and anomaly counts per (exchange, symbol, anomaly type) (one of ANOMALY_TYPES), so every label is a safe
metric label value (`data_quality_checks{check,result}`, `data_anomalies_detected{anomaly_type}`). Trade
checks run over each symbol's trades of a batch, in order: a run that passes them all (the common case)
is checked in a few C calls over the run, any other trade by trade.

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
from operator import attrgetter, sub
from typing import Final

from core.types import Bar, Trade
from processor.decimals import POW10, read_size
from processor.quality_runs import all_positive, order_checks, price_jumps, runs_by_symbol

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
_RUN_MIN: Final = 8  # shorter runs are checked trade by trade (the C calls cost more than they save)
_PRICE: Final = attrgetter("price")
_QUANTITY: Final = attrgetter("quantity")
_TS_EVENT: Final = attrgetter("ts_event")
_TS_RECV: Final = attrgetter("ts_recv")
_SEQUENCE: Final = attrgetter("sequence")
_BACKFILLED: Final = attrgetter("backfilled")


class QualityTally:
    """What a batch of checks found: counts per check, anomalies per symbol, the symbols checked, and the
    trades whose event time leads their receive time too far (`future`)."""

    __slots__ = ("anomalies", "failed", "future", "passed", "symbols")

    def __init__(self) -> None:
        self.passed: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.anomalies: Counter[tuple[str, str, str]] = Counter()
        self.symbols: set[tuple[str, str]] = set()
        self.future: list[Trade] = []  # failed trade_timestamp, not to be aggregated (by symbol, in order)


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
        score. Per symbol (its trades in order): the common case (every trade live and passing) is checked
        in C calls over the run (`_pass_run`), any other run trade by trade (`_check_each`)."""
        tally = QualityTally()
        counts = _Counts()
        for (exchange, symbol), run in runs_by_symbol(trades):
            state = self._state(exchange, symbol)
            tally.symbols.add((exchange, symbol))
            if len(run) < _RUN_MIN or not self._pass_run(run, state, counts):
                self._check_each(run, exchange, symbol, state, tally, counts)
        checked = {
            CHECK_TRADE_VALUES: counts.checked,
            CHECK_TRADE_TIMESTAMP: counts.checked,
            CHECK_TRADE_LATENCY: counts.live,
            CHECK_TRADE_PRICE_JUMP: counts.jumps,
            CHECK_TRADE_ORDER: counts.orders,
        }
        for check, count in checked.items():
            if count > tally.failed[check]:
                tally.passed[check] = count - tally.failed[check]
        return tally

    def _pass_run(self, run: list[Trade], state: _SymbolQuality, counts: _Counts) -> bool:
        """If every trade of the run is live and passes every check, record that and return True; else
        record nothing and return False."""
        try:
            prices = list(map(float, map(_PRICE, run)))
            quantities = list(map(float, map(_QUANTITY, run)))
        except ValueError:
            return False
        leads = list(map(sub, map(_TS_EVENT, run), map(_TS_RECV, run)))
        if (
            any(map(_BACKFILLED, run))
            or not (all_positive(prices) and all_positive(quantities))
            or max(leads) > self.future_tolerance_ns
            or -min(leads) > self.max_latency_ns
        ):
            return False
        jumps = price_jumps(state.last_price, prices, self.spike_ratio)
        orders = order_checks(state.last_sequence, list(map(_SEQUENCE, run)))
        if jumps is None or orders is None:
            return False
        count = len(run)
        counts.checked += count
        counts.live += count
        counts.jumps += jumps
        counts.orders += orders
        state.seen += 3 * count + jumps + orders  # each trade's results: see _check_one
        state.last_price = prices[-1]
        if run[-1].sequence is not None:
            state.last_sequence = run[-1].sequence
        return True

    def _check_each(
        self,
        run: list[Trade],
        exchange: str,
        symbol: str,
        state: _SymbolQuality,
        tally: QualityTally,
        counts: _Counts,
    ) -> None:
        """The checks of one symbol's run, trade by trade."""
        failed_at: list[int] = []  # the run's failures: positions and checks, tallied at the end
        failed_checks: list[str] = []
        position = state.seen  # the symbol's result count
        for trade in run:
            position = self._check_one(trade, state, tally, counts, position, failed_at, failed_checks)
        self._tally_failures(tally, exchange, symbol, state, failed_at, failed_checks)
        state.seen = position

    def _check_one(
        self,
        trade: Trade,
        state: _SymbolQuality,
        tally: QualityTally,
        counts: _Counts,
        position: int,
        failed_at: list[int],
        failed_checks: list[str],
    ) -> int:
        """One trade's checks, its results from `position` on; returns the next position."""
        counts.checked += 1
        try:
            price, quantity = float(trade.price), float(trade.quantity)
        except ValueError:
            price = quantity = math.nan
        price_ok = 0.0 < price < math.inf  # False for NaN
        if not (price_ok and 0.0 < quantity < math.inf):
            failed_at.append(position)
            failed_checks.append(CHECK_TRADE_VALUES)
        lead = trade.ts_event - trade.ts_recv
        if lead > self.future_tolerance_ns:
            failed_at.append(position + 1)
            failed_checks.append(CHECK_TRADE_TIMESTAMP)
            tally.future.append(trade)
        if trade.backfilled:
            return position + 2
        counts.live += 1
        if -lead > self.max_latency_ns:
            failed_at.append(position + 2)
            failed_checks.append(CHECK_TRADE_LATENCY)
        position = self._check_jump(price, state, counts, position + 3, failed_at, failed_checks)
        return _check_order(trade.sequence, state, counts, position, failed_at, failed_checks)

    def _check_jump(
        self,
        price: float,
        state: _SymbolQuality,
        counts: _Counts,
        position: int,
        failed_at: list[int],
        failed_checks: list[str],
    ) -> int:
        """A live trade's price against the last one (a NaN or non-positive price is not compared)."""
        if not 0.0 < price < math.inf:
            return position
        last_price = state.last_price
        state.last_price = price
        if last_price is None:
            return position
        counts.jumps += 1
        if abs(price / last_price - 1.0) > self.spike_ratio:
            failed_at.append(position)
            failed_checks.append(CHECK_TRADE_PRICE_JUMP)
        return position + 1

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


class _Counts:
    """How many results each trade check had in a batch (passed ones are these less the failed)."""

    __slots__ = ("checked", "jumps", "live", "orders")

    def __init__(self) -> None:
        self.checked = self.live = self.jumps = self.orders = 0


def _check_order(
    sequence: int | None,
    state: _SymbolQuality,
    counts: _Counts,
    position: int,
    failed_at: list[int],
    failed_checks: list[str],
) -> int:
    """A live trade's sequence against the last one (no check without a sequence)."""
    last_sequence = state.last_sequence
    if sequence is None:
        return position
    if last_sequence is None or sequence > last_sequence:
        state.last_sequence = sequence
    if last_sequence is None:
        return position
    counts.orders += 1
    if sequence <= last_sequence:
        failed_at.append(position)
        failed_checks.append(CHECK_TRADE_ORDER)
    return position + 1


def _sums_to(total: tuple[int, int], *parts: str) -> bool:
    """Whether the decimal texts `parts` add up exactly to `total` (units, scale)."""
    values = [read_size(part) for part in parts]
    scale = max(total[1], *(s for _, s in values))
    return total[0] * POW10[scale - total[1]] == sum(u * POW10[scale - s] for u, s in values)
