"""1m candles computed from a symbol's recorded trades: the shared part of every venue's klines endpoint.

A venue module only reads its request's parameters and writes the candles in its own shape (field order,
strings or numbers, newest or oldest first). A venue with a klines endpoint adds one REST route whose
handler calls `minute_candles(view.history_of(symbol), ...)`; a venue without one serves no such path,
so the server answers 404 as the real one does for an unknown path.

Candles exist for minutes with trades; a venue that also serves quiet minutes (Binance) passes
`quiet_until_ms` and gets, for each minute without trades after the symbol's first trade, a candle at the
previous close with volume 0 and no trades. Sums are exact decimals.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final, NamedTuple

from simulator.history import Recorded, SymbolHistory

MS_PER_MINUTE: Final = 60_000


class MinuteCandle(NamedTuple):
    """One minute of one symbol's trades: open time (ms, UTC), prices as the trades' exact strings, sums
    as exact Decimals (volume in base units, quote volume = sum of price x quantity, taker-buy parts of
    both), and the number of trades."""

    open_ms: int
    open: str
    high: str
    low: str
    close: str
    volume: Decimal
    quote_volume: Decimal
    trade_count: int
    taker_buy_volume: Decimal
    taker_buy_quote_volume: Decimal

    @property
    def close_ms(self) -> int:
        """The minute's last millisecond."""
        return self.open_ms + MS_PER_MINUTE - 1


def minute_of(time_ms: int) -> int:
    return time_ms - time_ms % MS_PER_MINUTE


def quiet_candle(open_ms: int, close: str) -> MinuteCandle:
    """A minute without trades as a venue that serves one writes it: every price the previous close,
    nothing traded."""
    zero = Decimal(0)
    return MinuteCandle(open_ms, close, close, close, close, zero, zero, 0, zero, zero)


def _candle(open_ms: int, entries: list[Recorded]) -> MinuteCandle:
    trades = [e[0] for e in entries]
    prices = [Decimal(t.price) for t in trades]
    high = max(range(len(trades)), key=prices.__getitem__)
    low = min(range(len(trades)), key=prices.__getitem__)
    volume = quote = buy = buy_quote = Decimal(0)
    for trade, price in zip(trades, prices, strict=True):
        size = Decimal(trade.quantity)
        volume += size
        quote += price * size
        if not trade.is_buyer_maker:  # the taker bought
            buy += size
            buy_quote += price * size
    return MinuteCandle(
        open_ms, trades[0].price, trades[high].price, trades[low].price, trades[-1].price,
        volume, quote, len(trades), buy, buy_quote,
    )  # fmt: skip


def minute_candles(
    history: SymbolHistory,
    *,
    start_ms: int | None = None,
    end_ms: int | None = None,
    limit: int,
    from_newest: bool,
    quiet_until_ms: int | None = None,
) -> list[MinuteCandle]:
    """Candles of the minutes with trades opening in [start_ms, end_ms) (None: unbounded), OLDEST FIRST;
    at most `limit` of them: the newest when `from_newest`, else the oldest. Without a start, only the
    `limit` minutes before the end (else `quiet_until_ms`, else the latest trade) are looked at. With
    `quiet_until_ms`, minutes without trades before it (after the symbol's first trade) have a quiet
    candle too."""
    if start_ms is None:
        last = history.latest(1)
        if not last:
            return []
        upto = end_ms if end_ms is not None else quiet_until_ms
        if upto is None:
            upto = minute_of(last[0][0].time_ms) + MS_PER_MINUTE
        start_ms = minute_of(upto - 1) - (limit - 1) * MS_PER_MINUTE
    start_ms = minute_of(start_ms + MS_PER_MINUTE - 1)  # a minute opening before start_ms is not asked for
    by_minute: dict[int, list[Recorded]] = {}
    for entry in history.between_times(start_ms, end_ms):
        by_minute.setdefault(minute_of(entry[0].time_ms), []).append(entry)
    candles = [_candle(minute, entries) for minute, entries in sorted(by_minute.items())]
    if quiet_until_ms is not None:
        upto = quiet_until_ms if end_ms is None else min(end_ms, quiet_until_ms)
        candles = _with_quiet_minutes(history, candles, start_ms, upto, None if from_newest else limit)
    return candles[-limit:] if from_newest else candles[:limit]


def _with_quiet_minutes(
    history: SymbolHistory, traded: list[MinuteCandle], start_ms: int, end_ms: int, limit: int | None
) -> list[MinuteCandle]:
    """`traded` with a quiet candle (the previous close, nothing traded) for every minute in
    [start_ms, end_ms) without trades that follows a trade; stops at `limit` candles when given."""
    before = history.last_before_time(start_ms)
    close = before[0].price if before is not None else None
    by_minute = {c.open_ms: c for c in traded}
    out: list[MinuteCandle] = []
    for minute in range(start_ms, max(end_ms, start_ms), MS_PER_MINUTE):
        candle = by_minute.get(minute)
        if candle is not None:
            close = candle.close
        elif close is not None:
            candle = quiet_candle(minute, close)
        else:
            continue
        out.append(candle)
        if limit is not None and len(out) >= limit:
            break
    return out
