"""Trades -> OHLCV bars by exchange event time (`Trade.ts_event`, integer ns UTC).

Policies (also in docs/bars-and-indicators.md):

- Buckets are aligned to the UTC epoch (`core.timeframes.bucket_start`): a bar covers
  [open_time, close_time) with close_time = open_time + timeframe length.
- A bar closes when the event-time watermark of its (exchange, symbol) -- the largest `ts_event`
  seen -- reaches close_time + grace_ns, or, in a quiet market, when `close_due(now_ns)` is called
  with now_ns >= close_time + grace_ns. Trades arriving out of order within the grace period are
  applied to the bar they belong to: open/close are the earliest/latest trades by (ts_event, receive
  order), receive order being (ts_recv, then the order trades were added); ids are never compared.
- A trade whose bucket has already closed (close_time + grace_ns <= max(watermark, last clock close))
  is late for that timeframe: it is never applied to a closed bar (closed bars are final), it IS
  applied to still-open bars of coarser timeframes, and it is reported in `late_timeframes` so that
  the caller counts it (it is still stored as a trade).
- An interval without trades produces no bar: there is no price to put in it, and indicators
  advance only on real bars.
- Feed each trade once (the store de-duplicates before the aggregator sees a trade). The aggregator
  trusts ts_event: the processor leaves out trades that fail the future-timestamp quality check.
- Restart warm-up: feeding the stored trades back through `add` in (ts_event, ts_recv) order,
  starting at the smallest `last_bar_close` over the timeframes (so at or before the open_time of every
  bar still open), re-creates the open bars exactly; the bars it closes on the way are the ones already
  stored (upserts are idempotent).

Speed: only the finest timeframes ("leaves") are fed trades; each coarser timeframe is built by
merging the closed bars of the largest finer timeframe that divides it (1m -> 5m -> 15m -> 1h ...),
so a trade costs one builder update whatever the number of timeframes.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

from core.errors import ConfigError
from core.timeframes import parse_timeframes, timeframe_ns
from core.types import Bar, Coverage, Trade
from processor.bar_builder import INF_NS, BarBuilder
from processor.bar_results import AddResult, BatchResult, LateTrade, WarmUpPlan, WarmUpStep
from processor.bar_state import Cursor, SymbolState
from processor.coverage import judge
from processor.decimals import DecimalReader

_INF_NS = INF_NS


_NOTHING = AddResult()
_NO_SYMBOLS: dict[str, SymbolState] = {}


class BarAggregator:
    """Open bars per (exchange, symbol, timeframe, bucket) for several timeframes, closed by watermark.

    timeframes: e.g. ("1m", "5m", "1h"); grace_ns: how long (event time) a bar stays open after its
    close_time for out-of-order trades. Not thread-safe; one aggregator per processing task.
    """

    def __init__(self, timeframes: Sequence[str], grace_ns: int) -> None:
        if grace_ns < 0:
            raise ConfigError(f"grace_ns must be >= 0, got {grace_ns}")
        self.timeframes = parse_timeframes(tuple(timeframes))
        self.grace_ns = grace_ns
        self._lengths = [timeframe_ns(tf) for tf in self.timeframes]
        self._source = [self._source_of(i) for i in range(len(self.timeframes))]
        self._consumers: list[list[int]] = [[] for _ in self.timeframes]
        for level, source in enumerate(self._source):
            if source is not None:
                self._consumers[source].append(level)
        self._leaves = [i for i, source in enumerate(self._source) if source is None]
        self._states: dict[tuple[str, str], SymbolState] = {}
        # the same states by exchange, then symbol: two lookups by string cost less than one by tuple
        self._venues: dict[str, dict[str, SymbolState]] = {}
        self.decimals = DecimalReader()

    def _source_of(self, level: int) -> int | None:
        """The largest finer timeframe that divides this one: its closed bars build this one's."""
        length = self._lengths[level]
        divisors = [i for i in range(level) if length % self._lengths[i] == 0 and self._lengths[i] < length]
        return divisors[-1] if divisors else None

    def _state(self, exchange: str, symbol: str) -> SymbolState:
        state = self._states.get((exchange, symbol))
        if state is None:
            state = SymbolState(exchange, symbol, len(self.timeframes), self._leaves)
            self._states[(exchange, symbol)] = state
            self._venues.setdefault(exchange, {})[symbol] = state
        return state

    def add(self, trade: Trade) -> AddResult:
        """Apply one trade; return the bars its event time closed and the timeframes it was late for.
        ValueError if its price or quantity is not a plain decimal (nothing is applied then)."""
        result = self.add_many((trade,))
        if result.unreadable:
            raise ValueError(f"not plain decimals: price {trade.price!r}, quantity {trade.quantity!r}")
        if not result.closed and not result.late:
            return _NOTHING
        return AddResult(tuple(result.closed), result.late[0].timeframes if result.late else ())

    def add_many(self, trades: Iterable[Trade]) -> BatchResult:
        """Apply trades in order; return the bars their event times closed, the late trades and the
        unreadable ones (see BatchResult).

        The fast path: a trade of a symbol with one leaf timeframe, inside its open leaf bucket and before
        anything is due, joins its cursor's run; runs are applied with one `BarBuilder.extend` each, before
        any trade takes the slow path (so every builder sees its trades in order) and at the end."""
        closed: list[Bar] = []
        late: list[LateTrade] = []
        unreadable: list[Trade] = []
        venues = self._venues
        runs: list[Cursor] = []
        for trade in trades:
            state = venues.get(trade.exchange, _NO_SYMBOLS).get(trade.symbol)
            ts = trade.ts_event
            if state is not None and ts < state.next_due:
                cursor = state.single
                if cursor is not None and cursor.start <= ts < cursor.end:
                    if ts > state.watermark:
                        state.watermark = ts
                        state.lag = trade.ts_recv - ts
                    run = cursor.run
                    if not run:
                        runs.append(cursor)
                    run.append(trade)
                    continue
            if runs:
                self._apply_runs(runs, unreadable)
            late_tfs = self._add(trade, closed, unreadable)
            if late_tfs:
                late.append(LateTrade(trade, late_tfs))
        if runs:
            self._apply_runs(runs, unreadable)
        return BatchResult(closed, late, unreadable)

    def _apply_runs(self, runs: list[Cursor], unreadable: list[Trade]) -> None:
        for cursor in runs:
            cursor.builder.extend(cursor.run, self.decimals, unreadable)  # type: ignore[union-attr]
            cursor.run.clear()
        runs.clear()

    def _readable(self, trade: Trade) -> bool:
        decimals = self.decimals
        try:
            decimals.prices.get(trade.price) or decimals.price(trade.price)
            decimals.sizes.get(trade.quantity) or decimals.size(trade.quantity)
        except ValueError:
            return False
        return True

    def _add(self, trade: Trade, closed: list[Bar], unreadable: list[Trade]) -> tuple[str, ...]:
        if not self._readable(trade):
            unreadable.append(trade)
            return ()
        state = self._states.get((trade.exchange, trade.symbol)) or self._state(trade.exchange, trade.symbol)
        ts = trade.ts_event
        if ts > state.watermark:
            state.watermark = ts
            state.lag = trade.ts_recv - ts
        late: tuple[str, ...] = ()
        one = (trade,)
        for cursor in state.cursors:
            if cursor.start <= ts < cursor.end:
                builder: BarBuilder | None = cursor.builder
            else:
                builder = self._open_leaf(state, cursor, ts)
            if builder is None:
                found: list[str] = []
                self._route_late(state, cursor.level, trade, found)
                late += tuple(found)
            else:
                builder.extend(one, self.decimals, unreadable)
        horizon = min(state.watermark, state.hold)
        if horizon >= state.next_due:
            closed.extend(self._close_through(state, horizon))
        return late

    def _open_leaf(self, state: SymbolState, cursor: Cursor, ts: int) -> BarBuilder | None:
        """The open builder of a leaf bucket holding ts (moving the cursor forward), None if closed."""
        length = self._lengths[cursor.level]
        start = ts - ts % length
        builder = self._builder(state, cursor.level, start)
        if builder is not None and start >= cursor.start:
            cursor.start, cursor.end, cursor.builder = start, start + length, builder
        return builder

    def _builder(self, state: SymbolState, level: int, start: int) -> BarBuilder | None:
        """The open builder of (level, bucket start), created if the bucket is open; None if closed."""
        builders = state.open[level]
        builder = builders.get(start)
        if builder is not None:
            return builder
        end = start + self._lengths[level]
        due = end + self.grace_ns
        if due <= min(state.watermark, state.hold) or due <= state.clock or end <= state.closed_until[level]:
            return None
        builder = BarBuilder(state.exchange, state.symbol, self.timeframes[level], start, end)
        builders[start] = builder
        if due < state.next_due:
            state.next_due = due
        return builder

    def _route_late(self, state: SymbolState, level: int, trade: Trade, found: list[str]) -> None:
        """Record `level` as late and apply the trade to the open bars of coarser timeframes."""
        found.append(self.timeframes[level])
        accounted = state.accounted[level]
        if trade.sequence is not None and accounted is not None and trade.sequence > accounted:
            state.accounted[level] = trade.sequence  # the next bar's chain starts after it
        ts = trade.ts_event
        for coarser in self._consumers[level]:
            length = self._lengths[coarser]
            builder = self._builder(state, coarser, ts - ts % length)
            if builder is None:
                self._route_late(state, coarser, trade, found)
            else:
                builder.extend((trade,), self.decimals, [])

    def _close_through(self, state: SymbolState, horizon: int) -> list[Bar]:
        """Close every bar of this symbol with close_time + grace <= horizon, finer timeframes first."""
        out: list[Bar] = []
        grace = self.grace_ns
        for level, builders in enumerate(state.open):
            length = self._lengths[level]
            due = sorted(start for start in builders if start + length + grace <= horizon)
            for start in due:
                builder = builders.pop(start)
                for coarser in self._consumers[level]:
                    clen = self._lengths[coarser]
                    self._coarser_part(state, coarser, start - start % clen).merge(builder)
                out.append(builder.to_bar(self._judge(state, level, builder)))
        for cursor in state.cursors:
            if cursor.start not in state.open[cursor.level]:
                cursor.start = cursor.end = 0
                cursor.builder = None
        self._reschedule(state)
        return out

    def _reschedule(self, state: SymbolState) -> None:
        """next_due: when the symbol's earliest open bar is due."""
        state.next_due = min(
            (
                start + self._lengths[level] + self.grace_ns
                for level, b in enumerate(state.open)
                for start in b
            ),
            default=_INF_NS,
        )

    @staticmethod
    def _judge(state: SymbolState, level: int, builder: BarBuilder) -> Coverage:
        """The closing bar's coverage; its highest sequence is accounted for from now on."""
        previous = state.accounted[level]
        coverage = judge(
            builder.trade_count,
            builder.sequenced,
            builder.min_sequence,
            builder.max_sequence,
            builder.repaired,
            previous,
        )
        if builder.sequenced:
            state.accounted[level] = max(previous or builder.max_sequence, builder.max_sequence)
        return coverage

    def _coarser_part(self, state: SymbolState, level: int, start: int) -> BarBuilder:
        """The builder a closing finer bar merges into. It may be due in this same pass (a quiet
        market): it is created anyway and closes after its parts, since coarser levels come later."""
        builders = state.open[level]
        builder = builders.get(start)
        if builder is None:
            end = start + self._lengths[level]
            builder = BarBuilder(state.exchange, state.symbol, self.timeframes[level], start, end)
            if end <= state.closed_until[level]:
                return builder  # stored before a restart: never re-emitted, so not registered
            builders[start] = builder
        return builder

    def close_due(self, now_ns: int, live: Collection[tuple[str, str]] | None = None) -> list[Bar]:
        """Clock-driven closing for quiet markets: close bars with close_time + grace_ns <= the symbol's
        event clock, which is now_ns (wall-clock ns UTC, an injected clock) less the symbol's receive lag
        (ts_recv - ts_event of the trade that set its watermark). Live, that is about now_ns; in a replay
        of old trades it advances only while the market is quiet, so replayed trades are never late.

        live: the (exchange, symbol) pairs whose feed is known to be up (None: all); the others' bars
        wait, since trades of theirs may still be on the way. From then on trades of the symbols closed
        for those buckets are late. A symbol first seen later is not: no bar of it can have been closed.
        """
        out: list[Bar] = []
        for key, state in self._states.items():
            if state.lag is None or (live is not None and key not in live):
                continue
            event_now = min(now_ns - max(state.lag, 0), state.hold)
            if event_now > state.clock:
                state.clock = event_now
            if state.next_due <= event_now:
                out.extend(self._close_through(state, max(event_now, min(state.watermark, state.hold))))
        return out

    def close_all(self, exchange: str) -> list[Bar]:
        """The exchange's source has ended (a finite replay played to its end): close every open bar of
        its symbols, finer timeframes first. A trade of theirs arriving after this is late."""
        out: list[Bar] = []
        for (venue, _), state in self._states.items():
            if venue == exchange:
                state.clock = _INF_NS
                out.extend(self._close_through(state, _INF_NS))
        return out

    def hold(self, exchange: str, symbol: str, until_ns: int | None) -> None:
        """Close no bar of the symbol past event time `until_ns` (None: no hold): trades missing from a gap
        after `until_ns` are on their way, and the bars they belong to must wait for them. Trades keep
        being applied meanwhile; once the hold is lifted (or moved later) the due bars close."""
        self._state(exchange, symbol).hold = _INF_NS if until_ns is None else until_ns

    def open_bars(self) -> list[Bar]:
        """Snapshot of every open bar (coarser bars include their finer parts that are still open)."""
        out: list[Bar] = []
        for state in self._states.values():
            views: list[dict[int, BarBuilder]] = [
                {start: b.copy() for start, b in builders.items()} for builders in state.open
            ]
            for level, view in enumerate(views):
                for start, part in sorted(view.items()):
                    for coarser in self._consumers[level]:
                        clen = self._lengths[coarser]
                        cstart = start - start % clen
                        target = views[coarser].get(cstart)
                        if target is None:
                            target = BarBuilder(
                                state.exchange, state.symbol, self.timeframes[coarser], cstart, cstart + clen
                            )
                            views[coarser][cstart] = target
                        target.merge(part)
                    out.append(part.to_bar())
        return out

    def mark_closed(
        self, exchange: str, symbol: str, timeframe: str, until_ns: int, max_sequence: int | None = None
    ) -> None:
        """Declare the bars of `timeframe` that end at or before `until_ns` closed (stored before a restart),
        the last of them with highest sequence `max_sequence` (the next bar's chain starts after it).

        Trades for those buckets are then late for that timeframe and go to the open coarser bars, which
        is what rebuilding open bars from stored trades after a restart needs.
        """
        state = self._state(exchange, symbol)
        level = self.timeframes.index(timeframe)
        state.closed_until[level] = max(state.closed_until[level], until_ns)
        if max_sequence is not None:
            state.accounted[level] = max(state.accounted[level] or max_sequence, max_sequence)

    def warm_up_plan(self, exchange: str, symbol: str) -> WarmUpPlan:
        """After `mark_closed` for each timeframe with stored bars: see WarmUpPlan."""
        closed = self._state(exchange, symbol).closed_until  # -1: nothing stored
        leaves = min(closed[level] for level in self._leaves)
        full = None if min(closed) < 0 else min(closed)
        steps: list[WarmUpStep] = []
        for level, source in enumerate(self._source):
            if source is None or closed[source] < 0:
                continue  # a leaf (its trades are replayed), or a source with nothing stored
            if closed[level] < 0:  # every stored part would be open: replay them all instead
                return WarmUpPlan(None, None, full)
            if closed[level] < closed[source]:
                tf, source_tf = self.timeframes[level], self.timeframes[source]
                steps.append(WarmUpStep(tf, source_tf, closed[level], closed[source]))
        return WarmUpPlan(tuple(steps), None if leaves < 0 else leaves, full)

    def restore(self, exchange: str, symbol: str, timeframe: str, parts: Iterable[Bar]) -> None:
        """Merge stored closed bars (of a finer timeframe) into the open bars of `timeframe` they belong
        to, as closing them would have (a step of a WarmUpPlan)."""
        state = self._state(exchange, symbol)
        level = self.timeframes.index(timeframe)
        length = self._lengths[level]
        for part in parts:
            start = part.open_time - part.open_time % length
            self._coarser_part(state, level, start).merge(BarBuilder.from_bar(part))
        self._reschedule(state)

    def replayed(self, exchange: str, symbol: str) -> None:
        """The symbol's trades so far were replayed from the store (a warm-up): they tell nothing about
        the event clock now, so its bars close on the clock again only after a new trade moves its
        watermark, or `settle`. Otherwise a restart would close open bars while trades still on their way
        (on the bus, or sent again by a source) belong to them."""
        state = self._state(exchange, symbol)
        state.replay_lag = state.lag or 0
        state.lag = None

    def settle(self, exchange: str, symbol: str) -> None:
        """Nothing more is on its way for the symbol's replayed trades (its feed has been quiet since):
        its event clock runs again from the lag of the last replayed trade."""
        state = self._state(exchange, symbol)
        if state.lag is None:
            state.lag = state.replay_lag

    def unsettled(self) -> list[tuple[str, str]]:
        """The symbols replayed and not settled since (their bars do not close on the clock)."""
        return [key for key, state in self._states.items() if state.lag is None]

    def watermark(self, exchange: str, symbol: str) -> int | None:
        """Largest ts_event seen for the symbol (ns), None if none yet."""
        state = self._states.get((exchange, symbol))
        return None if state is None or state.watermark < 0 else state.watermark
