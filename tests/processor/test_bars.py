"""Golden trades -> bars: exact strings, watermark and clock closing, out-of-order and late trades."""

from __future__ import annotations

import msgspec
import pytest

from core.clock import ManualClock
from core.types import Bar, Side, Trade
from processor.bars import BarAggregator, BarBuilder

S = 1_000_000_000
T0 = 1_699_999_200 * S  # aligned to the hour (and so to 1m, 5m, 15m)
GRACE = 2 * S


def trade(tid: int, at_s: float, price: str, qty: str, side: str = "buy", symbol: str = "BTC-USDT") -> Trade:
    ts = T0 + round(at_s * S)
    return Trade("binance", symbol, symbol.replace("-", ""), str(tid), tid, price, qty, Side(side), ts, ts)


def by_tf(bars: list[Bar] | tuple[Bar, ...], timeframe: str) -> list[Bar]:
    return [b for b in bars if b.timeframe == timeframe]


MINUTE0 = [
    trade(1, 1, "100.5", "1.0", "buy"),
    trade(2, 10, "101.25", "0.5", "sell"),
    trade(3, 30, "99.75", "2", "buy"),
    trade(4, 59, "100.00", "1.5", "sell"),
]


def test_builder_golden_bar() -> None:
    builder = BarBuilder("binance", "BTC-USDT", "1m", T0, T0 + 60 * S)
    for t in MINUTE0:
        builder.add_trade(t)
    assert builder.to_bar() == Bar(
        exchange="binance",
        symbol="BTC-USDT",
        timeframe="1m",
        open_time=T0,
        close_time=T0 + 60 * S,
        open="100.5",
        high="101.25",
        low="99.75",
        close="100.00",
        volume="5.0",  # exact decimal sums, with the most decimals of their terms
        quote_volume="500.625",
        vwap=100.125,
        trade_count=4,
        buy_volume="3.0",
        sell_volume="2.0",
        first_trade_id="1",
        last_trade_id="4",
        min_sequence=1,
        max_sequence=4,
        sequenced_trades=4,
        first_trade_ns=T0 + 1 * S,
        last_trade_ns=T0 + 59 * S,
    )


def test_builder_breaks_event_time_ties_by_receive_order_never_by_id() -> None:
    # equal event times: the earlier receive time opens, the later closes, whatever order they are added in
    received = [
        msgspec.structs.replace(trade(tid, 5, px, "1"), trade_id=tid_text, ts_recv=T0 + recv)
        for tid, tid_text, px, recv in (
            (10, "zz-10", "7.0", 1),
            (11, "aa-11", "7.00", 2),
            (12, "mm-12", "6.5", 3),
        )
    ]
    forward = BarBuilder("x", "A-B", "1m", T0, T0 + 60 * S)
    backward = BarBuilder("x", "A-B", "1m", T0, T0 + 60 * S)
    for t in received:
        forward.add_trade(t)
    for t in reversed(received):
        backward.add_trade(t)
    for bar in (forward.to_bar(), backward.to_bar()):
        assert (bar.open, bar.close, bar.low) == ("7.0", "6.5", "6.5")
        assert (bar.first_trade_id, bar.last_trade_id) == ("zz-10", "mm-12")  # ids are opaque text
    # equal high values: the first seen keeps its string
    assert forward.to_bar().high == "7.0"
    assert backward.to_bar().high == "7.00"
    # equal event AND receive times (one read): the order they were added in decides
    same_read = [trade(10, 5, "7.0", "1"), trade(11, 5, "7.00", "1"), trade(12, 5, "6.5", "1")]
    for ordered in (same_read, same_read[::-1]):
        builder = BarBuilder("x", "A-B", "1m", T0, T0 + 60 * S)
        for t in ordered:
            builder.add_trade(t)
        bar = builder.to_bar()
        assert (bar.first_trade_id, bar.last_trade_id) == (ordered[0].trade_id, ordered[-1].trade_id)


