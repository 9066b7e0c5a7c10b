"""Our bars against an independent pandas computation (groupby on the floor of ts_event), volumes in
Python's Decimal: every sum must be exact, to the last digit and in the same decimal places."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from core.timeframes import timeframe_ns
from core.types import Bar, Side, Trade
from processor.bars import BarAggregator

S = 1_000_000_000
T0 = 1_699_999_200 * S
GRACE = 2 * S
TIMEFRAMES = ("1m", "5m", "15m", "1h")


def random_trades(n: int, seed: int = 11, *, late_share: float = 0.0, sequenced: bool = False) -> list[Trade]:
    """A random walk over ~4 h with ms timestamps (ties included), in a jittered arrival order; a
    `late_share` of the trades arrive 10-120 s late (after their bar closed). sequenced: trades carry a
    contiguous sequence in event-time order, as a venue numbers them."""
    rng = np.random.default_rng(seed)
    gaps_ms = np.floor(rng.exponential(700.0, n)).astype(np.int64)  # many zero gaps: equal ts_event
    ts = T0 + 1234 * 1_000_000 + np.cumsum(gaps_ms) * 1_000_000
    prices = 60_000 * np.exp(np.cumsum(rng.normal(0, 3e-4, n)))
    qtys = rng.uniform(0.0001, 2.0, n)
    sides = rng.random(n) < 0.5
    # arrival = event time + a random delay shorter than the grace period: reorders, never late. Receive
    # times are whole milliseconds of arrival, so trades of one read share them (ties go to arrival order).
    delays = rng.uniform(0, 1.5 * S, n)
    late = rng.random(n) < late_share
    delays[late] = rng.uniform(10 * S, 120 * S, int(late.sum()))
    order = np.argsort(ts + delays, kind="stable")
    arrival = ts + delays
    return [
        Trade(
            "binance",
            "BTC-USDT",
            "BTCUSDT",
            f"{(i * 7919) % 1_000_003:x}-{i}",
            1_000 + i if sequenced else None,
            f"{prices[i]:.2f}",
            f"{qtys[i]:.5f}",
            Side.BUY if sides[i] else Side.SELL,
            int(ts[i]),
            int(arrival[i]) - int(arrival[i]) % 1_000_000,
        )
        for i in order
    ]  # fmt: skip  (ids are opaque text whose order says nothing: bars must never compare them)


def pandas_bars(trades: list[Trade], timeframe: str) -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "ts": [t.ts_event for t in trades],
            "recv": [t.ts_recv for t in trades],
            "arrival": range(len(trades)),
            "tid": [t.trade_id for t in trades],
            "price": [t.price for t in trades],
            "px": [float(t.price) for t in trades],
            "qty": [Decimal(t.quantity) for t in trades],
            "price_d": [Decimal(t.price) for t in trades],
            "buy": [t.side == "buy" for t in trades],
        }
    ).sort_values(["ts", "recv", "arrival"], ignore_index=True)
    length = timeframe_ns(timeframe)
    df["bucket"] = df["ts"] - df["ts"] % length
    df["quote"] = df["price_d"] * df["qty"]
    df["buy_qty"] = [q if b else q * 0 for q, b in zip(df["qty"], df["buy"], strict=True)]  # keeps places
    g = df.groupby("bucket", sort=True)
    out = pd.DataFrame(
        {
            "open": g["price"].first(),
            "close": g["price"].last(),
            "high": df.loc[g["px"].idxmax(), ["bucket", "price"]].set_index("bucket")["price"],
            "low": df.loc[g["px"].idxmin(), ["bucket", "price"]].set_index("bucket")["price"],
            "volume": g["qty"].sum(),
            "quote_volume": g["quote"].sum(),
            "buy_volume": g["buy_qty"].sum(),
            "trade_count": g["qty"].count(),
            "first_trade_id": g["tid"].first(),
            "last_trade_id": g["tid"].last(),
        }
    )
    out["sell_volume"] = out["volume"] - out["buy_volume"]
    return out


def test_bars_equal_pandas_groupby_on_20k_random_trades() -> None:
    trades = random_trades(20_000)
    agg = BarAggregator(TIMEFRAMES, GRACE)
    batch = agg.add_many(trades)
    assert batch.late == []
    closed: list[Bar] = batch.closed + agg.close_due(trades[-1].ts_event + 2 * 3600 * S)
    assert agg.open_bars() == []
    for timeframe in TIMEFRAMES:
        ours = [b for b in closed if b.timeframe == timeframe]
        expected = pandas_bars(trades, timeframe)
        assert [b.open_time for b in ours] == list(expected.index)
        length = timeframe_ns(timeframe)
        for bar, (start, row) in zip(ours, expected.iterrows(), strict=True):
            assert bar.close_time == start + length
            assert (bar.open, bar.high, bar.low, bar.close) == (row.open, row.high, row.low, row.close)
            assert (bar.trade_count, bar.first_trade_id, bar.last_trade_id) == (
                row.trade_count,
                row.first_trade_id,
                row.last_trade_id,
            )
            for field in ("volume", "quote_volume", "buy_volume", "sell_volume"):
                assert Decimal(getattr(bar, field)) == getattr(row, field), field
                assert getattr(bar, field) == f"{getattr(row, field):f}", field  # the same decimal places
            assert bar.vwap == pytest.approx(float(row.quote_volume / row.volume), rel=1e-15)
    assert {b.timeframe for b in closed} == set(TIMEFRAMES)
    assert len([b for b in closed if b.timeframe == "1m"]) > 200
