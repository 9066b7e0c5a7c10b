"""One bar being built: OHLCV, exact volumes and sequence statistics over [open_time, close_time) (pure).

`BarBuilder` is what `processor.bars.BarAggregator` keeps per open bar; it applies trades (in runs, which
is the per-trade cost of the whole processor) and merges finer bars into coarser ones.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from itertools import compress
from operator import mul
from typing import Final, cast

from core.types import Bar, Coverage, Trade
from processor.decimals import (
    POW10,
    Column,
    DecimalReader,
    Price,
    Size,
    orders_as_floats,
    read_column,
    read_price,
    read_size,
    to_text,
)

INF_NS = 1 << 62  # "never": larger than any ns timestamp we will see (year 2116)
COLUMN_MIN: Final = 8  # shorter runs are applied trade by trade


def _earliest(times: list[int], received: list[int]) -> int:
    """Index of the earliest trade by (ts_event, ts_recv), the first of equal ones."""
    best = 0
    for i in range(1, len(times)):
        if times[i] < times[best] or (times[i] == times[best] and received[i] < received[best]):
            best = i
    return best


def _latest(times: list[int], received: list[int]) -> int:
    """Index of the latest trade by (ts_event, ts_recv), the last of equal ones."""
    best = 0
    for i in range(1, len(times)):
        if times[i] > times[best] or (times[i] == times[best] and received[i] >= received[best]):
            best = i
    return best


class BarBuilder:
    """Accumulates one bar over [open_time, close_time) (ns UTC), trade by trade or by merging.

    open/high/low/close keep the exact price strings of the trades that set them (compared by float
    value; on equal high/low the first seen wins). open/close are the earliest/latest trades by
    (ts_event, ts_recv), ties going to the order of `add` (receive order), so out-of-order arrival does not
    matter and venue ids of any form work. first/last_trade_id are the venue ids of the open and close
    trades.

    Sizes are exact: buy and sell volumes (by taker side) are integer units at `size_scale` decimals, the
    quote volume (sum of price x quantity) integer units at `quote_scale` decimals (see processor.decimals);
    a scale only grows, to the most decimals any of its trades had. The sequence range, the count of
    trades with a sequence and of repaired (backfilled) trades let the bar's coverage be judged at close.
    """

    __slots__ = (
        "buy_units",
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
        "max_sequence",
        "min_sequence",
        "open",
        "open_id",
        "open_recv",
        "open_time",
        "open_ts",
        "quote_scale",
        "quote_units",
        "repaired",
        "sell_units",
        "sequenced",
        "size_scale",
        "symbol",
        "timeframe",
        "trade_count",
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
        self.open_ts = self.open_recv = INF_NS
        self.close_ts = self.close_recv = -1
        self.open_id = self.close_id = ""
        self.buy_units = self.sell_units = self.quote_units = 0
        self.size_scale = self.quote_scale = 0
        self.trade_count = self.sequenced = self.repaired = 0
        self.min_sequence = INF_NS
        self.max_sequence = -1

    def extend(self, trades: Sequence[Trade], decimals: DecimalReader, unreadable: list[Trade]) -> None:
        """Apply trades in order. A trade whose price or quantity is not a plain decimal is not applied: it
        goes to `unreadable`. This is the per-trade cost of the whole aggregator: a run whose prices and
        sizes each keep one layout (fixed decimals, as venues write them) is applied column by column, in
        C calls over the run (`_extend_columns`); other trades one by one (`_extend_each`)."""
        if len(trades) < COLUMN_MIN or not self._extend_columns(trades):
            self._extend_each(trades, decimals, unreadable)

    def _extend_columns(self, trades: Sequence[Trade]) -> bool:
        """Apply a run whose prices and whose sizes each have one layout (read_column); False (nothing
        applied) for any other run. Columns are read with comprehensions (cheaper than attrgetter)."""
        texts = [trade.price for trade in trades]
        prices = read_column(texts)
        if prices is None or not orders_as_floats(prices[1]):
            return False  # price integers would order otherwise than the floats of `_extend_each`
        sizes = read_column([trade.quantity for trade in trades])
        if sizes is None:
            return False
        self._take_ends(trades, texts, prices)
        self._take_extremes(texts, prices)
        self._add_volumes(trades, prices, sizes)
        self._count(trades)
        return True

    def _take_ends(self, trades: Sequence[Trade], texts: list[str], prices: Column) -> None:
        """Open and close: the run's earliest and latest trades by (ts_event, ts_recv, order), as `merge`
        takes another builder's. Mostly the first and the last: both times in order (a sorted list sorts
        in one pass)."""
        times, received = [trade.ts_event for trade in trades], [trade.ts_recv for trade in trades]
        first, last = 0, len(times) - 1
        if times != sorted(times) or received != sorted(received):
            first, last = _earliest(times, received), _latest(times, received)
        close_ts, close_recv = self.close_ts, self.close_recv
        if times[last] > close_ts or (times[last] == close_ts and received[last] >= close_recv):
            self.close, self.close_ts, self.close_recv = texts[last], times[last], received[last]
            self.close_px = (prices[0][last] - POW10[prices[1]]) / POW10[prices[2]]
            self.close_id = trades[last].trade_id
        open_ts, open_recv = self.open_ts, self.open_recv
        if times[first] < open_ts or (times[first] == open_ts and received[first] < open_recv):
            self.open, self.open_ts, self.open_recv = texts[first], times[first], received[first]
            self.open_id = trades[first].trade_id

    def _take_extremes(self, texts: list[str], prices: Column) -> None:
        """High and low (the first of equal ones): the price integers order as the floats do."""
        marked, digits, scale = prices
        highest, lowest = max(marked), min(marked)
        mark, unit = POW10[digits], POW10[scale]
        px = (highest - mark) / unit  # == read_price's float: fewer than 16 digits, scale < 23
        if px > self.high_px:
            self.high, self.high_px = texts[marked.index(highest)], px
        px = (lowest - mark) / unit
        if px < self.low_px:
            self.low, self.low_px = texts[marked.index(lowest)], px

    def _add_volumes(self, trades: Sequence[Trade], prices: Column, sizes: Column) -> None:
        """Buy, sell and quote volumes from the marked integers m = M + units (read_column), in sums:
        sum(units) = sum(m) - n*M and sum(pu*qu) = sum(pm*qm) - Q*sum(pm) - P*sum(qm) + n*P*Q."""
        price_marked, price_digits, price_scale = prices
        size_marked, size_digits, size_scale = sizes
        p_mark, q_mark, count = POW10[price_digits], POW10[size_digits], len(size_marked)
        buys = list(compress(size_marked, [trade.side == "buy" for trade in trades]))
        buy = sum(buys) - len(buys) * q_mark
        size_sum = sum(size_marked)
        sell = size_sum - count * q_mark - buy
        quote = (
            sum(map(mul, price_marked, size_marked))
            - q_mark * sum(price_marked)
            - p_mark * size_sum
            + count * p_mark * q_mark
        )
        buy, sell = self._align_size(buy, size_scale), self._align_size(sell, size_scale)
        quote = self._align_quote(quote, price_scale + size_scale)
        self.buy_units += buy
        self.sell_units += sell
        self.quote_units += quote

    def _count(self, trades: Sequence[Trade]) -> None:
        """Trade count, sequence range and count, repaired count."""
        self.trade_count += len(trades)
        sequences = cast("list[int]", [trade.sequence for trade in trades])  # None: see below
        try:  # sorted(): TypeError for a None among ints; one pass over sequences in order
            ordered = sequences[0] is not None and sequences == sorted(sequences)
        except TypeError:
            ordered = False
        if not ordered:
            sequences = [sequence for sequence in sequences if sequence is not None]
        if sequences:
            self.sequenced += len(sequences)
            lowest, highest = (sequences[0], sequences[-1]) if ordered else (min(sequences), max(sequences))
            self.min_sequence = min(self.min_sequence, lowest)
            self.max_sequence = max(self.max_sequence, highest)
        if True in [trade.backfilled for trade in trades]:
            self.repaired += sum(trade.backfilled for trade in trades)

    def _extend_each(self, trades: Iterable[Trade], decimals: DecimalReader, unreadable: list[Trade]) -> None:
        """Apply trades one by one, their decimals read through the caches (a single trade, or a run the
        columns do not take)."""
        prices, sizes = decimals.prices.get, decimals.sizes.get
        for trade in trades:
            try:
                price = prices(trade.price) or decimals.price(trade.price)
                size = sizes(trade.quantity) or decimals.size(trade.quantity)
            except ValueError:
                unreadable.append(trade)
                continue
            self._take_one(trade, price[0])
            self._add_one(trade, price, size)
            self._count_one(trade)

    def _count_one(self, trade: Trade) -> None:
        """Trade count, sequence range and count, repaired count, for one more trade."""
        self.trade_count += 1
        sequence = trade.sequence
        if sequence is not None:
            self.sequenced += 1
            if sequence < self.min_sequence:
                self.min_sequence = sequence
            if sequence > self.max_sequence:
                self.max_sequence = sequence
        if trade.backfilled:
            self.repaired += 1

    def _take_one(self, trade: Trade, px: float) -> None:
        """Open, close, high and low, for one more trade."""
        ts, recv, text = trade.ts_event, trade.ts_recv, trade.price
        if ts > self.close_ts or (ts == self.close_ts and recv >= self.close_recv):
            self.close, self.close_px, self.close_ts, self.close_recv = text, px, ts, recv
            self.close_id = trade.trade_id
        if ts < self.open_ts or (ts == self.open_ts and recv < self.open_recv):
            self.open, self.open_ts, self.open_recv, self.open_id = text, ts, recv, trade.trade_id
        if px > self.high_px:
            self.high, self.high_px = text, px
        if px < self.low_px:
            self.low, self.low_px = text, px

    def _add_one(self, trade: Trade, price: Price, size: Size) -> None:
        """Volumes, for one more trade."""
        units, scale = size
        quote = self._align_quote(price[1] * units, price[2] + scale)
        units = self._align_size(units, scale)
        if trade.side == "buy":
            self.buy_units += units
        else:
            self.sell_units += units
        self.quote_units += quote

    def add_trade(self, trade: Trade) -> None:
        """Apply one trade record; ValueError if its price or quantity is not a plain decimal."""
        unreadable: list[Trade] = []
        self.extend((trade,), DecimalReader(), unreadable)
        if unreadable:
            raise ValueError(f"not plain decimals: price {trade.price!r}, quantity {trade.quantity!r}")

    def _align_size(self, units: int, scale: int) -> int:
        """`units` at `scale` decimals, re-expressed at the builder's size scale (which grows if needed)."""
        if scale > self.size_scale:
            factor = POW10[scale - self.size_scale]
            self.buy_units *= factor
            self.sell_units *= factor
            self.size_scale = scale
            return units
        return units * POW10[self.size_scale - scale]

    def _align_quote(self, units: int, scale: int) -> int:
        if scale > self.quote_scale:
            self.quote_units *= POW10[scale - self.quote_scale]
            self.quote_scale = scale
            return units
        return units * POW10[self.quote_scale - scale]

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
        # aligned first: aligning may rescale the sums (`self.x += align(...)` would add to the old value)
        buy = self._align_size(other.buy_units, other.size_scale)
        sell = self._align_size(other.sell_units, other.size_scale)
        quote = self._align_quote(other.quote_units, other.quote_scale)
        self.buy_units += buy
        self.sell_units += sell
        self.quote_units += quote
        self.trade_count += other.trade_count
        self.sequenced += other.sequenced
        self.repaired += other.repaired
        self.min_sequence = min(self.min_sequence, other.min_sequence)
        self.max_sequence = max(self.max_sequence, other.max_sequence)

    def copy(self, timeframe: str | None = None) -> BarBuilder:
        """An independent builder with the same trades (optionally relabelled)."""
        twin = BarBuilder(
            self.exchange, self.symbol, timeframe or self.timeframe, self.open_time, self.close_time
        )
        twin.merge(self)
        return twin

    @classmethod
    def from_bar(cls, bar: Bar) -> BarBuilder:
        """A builder holding a stored bar's trades, to merge into a coarser bar (a restart's warm-up).
        Without the times of its open and close trades (a bar stored before they were recorded), its open
        and close stand at its bucket's ends, which orders it correctly against other whole bars."""
        builder = cls(bar.exchange, bar.symbol, bar.timeframe, bar.open_time, bar.close_time)
        builder.open, builder.high, builder.low, builder.close = bar.open, bar.high, bar.low, bar.close
        builder.high_px = read_price(bar.high)[0]
        builder.low_px = read_price(bar.low)[0]
        builder.close_px = read_price(bar.close)[0]
        builder.open_id, builder.close_id = bar.first_trade_id, bar.last_trade_id
        # receive times are not stored: -1 lets a trade received after the restart with the same event
        # time win the close, and never the open, as it would have in an uninterrupted run
        builder.open_ts, builder.open_recv = bar.first_trade_ns or bar.open_time, -1
        builder.close_ts, builder.close_recv = bar.last_trade_ns or bar.close_time - 1, -1
        buy, sell = read_size(bar.buy_volume), read_size(bar.sell_volume)
        builder.size_scale = max(buy[1], sell[1])
        builder.buy_units = buy[0] * POW10[builder.size_scale - buy[1]]
        builder.sell_units = sell[0] * POW10[builder.size_scale - sell[1]]
        builder.quote_units, builder.quote_scale = read_size(bar.quote_volume)
        builder.trade_count, builder.repaired = bar.trade_count, bar.repaired_trades
        builder.sequenced = bar.sequenced_trades
        if bar.min_sequence is not None and bar.max_sequence is not None:
            builder.min_sequence, builder.max_sequence = bar.min_sequence, bar.max_sequence
        return builder

    def to_bar(self, coverage: Coverage = Coverage.OPEN) -> Bar:
        """The bar as it stands. vwap = quote_volume / volume, correctly rounded from the exact sums (the
        close price if the volume is 0)."""
        volume = self.buy_units + self.sell_units
        if volume > 0:
            vwap = (self.quote_units * 10**self.size_scale) / (volume * 10**self.quote_scale)
        else:
            vwap = self.close_px
        sequenced = self.sequenced > 0
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
            volume=to_text(volume, self.size_scale),
            quote_volume=to_text(self.quote_units, self.quote_scale),
            vwap=vwap,
            trade_count=self.trade_count,
            buy_volume=to_text(self.buy_units, self.size_scale),
            sell_volume=to_text(self.sell_units, self.size_scale),
            first_trade_id=self.open_id,
            last_trade_id=self.close_id,
            min_sequence=self.min_sequence if sequenced else None,
            max_sequence=self.max_sequence if sequenced else None,
            sequenced_trades=self.sequenced,
            repaired_trades=self.repaired,
            coverage=coverage,
            first_trade_ns=self.open_ts if self.trade_count else 0,
            last_trade_ns=self.close_ts if self.trade_count else 0,
        )
