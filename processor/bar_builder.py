"""One bar being built: OHLCV, exact volumes and sequence statistics over [open_time, close_time) (pure).

`BarBuilder` is what `processor.bars.BarAggregator` keeps per open bar; it applies trades (in runs, which
is the per-trade cost of the whole processor) and merges finer bars into coarser ones.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from core.types import Bar, Coverage, Trade
from processor.decimals import POW10, DecimalReader, read_price, read_size, to_text

INF_NS = 1 << 62  # "never": larger than any ns timestamp we will see (year 2116)


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

    def extend(self, trades: Iterable[Trade], decimals: DecimalReader, unreadable: list[Trade]) -> None:
        """Apply trades in order. A trade whose price or quantity is not a plain decimal is not applied: it
        goes to `unreadable`. The state is worked on in locals (this is the per-trade cost of the whole
        aggregator) and written back once."""
        prices, sizes = decimals.prices.get, decimals.sizes.get
        open_, open_ts, open_recv, open_id = self.open, self.open_ts, self.open_recv, self.open_id
        close, close_ts, close_recv, close_id = self.close, self.close_ts, self.close_recv, self.close_id
        high, high_px, low, low_px, close_px = self.high, self.high_px, self.low, self.low_px, self.close_px
        buy, sell, size_scale = self.buy_units, self.sell_units, self.size_scale
        quote, quote_scale = self.quote_units, self.quote_scale
        count, sequenced, repaired = self.trade_count, self.sequenced, self.repaired
        min_sequence, max_sequence = self.min_sequence, self.max_sequence
        for trade in trades:
            text = trade.price
            try:
                px, price_units, price_scale = prices(text) or decimals.price(text)
                units, scale = sizes(trade.quantity) or decimals.size(trade.quantity)
            except ValueError:
                unreadable.append(trade)
                continue
            ts = trade.ts_event
            if ts > close_ts or (ts == close_ts and trade.ts_recv >= close_recv):
                close, close_px, close_ts, close_recv, close_id = text, px, ts, trade.ts_recv, trade.trade_id
                if count == 0:
                    open_, open_ts, open_recv, open_id = text, ts, trade.ts_recv, trade.trade_id
            elif ts < open_ts or (ts == open_ts and trade.ts_recv < open_recv):
                open_, open_ts, open_recv, open_id = text, ts, trade.ts_recv, trade.trade_id
            if px > high_px:
                high, high_px = text, px
            if px < low_px:
                low, low_px = text, px
            product = price_units * units
            if scale != size_scale:  # a scale only grows: the sums are re-expressed at the larger one
                if scale > size_scale:
                    buy *= POW10[scale - size_scale]
                    sell *= POW10[scale - size_scale]
                    size_scale = scale
                else:
                    units *= POW10[size_scale - scale]
            scale += price_scale
            if scale != quote_scale:
                if scale > quote_scale:
                    quote *= POW10[scale - quote_scale]
                    quote_scale = scale
                else:
                    product *= POW10[quote_scale - scale]
            quote += product
            if trade.side == "buy":
                buy += units
            else:
                sell += units
            count += 1
            sequence = trade.sequence
            if sequence is not None:
                sequenced += 1
                if sequence < min_sequence:
                    min_sequence = sequence
                if sequence > max_sequence:
                    max_sequence = sequence
            if trade.backfilled:
                repaired += 1
        self.open, self.open_ts, self.open_recv, self.open_id = open_, open_ts, open_recv, open_id
        self.close, self.close_ts, self.close_recv, self.close_id = close, close_ts, close_recv, close_id
        self.high, self.high_px, self.low, self.low_px, self.close_px = high, high_px, low, low_px, close_px
        self.buy_units, self.sell_units, self.size_scale = buy, sell, size_scale
        self.quote_units, self.quote_scale = quote, quote_scale
        self.trade_count, self.sequenced, self.repaired = count, sequenced, repaired
        self.min_sequence, self.max_sequence = min_sequence, max_sequence

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
        self.buy_units += self._align_size(other.buy_units, other.size_scale)
        self.sell_units += self._align_size(other.sell_units, other.size_scale)
        self.quote_units += self._align_quote(other.quote_units, other.quote_scale)
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