def test_watermark_closes_bar_after_grace_only() -> None:
    agg = BarAggregator(["1m", "5m"], GRACE)
    for t in MINUTE0:
        assert agg.add(t).closed == ()
    assert agg.add(trade(5, 61, "102", "1", "buy")).closed == ()  # 61 s < 60 s + grace
    result = agg.add(trade(6, 62, "101.5", "1", "sell"))  # watermark reaches 60 s + grace
    assert not result.late
    [bar] = result.closed
    assert (bar.timeframe, bar.open_time, bar.close_time) == ("1m", T0, T0 + 60 * S)
    assert (bar.open, bar.high, bar.low, bar.close) == ("100.5", "101.25", "99.75", "100.00")
    assert (bar.volume, bar.quote_volume, bar.vwap, bar.trade_count) == ("5.0", "500.625", 100.125, 4)


def test_clock_closes_bars_in_a_quiet_market() -> None:
    clock = ManualClock(T0)
    agg = BarAggregator(["1m", "5m"], GRACE)
    for t in [*MINUTE0, trade(5, 61, "102", "1", "buy"), trade(6, 62, "101.5", "1", "sell")]:
        agg.add(t)
    clock.set(T0 + 300 * S + GRACE - 1)
    assert [b.open_time for b in agg.close_due(clock.now_ns())] == [T0 + 60 * S]  # 1m bar 1 only
    clock.advance(1)
    [five] = agg.close_due(clock.now_ns())
    assert (five.timeframe, five.open_time, five.close_time) == ("5m", T0, T0 + 300 * S)
    assert (five.open, five.high, five.low, five.close) == ("100.5", "102", "99.75", "101.5")
    assert (five.volume, five.quote_volume, five.trade_count) == ("7.0", "704.125", 6)
    assert (five.buy_volume, five.sell_volume) == ("4.0", "3.0")
    assert five.vwap == pytest.approx(704.125 / 7, rel=1e-15)
    assert (five.first_trade_id, five.last_trade_id) == ("1", "6")
    assert agg.close_due(clock.now_ns() + 3600 * S) == []
    assert agg.open_bars() == []


def test_out_of_order_within_grace_goes_to_its_bar() -> None:
    agg = BarAggregator(["1m"], GRACE)
    agg.add(trade(1, 50, "10", "1"))
    agg.add(trade(3, 61, "30", "1"))  # next minute
    for t in (trade(2, 59.5, "20", "2", "sell"), trade(0, 0.5, "5", "1"), trade(4, 61.5, "31", "1")):
        result = agg.add(t)
        assert result.closed == () and not result.late
    [first] = agg.add(trade(5, 62, "32", "1")).closed
    assert (first.open, first.high, first.low, first.close) == ("5", "20", "5", "20")
    assert (first.first_trade_id, first.last_trade_id, first.trade_count) == ("0", "2", 3)
    assert (first.buy_volume, first.sell_volume) == ("2", "2")
    [second] = agg.open_bars()
    assert (second.open_time, second.open, second.close, second.trade_count) == (T0 + 60 * S, "30", "32", 3)


def test_late_trade_reported_per_timeframe_and_applied_to_open_coarser_bars() -> None:
    agg = BarAggregator(["1m", "5m", "15m"], GRACE)
    agg.add(trade(1, 10, "100", "1"))
    [one] = agg.add(trade(2, 70, "101", "1")).closed  # closes 1m [0, 60)
    result = agg.add(trade(3, 20, "90", "4", "sell"))
    assert result.late_timeframes == ("1m",) and result.closed == ()
    open_at_t0 = {b.timeframe: b for b in agg.open_bars() if b.open_time == T0}
    assert set(open_at_t0) == {"5m", "15m"}
    for bar in open_at_t0.values():
        assert (bar.low, bar.trade_count, bar.volume, bar.sell_volume) == ("90", 3, "6", "4")
    # the closed 1m bar is final: no second [0, 60) bar ever comes out
    closed = agg.close_due(T0 + 3600 * S)
    assert [b.open_time for b in by_tf(closed, "1m")] == [T0 + 60 * S]
    assert one.trade_count == 1
    [five_closed] = by_tf(closed, "5m")
    assert (five_closed.low, five_closed.trade_count) == ("90", 3)
    # now late for every timeframe
    assert agg.add(trade(4, 30, "95", "1")).late_timeframes == ("1m", "5m", "15m")
    assert agg.open_bars() == []


