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

import math
from collections.abc import Iterable, Sequence

import msgspec

from core.errors import ConfigError
from core.timeframes import parse_timeframes, timeframe_ns
from core.types import Bar, Trade

_INF_NS = 1 << 62  # "never": larger than any ns timestamp we will see (year 2116)


class BarBuilder:
    """Accumulates one bar over [open_time, close_time) (ns UTC), trade by trade or by merging.

    open/high/low/close keep the exact price strings of the trades that set them (compared by float
    value; on equal high/low the first seen wins). open/close are the earliest/latest trades by
    (ts_event, ts_recv), ties going to the order of `add` (receive order), so out-of-order arrival does not
    matter and venue ids of any form work. buy/sell volumes are by taker side. first/last_trade_id are the
    venue ids of the open and close trades.
    """

    __slots__ = (
        "buy_volume",
        "close",
        "close_id",
        "close_px",
        "close_recv",
        "close_time",
        "close_ts",
        "exchange",
        "high",
        "high_px",
        "low",
        "low_px",
        "open",
        "open_id",
        "open_recv",
        "open_time",
        "open_ts",
        "quote_volume",
        "sell_volume",
        "symbol",
        "timeframe",
        "trade_count",
        "volume",
    )

    def __init__(self, exchange: str, symbol: str, timeframe: str, open_time: int, close_time: int) -> None:
        self.exchange = exchange
        self.symbol = symbol
        self.timeframe = timeframe
        self.open_time = open_time
        self.close_time = close_time
        self.open = self.high = self.low = self.close = ""
        self.high_px = -math.inf
        self.low_px = math.inf
        self.close_px = 0.0
        self.open_ts = self.open_recv = _INF_NS
        self.close_ts = self.close_recv = -1
        self.open_id = self.close_id = ""
        self.volume = self.quote_volume = self.buy_volume = self.sell_volume = 0.0
        self.trade_count = 0

    def add(self, ts: int, recv: int, trade_id: str, price: str, px: float, qty: float, is_buy: bool) -> None:
        """Apply one trade: event time ts and receive time recv (ns), its venue id, its price string and
        float value, its base quantity, whether the taker bought."""
        if ts > self.close_ts or (ts == self.close_ts and recv >= self.close_recv):
            self.close = price
            self.close_px = px
            self.close_ts = ts
            self.close_recv = recv
            self.close_id = trade_id
            if self.trade_count == 0:
                self.open = price
                self.open_ts = ts
                self.open_recv = recv
                self.open_id = trade_id
        elif ts < self.open_ts or (ts == self.open_ts and recv < self.open_recv):
            self.open = price
            self.open_ts = ts
            self.open_recv = recv
            self.open_id = trade_id
        if px > self.high_px:
            self.high = price
            self.high_px = px
        if px < self.low_px:
            self.low = price
            self.low_px = px
        self.volume += qty
        self.quote_volume += px * qty
        self.trade_count += 1
        if is_buy:
            self.buy_volume += qty
        else:
            self.sell_volume += qty

    def add_trade(self, trade: Trade) -> None:
        """Apply one trade record (parses its price and quantity strings)."""
        _apply(self, trade, float(trade.price), float(trade.quantity))

    def merge(self, other: BarBuilder) -> None:
        """Fold in another builder's trades (a finer bar inside this one, or a copy)."""
        if other.trade_count == 0:
            return
        if other.close_ts > self.close_ts or (
            other.close_ts == self.close_ts and other.close_recv >= self.close_recv
        ):
            self.close, self.close_px = other.close, other.close_px
            self.close_ts, self.close_recv, self.close_id = other.close_ts, other.close_recv, other.close_id
        if other.open_ts < self.open_ts or (
            other.open_ts == self.open_ts and other.open_recv < self.open_recv
        ):
            self.open, self.open_ts, self.open_recv, self.open_id = (
                other.open,
                other.open_ts,
                other.open_recv,
                other.open_id,
            )
        if other.high_px > self.high_px:
            self.high, self.high_px = other.high, other.high_px
        if other.low_px < self.low_px:
            self.low, self.low_px = other.low, other.low_px
        self.volume += other.volume
        self.quote_volume += other.quote_volume
        self.trade_count += other.trade_count
        self.buy_volume += other.buy_volume
        self.sell_volume += other.sell_volume

    def copy(self, timeframe: str | None = None) -> BarBuilder:
        """An independent builder with the same trades (optionally relabelled)."""
        twin = BarBuilder(
            self.exchange, self.symbol, timeframe or self.timeframe, self.open_time, self.close_time
        )
        twin.merge(self)
        return twin

    def to_bar(self) -> Bar:
        """The bar as it stands (vwap = quote_volume / volume; the close price if volume is 0)."""
        vwap = self.quote_volume / self.volume if self.volume > 0 else self.close_px
        return Bar(
            exchange=self.exchange,
            symbol=self.symbol,
            timeframe=self.timeframe,
            open_time=self.open_time,
            close_time=self.close_time,
            open=self.open,
            high=self.high,
            low=self.low,
            close=self.close,
            volume=self.volume,
            quote_volume=self.quote_volume,
            vwap=vwap,
            trade_count=self.trade_count,
            buy_volume=self.buy_volume,
            sell_volume=self.sell_volume,
            first_trade_id=self.open_id,
            last_trade_id=self.close_id,
        )


