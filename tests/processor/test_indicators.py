"""Incremental indicators against TA-Lib on the same bars, value by value, index by index."""

from __future__ import annotations

import math

import numpy as np
import pytest
import talib

from core.types import Bar, Indicators
from processor.indicators import INDICATOR_NAMES, IndicatorEngine

M = 60_000_000_000
T0 = 1_699_999_200 * 1_000_000_000
PRICE = 60_000.0


def make_bars(closes: np.ndarray, spread: np.ndarray) -> list[Bar]:
    bars = []
    for i, close in enumerate(closes):
        c = f"{close:.2f}"
        high = f"{close + spread[i]:.2f}"
        low = f"{close - spread[i] * 0.7:.2f}"
        bars.append(
            Bar("binance", "BTC-USDT", "1m", T0 + i * M, T0 + (i + 1) * M, c, high, low, c,
                "1.0", c, float(c), 1, "0.5", "0.5", str(i), str(i))
        )  # fmt: skip
    return bars


def random_walk(n: int, seed: int = 5) -> list[Bar]:
    rng = np.random.default_rng(seed)
    closes = PRICE * np.exp(np.cumsum(rng.normal(0, 2e-3, n)))
    return make_bars(closes, rng.uniform(0, 60, n))


def flat(n: int, price: float = 60_000.1) -> list[Bar]:
    return make_bars(np.full(n, price), np.full(n, 0.0))


def talib_reference(bars: list[Bar]) -> dict[str, np.ndarray]:
    high = np.array([float(b.high) for b in bars])
    low = np.array([float(b.low) for b in bars])
    close = np.array([float(b.close) for b in bars])
    macd, signal, hist = talib.MACD(close, 12, 26, 9)
    upper, middle, lower = talib.BBANDS(close, 20, 2.0, 2.0, 0)
    return {
        "sma_20": talib.SMA(close, 20),
        "ema_20": talib.EMA(close, 20),
        "rsi_14": talib.RSI(close, 14),
        "macd": macd,
        "macd_signal": signal,
        "macd_hist": hist,
        "bb_upper": upper,
        "bb_middle": middle,
        "bb_lower": lower,
        "atr_14": talib.ATR(high, low, close, 14),
    }


# MACD values are differences of two ~60000 EMAs: their rounding error is ~eps * price (1e-11), so
# near zero a relative test is meaningless. They get an absolute floor of 1e-12 * price (6e-8), still
# ~1e3 above that rounding and ~1e5 below any MACD value a trader would read. Others: pure 1e-9 relative.
ABS_FLOOR = {"macd": 1e-12 * PRICE, "macd_signal": 1e-12 * PRICE, "macd_hist": 1e-12 * PRICE}


def assert_matches_talib(bars: list[Bar], ours: list[Indicators]) -> None:
    reference = talib_reference(bars)
    for field, expected in reference.items():
        for i, want in enumerate(expected):
            got = getattr(ours[i], field)
            if math.isnan(want):
                assert got is None, (field, i, got)
            else:
                assert got == pytest.approx(want, rel=1e-9, abs=ABS_FLOOR.get(field, 0.0)), (field, i)


def run(bars: list[Bar]) -> list[Indicators]:
    engine = IndicatorEngine()
    return [engine.update(bar) for bar in bars]


def test_random_walk_matches_talib_at_every_index() -> None:
    bars = random_walk(700)
    ours = run(bars)
    assert_matches_talib(bars, ours)
    first = {
        f: next(i for i, x in enumerate(ours) if getattr(x, f) is not None)
        for f in Indicators.__struct_fields__
    }
    assert first == {
        "sma_20": 19, "ema_20": 19, "rsi_14": 14, "macd": 33, "macd_signal": 33, "macd_hist": 33,
        "bb_upper": 19, "bb_middle": 19, "bb_lower": 19, "atr_14": 14,
    }  # fmt: skip


@pytest.mark.parametrize("price", [60_000.1, 60_000.0, 0.3])
def test_flat_series_matches_talib(price: float) -> None:
    bars = flat(120, price)
    ours = run(bars)
    assert_matches_talib(bars, ours)
    last = ours[-1]
    assert last.rsi_14 == 0.0  # TA-Lib: flat input gives 0, not 50
    assert last.atr_14 == 0.0
    assert last.bb_upper == last.bb_lower == last.bb_middle


@pytest.mark.parametrize("n", [0, 1, 13, 14, 15, 19, 20, 25, 26, 33, 34, 40])
def test_short_histories_are_none_until_warm(n: int) -> None:
    bars = random_walk(n, seed=n)
    ours = run(bars)
    if bars:
        assert_matches_talib(bars, ours)
    else:
        assert IndicatorEngine().snapshot() == Indicators()


def test_warm_up_then_continue_equals_updating_all_along() -> None:
    bars = random_walk(300, seed=9)
    all_along = IndicatorEngine()
    expected = [all_along.update(b) for b in bars]
    restarted = IndicatorEngine()
    assert restarted.warm_up(bars[:200]) == expected[199]
    assert [restarted.update(b) for b in bars[200:]] == expected[200:]


def test_repeated_or_older_bars_are_ignored() -> None:
    bars = random_walk(60, seed=3)
    engine = IndicatorEngine()
    engine.warm_up(bars[:50])
    before = engine.snapshot()
    assert engine.update(bars[49]) == before
    assert engine.update(bars[10]) == before
    assert engine.bars_applied == 50
    assert engine.update(bars[50]) != before


def test_engine_exposes_each_indicator_for_timing() -> None:
    engine = IndicatorEngine()
    assert tuple(engine.indicators) == INDICATOR_NAMES
    bars = random_walk(40, seed=1)
    for bar in bars:  # what the service does to time each indicator separately
        if engine.accept(bar):
            for indicator in engine.indicators.values():
                indicator.update(float(bar.high), float(bar.low), float(bar.close))
    assert engine.snapshot() == run(bars)[-1]
    assert all(ind.ready for ind in engine.indicators.values())