def test_trade_for_a_clock_closed_empty_interval_of_a_known_symbol_is_late() -> None:
    agg = BarAggregator(["1m"], GRACE)
    agg.add(trade(1, 1, "1", "1"))
    agg.close_due(T0 + 122 * S)  # [0, 60) closes; [60, 120) was empty and is over too
    assert agg.add(trade(2, 100, "1", "1")).late_timeframes == ("1m",)
    assert agg.add(trade(3, 179, "1", "1")).late_timeframes == ()  # [120, 180) is still open
    assert [b.open_time for b in agg.open_bars()] == [T0 + 120 * S]


def test_clock_ticks_before_a_symbol_is_first_seen_do_not_make_its_trades_late() -> None:
    """A processor that ticks while a new symbol's first trades are still in transit (a new stream not
    yet discovered) closed no bar of that symbol: its first trades open bars as usual."""
    agg = BarAggregator(["1m"], GRACE)
    assert agg.close_due(T0 + 122 * S) == []
    assert agg.add(trade(1, 100, "1", "1")).late_timeframes == ()
    [bar] = agg.close_due(T0 + 125 * S)
    assert (bar.open_time, bar.trade_count) == (T0 + 60 * S, 1)


def test_empty_intervals_produce_no_bar() -> None:
    agg = BarAggregator(["1m", "5m"], GRACE)
    agg.add(trade(1, 5, "1", "1"))
    closed = list(agg.add(trade(2, 185, "2", "1")).closed)
    closed += agg.close_due(T0 + 400 * S)
    assert [(b.timeframe, (b.open_time - T0) // S) for b in closed] == [("1m", 0), ("1m", 180), ("5m", 0)]


def test_symbols_have_their_own_watermark() -> None:
    agg = BarAggregator(["1m"], GRACE)
    agg.add(trade(1, 5, "1", "1", symbol="BTC-USDT"))
    assert agg.add(trade(1, 300, "1", "1", symbol="ETH-USDT")).closed == ()
    assert agg.watermark("binance", "ETH-USDT") == T0 + 300 * S
    assert agg.watermark("binance", "SOL-USDT") is None
    [bar] = agg.add(trade(2, 62, "2", "1", symbol="BTC-USDT")).closed
    assert bar.symbol == "BTC-USDT"


def test_bars_close_in_time_order_per_timeframe() -> None:
    agg = BarAggregator(["1m", "5m"], GRACE)
    closed: list[Bar] = []
    for i, at in enumerate([5, 65, 125, 250, 301, 1000]):
        closed += agg.add(trade(i, at, "1", "1")).closed
    for timeframe in ("1m", "5m"):
        starts = [b.open_time for b in by_tf(closed, timeframe)]
        assert starts == sorted(starts) and len(starts) == len(set(starts))
    assert len(by_tf(closed, "1m")) == 5 and len(by_tf(closed, "5m")) == 2


def test_non_nesting_timeframes_each_get_every_trade() -> None:
    agg = BarAggregator(["3m", "5m", "15m"], GRACE)
    closed: list[Bar] = []
    for i in range(30):
        closed += agg.add(trade(i, i * 31, "1", "1")).closed
    closed += agg.close_due(T0 + 3600 * S)
    for timeframe in ("3m", "5m", "15m"):
        assert sum(b.trade_count for b in by_tf(closed, timeframe)) == 30


def test_add_many_equals_add() -> None:
    trades = [
        trade(i, i * 7.3 % 900 + i, str(100 + i % 13), "0.5", "buy" if i % 3 else "sell") for i in range(400)
    ]
    one, many = BarAggregator(["1m", "5m", "15m"], GRACE), BarAggregator(["1m", "5m", "15m"], GRACE)
    closed: list[Bar] = []
    late = []
    for t in trades:
        result = one.add(t)
        closed += result.closed
        if result.late:
            late.append((t, result.late_timeframes))
    batch = many.add_many(trades)
    assert batch.closed == closed
    assert [(x.trade, x.timeframes) for x in batch.late] == late and late
    assert one.open_bars() == many.open_bars()


def test_replaying_stored_trades_recreates_open_bars() -> None:
    """Restart warm-up: trades from the oldest open bar's open_time re-create the open bars exactly."""
    trades = [trade(i, i * 13, f"{100 + (i * 37) % 11}.{i % 10}", "0.25") for i in range(300)]
    live = BarAggregator(["1m", "5m", "15m", "1h"], GRACE)
    for t in trades:
        live.add(t)
    open_before = live.open_bars()
    since = min(b.open_time for b in open_before)
    restarted = BarAggregator(["1m", "5m", "15m", "1h"], GRACE)
    restarted.add_many(t for t in trades if t.ts_event >= since)
    assert restarted.open_bars() == open_before
    later = [trade(1000 + i, 3900 + i * 20, "105", "1") for i in range(400)]
    assert live.add_many(later).closed[-3:] == restarted.add_many(later).closed[-3:]


def test_replayed_old_trades_are_closed_by_their_own_event_clock_not_the_wall_clock() -> None:
    """Trades from a replay carry old event times but are received now: the wall clock must not close
    their bars between batches; once the replay goes quiet, its bars close after the grace period."""
    wall = T0 + 10**6 * S  # about 11.6 days after the trades' event times
    agg = BarAggregator(["1m"], GRACE)

    def replayed(tid: int, at_s: float) -> Trade:
        ts = T0 + round(at_s * S)
        return Trade(
            "binance", "BTC-USDT", "BTCUSDT", str(tid), tid, "1", "1", Side.BUY, ts, wall + round(at_s * S)
        )

    agg.add(replayed(1, 10))
    assert agg.close_due(wall + 11 * S) == []  # 1 s of wall time after the trade: bar [0, 60) stays open
    assert agg.add(replayed(2, 50)).late_timeframes == ()
    assert agg.close_due(wall + 55 * S) == []
    [bar] = agg.close_due(wall + 50 * S + 61 * S)  # quiet for longer than the bar's end + grace
    assert (bar.open_time, bar.trade_count) == (T0, 2)


def test_a_hold_keeps_bars_open_past_it_until_lifted_and_missing_trades_still_land() -> None:
    agg = BarAggregator(["1m", "5m"], GRACE)
    agg.add(trade(1, 10, "100", "1"))
    agg.hold("binance", "BTC-USDT", T0 + 20 * S)  # trades after 20 s are missing, being repaired
    closed = agg.add_many([trade(5, 70, "101", "1"), trade(6, 190, "102", "1")]).closed
    assert closed == []  # the 0-60 s bar would close at 62 s, but it must wait for the missing trades
    assert agg.close_due(T0 + 3600 * S) == []  # nor does the clock close it
    repaired = agg.add_many([trade(2, 30, "99", "1"), trade(3, 50, "98", "2"), trade(4, 65, "103", "1")])
    assert repaired.late == [] and repaired.closed == []
    agg.hold("binance", "BTC-USDT", None)
    closed = agg.close_due(T0 + 190 * S)
    first = next(b for b in closed if b.timeframe == "1m" and b.open_time == T0)
    assert (first.trade_count, first.low, first.close, first.last_trade_id) == (3, "98", "98", "3")
    # a trade for a bucket that closed before the hold began is late as ever
    agg.hold("binance", "BTC-USDT", T0 + 185 * S)
    assert agg.add(trade(7, 20, "97", "1")).late_timeframes == ("1m",)