class AddResult(msgspec.Struct, frozen=True, gc=False):
    """What one `BarAggregator.add` did: bars it closed (time order per key) and the timeframes for
    which the trade came too late (its bar had already closed; the trade was not applied there)."""

    closed: tuple[Bar, ...] = ()
    late_timeframes: tuple[str, ...] = ()

    @property
    def late(self) -> bool:
        return bool(self.late_timeframes)


class LateTrade(msgspec.Struct, frozen=True, gc=False):
    """A trade that was late for some timeframes (see `AddResult.late_timeframes`)."""

    trade: Trade
    timeframes: tuple[str, ...]


class BatchResult(msgspec.Struct, gc=False):
    """What `BarAggregator.add_many` did: closed bars (time order per key) and the late trades."""

    closed: list[Bar]
    late: list[LateTrade]


_NOTHING = AddResult()


def _apply(builder: BarBuilder, trade: Trade, px: float, qty: float) -> None:
    """`builder.add` for a trade record whose price and quantity are already parsed."""
    builder.add(trade.ts_event, trade.ts_recv, trade.trade_id, trade.price, px, qty, trade.side == "buy")


class _Cursor:
    """The newest open bucket of one leaf timeframe of one symbol: the per-trade fast path."""

    __slots__ = ("builder", "end", "level", "start")

    def __init__(self, level: int) -> None:
        self.level = level
        self.start = 0
        self.end = 0
        self.builder: BarBuilder | None = None


