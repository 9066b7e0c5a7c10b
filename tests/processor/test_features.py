"""Feature vectors on closed bars: definitions, warm-up, and incremental == from-scratch."""

from __future__ import annotations

import math

import numpy as np
import pytest
import talib

from core.types import Bar
from processor.features import FeatureCalculator, Features

M = 60_000_000_000
T0 = 1_699_999_200 * 1_000_000_000


def bar(
    i: int, close: float, volume: float = 2.0, buy: float = 0.5, high: float = 0.0, low: float = 0.0
) -> Bar:
    high = high or close + 10
    low = low or close - 10
    c = f"{close}"
    return Bar(
        "binance", "BTC-USDT", "1m", T0 + i * M, T0 + (i + 1) * M, c, f"{high}", f"{low}", c,
        f"{volume}", f"{volume * close}", close - 5, 3, f"{buy}", f"{volume - buy}", str(i), str(i),
    )  # fmt: skip


def test_first_bar_has_only_bar_local_features() -> None:
    f = FeatureCalculator().update(bar(0, 100.0, volume=4.0, buy=1.0, high=110.0, low=90.0))
    assert f.log_return is None and f.realized_vol_20 is None and f.volume_zscore_20 is None
    assert f.rsi_norm is None
    assert f.taker_buy_ratio == 0.25
    assert f.range_pct == pytest.approx(0.2)
    assert f.vwap_deviation == pytest.approx(5 / 95)


def test_windowed_features_against_numpy() -> None:
    rng = np.random.default_rng(2)
    closes = 60_000 * np.exp(np.cumsum(rng.normal(0, 1e-3, 80)))
    volumes = rng.uniform(0.5, 5.0, 80)
    calc = FeatureCalculator()
    out = [
        calc.update(bar(i, float(c), float(v))) for i, (c, v) in enumerate(zip(closes, volumes, strict=True))
    ]
    closes = np.array([float(f"{c}") for c in closes])
    returns = np.log(closes[1:] / closes[:-1])
    rsi = talib.RSI(closes, 14)
    for i, f in enumerate(out):
        assert f.log_return == (None if i == 0 else pytest.approx(returns[i - 1], rel=1e-12))
        if i < 20:
            assert f.realized_vol_20 is None
        else:
            assert f.realized_vol_20 == pytest.approx(np.std(returns[i - 20 : i]), rel=1e-9)
        if i < 19:
            assert f.volume_zscore_20 is None
        else:
            window = volumes[i - 19 : i + 1]
            assert f.volume_zscore_20 == pytest.approx((volumes[i] - window.mean()) / window.std(), rel=1e-9)
        if math.isnan(rsi[i]):
            assert f.rsi_norm is None
        else:
            assert f.rsi_norm == pytest.approx((rsi[i] - 50) / 50, rel=1e-9, abs=1e-12)


def test_constant_volume_gives_zero_zscore_and_repeats_are_ignored() -> None:
    calc = FeatureCalculator()
    out = [calc.update(bar(i, 100.0 + i)) for i in range(25)]
    assert out[-1].volume_zscore_20 == 0.0
    assert out[-1].rsi_norm == 1.0  # only gains
    assert calc.update(bar(24, 1.0)) is out[-1]
    assert calc.update(bar(3, 1.0)) is out[-1]
    nxt = calc.update(bar(25, 125.0))
    assert isinstance(nxt, Features) and nxt.log_return == pytest.approx(math.log(125 / 124))