class _SymbolState:
    """Open bars of one (exchange, symbol): per timeframe level, bucket start -> builder."""

    __slots__ = (
        "clock",
        "closed_until",
        "cursors",
        "exchange",
        "hold",
        "lag",
        "next_due",
        "open",
        "symbol",
        "watermark",
    )

    def __init__(self, exchange: str, symbol: str, levels: int, leaves: Sequence[int]) -> None:
        self.exchange = exchange
        self.symbol = symbol
        self.watermark = -1
        self.clock = -1  # the latest close_due() time this symbol has seen: buckets due by then are closed
        self.lag = 0  # ts_recv - ts_event of the trade that set the watermark: wall clock -> event clock
        self.hold = (
            _INF_NS  # no bar closes past this event time (a gap being repaired; see BarAggregator.hold)
        )
        self.next_due = _INF_NS
        self.open: list[dict[int, BarBuilder]] = [{} for _ in range(levels)]
        self.closed_until = [-1] * levels
        self.cursors = [_Cursor(level) for level in leaves]


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
        self._states: dict[tuple[str, str], _SymbolState] = {}

    def _source_of(self, level: int) -> int | None:
        """The largest finer timeframe that divides this one: its closed bars build this one's."""
        length = self._lengths[level]
        divisors = [i for i in range(level) if length % self._lengths[i] == 0 and self._lengths[i] < length]
        return divisors[-1] if divisors else None

    def _state(self, exchange: str, symbol: str) -> _SymbolState:
        state = self._states.get((exchange, symbol))
        if state is None:
            state = _SymbolState(exchange, symbol, len(self.timeframes), self._leaves)
            self._states[(exchange, symbol)] = state
        return state

    def add(self, trade: Trade) -> AddResult:
        """Apply one trade; return the bars its event time closed and the timeframes it was late for."""
        closed: list[Bar] = []
        late = self._add(trade, closed)
        if not closed and not late:
            return _NOTHING
        return AddResult(tuple(closed), late)

    def add_many(self, trades: Iterable[Trade]) -> BatchResult:
        """`add` for a batch (same results, less overhead per trade)."""
        closed: list[Bar] = []
        late: list[LateTrade] = []
        states = self._states
        for trade in trades:
            state = states.get((trade.exchange, trade.symbol))
            ts = trade.ts_event
            if state is not None and len(state.cursors) == 1 and ts < state.next_due:
                cursor = state.cursors[0]
                if cursor.start <= ts < cursor.end:
                    if ts > state.watermark:
                        state.watermark = ts
                        state.lag = trade.ts_recv - ts
                    price = trade.price
                    cursor.builder.add(  # type: ignore[union-attr]
                        ts,
                        trade.ts_recv,
                        trade.trade_id,
                        price,
                        float(price),
                        float(trade.quantity),
                        trade.side == "buy",
                    )
                    continue
            late_tfs = self._add(trade, closed)
            if late_tfs:
                late.append(LateTrade(trade, late_tfs))
        return BatchResult(closed, late)

    def _add(self, trade: Trade, closed: list[Bar]) -> tuple[str, ...]:
        state = self._states.get((trade.exchange, trade.symbol)) or self._state(trade.exchange, trade.symbol)
        ts = trade.ts_event
        if ts > state.watermark:
            state.watermark = ts
            state.lag = trade.ts_recv - ts
        px = float(trade.price)
        qty = float(trade.quantity)
        late: tuple[str, ...] = ()
        for cursor in state.cursors:
            if cursor.start <= ts < cursor.end:
                builder: BarBuilder | None = cursor.builder
            else:
                builder = self._open_leaf(state, cursor, ts)
            if builder is None:
                found: list[str] = []
                self._route_late(state, cursor.level, trade, px, qty, found)
                late += tuple(found)
            else:
                _apply(builder, trade, px, qty)
        horizon = min(state.watermark, state.hold)
        if horizon >= state.next_due:
            closed.extend(self._close_through(state, horizon))
        return late

    def _open_leaf(self, state: _SymbolState, cursor: _Cursor, ts: int) -> BarBuilder | None:
        """The open builder of a leaf bucket holding ts (moving the cursor forward), None if closed."""
        length = self._lengths[cursor.level]
        start = ts - ts % length
        builder = self._builder(state, cursor.level, start)
        if builder is not None and start >= cursor.start:
            cursor.start, cursor.end, cursor.builder = start, start + length, builder
        return builder

    def _builder(self, state: _SymbolState, level: int, start: int) -> BarBuilder | None:
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

    def _route_late(
        self, state: _SymbolState, level: int, trade: Trade, px: float, qty: float, found: list[str]
    ) -> None:
        """Record `level` as late and apply the trade to the open bars of coarser timeframes."""
        found.append(self.timeframes[level])
        ts = trade.ts_event
        for coarser in self._consumers[level]:
            length = self._lengths[coarser]
            builder = self._builder(state, coarser, ts - ts % length)
            if builder is None:
                self._route_late(state, coarser, trade, px, qty, found)
            else:
                _apply(builder, trade, px, qty)

    def _close_through(self, state: _SymbolState, horizon: int) -> list[Bar]:
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
                out.append(builder.to_bar())
        for cursor in state.cursors:
            if cursor.start not in state.open[cursor.level]:
                cursor.start = cursor.end = 0
                cursor.builder = None
        state.next_due = min(
            (start + self._lengths[level] + grace for level, b in enumerate(state.open) for start in b),
            default=_INF_NS,
        )
        return out

    def _coarser_part(self, state: _SymbolState, level: int, start: int) -> BarBuilder:
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

    def close_due(self, now_ns: int) -> list[Bar]:
        """Clock-driven closing for quiet markets: close bars with close_time + grace_ns <= the symbol's
        event clock, which is now_ns (wall-clock ns UTC, an injected clock) less the symbol's receive lag
        (ts_recv - ts_event of the trade that set its watermark). Live, that is about now_ns; in a replay
        of old trades it advances only while the market is quiet, so replayed trades are never late.

        From then on trades of the symbols known now for those buckets are late. A symbol first seen
        later is not: no bar of it can have been closed.
        """
        out: list[Bar] = []
        for state in self._states.values():
            event_now = min(now_ns - max(state.lag, 0), state.hold)
            if event_now > state.clock:
                state.clock = event_now
            if state.next_due <= event_now:
                out.extend(self._close_through(state, max(event_now, min(state.watermark, state.hold))))
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

    def mark_closed(self, exchange: str, symbol: str, timeframe: str, until_ns: int) -> None:
        """Declare the bars of `timeframe` that end at or before `until_ns` closed (stored before a restart).

        Trades for those buckets are then late for that timeframe and go to the open coarser bars, which
        is what rebuilding open bars from stored trades after a restart needs.
        """
        state = self._state(exchange, symbol)
        level = self.timeframes.index(timeframe)
        state.closed_until[level] = max(state.closed_until[level], until_ns)

    def watermark(self, exchange: str, symbol: str) -> int | None:
        """Largest ts_event seen for the symbol (ns), None if none yet."""
        state = self._states.get((exchange, symbol))
        return None if state is None or state.watermark < 0 else state.watermark
