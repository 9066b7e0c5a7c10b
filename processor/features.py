"""ML features on CLOSED bars, computed incrementally (O(window) per bar, no history recomputation).

One `FeatureCalculator` per (exchange, symbol, timeframe), fed closed bars oldest first. Every field
is None until it has enough bars ("warm"); windows count real bars only (no bar for empty intervals).

- log_return: ln(close / previous close).
- realized_vol_20: population standard deviation of the last 20 log returns (per bar, not annualized),
  computed two-pass over the window.
- volume_zscore_20: (volume - mean) / std over the last 20 volumes including this bar; 0 if std is 0.
- taker_buy_ratio: buy_volume / volume (taker side), 0..1, from the exact volumes.
- range_pct: (high - low) / close.
- vwap_deviation: (close - vwap) / vwap.
- rsi_norm: (RSI(14) - 50) / 50, in [-1, 1] (TA-Lib RSI semantics, see indicators.py). The service
  passes the bar's `Indicators` from its IndicatorEngine, fed the same bars, and its `rsi_14` is used: RSI
  is computed once per bar. Without them (a calculator on its own) an RSI(14) of its own is kept.
"""

from __future__ import annotations

import math
from collections import deque

from core.types import Bar, Features, Indicators
from processor.decimals import ratio
from processor.indicators import RSI

WINDOW = 20


def _mean_std(values: deque[float]) -> tuple[float, float]:
    """Mean and population standard deviation, two-pass (no cancellation at large magnitudes)."""
    n = len(values)
    mean = sum(values) / n
    return mean, math.sqrt(sum((x - mean) * (x - mean) for x in values) / n)


class FeatureCalculator:
    """Incremental features of one (exchange, symbol, timeframe); stale or repeated bars are ignored."""

    def __init__(self, window: int = WINDOW) -> None:
        self.window = window
        self._returns: deque[float] = deque(maxlen=window)
        self._volumes: deque[float] = deque(maxlen=window)
        self._rsi: RSI | None = None  # only without the engine's values (see update)
        self._prev_close: float | None = None
        self._last_open_time: int | None = None
        self._last: Features | None = None

    def update(self, bar: Bar, indicators: Indicators | None = None) -> Features:
        """Features of this closed bar (the previous result again if the bar is not newer). `indicators`:
        the engine's values on this same bar (its RSI is reused); pass them for every bar or for none."""
        if (
            self._last is not None
            and self._last_open_time is not None
            and bar.open_time <= self._last_open_time
        ):
            return self._last
        self._last_open_time = bar.open_time
        high, low, close = float(bar.high), float(bar.low), float(bar.close)
        log_return = self._log_return(close)
        self._prev_close = close
        volume = float(bar.volume)
        self._volumes.append(volume)
        rsi = indicators.rsi_14 if indicators is not None else self._own_rsi(high, low, close)
        features = Features(
            log_return=log_return,
            realized_vol_20=self._realized_vol(),
            volume_zscore_20=self._volume_zscore(volume),
            taker_buy_ratio=ratio(bar.buy_volume, bar.volume) if volume > 0 else None,
            range_pct=(high - low) / close if close > 0 else None,
            vwap_deviation=(close - bar.vwap) / bar.vwap if bar.vwap > 0 else None,
            rsi_norm=(rsi - 50.0) / 50.0 if rsi is not None else None,
        )
        self._last = features
        return features

    def _own_rsi(self, high: float, low: float, close: float) -> float | None:
        if self._rsi is None:
            self._rsi = RSI(14)
        self._rsi.update(high, low, close)
        return self._rsi.value

    def _log_return(self, close: float) -> float | None:
        prev = self._prev_close
        if prev is None or prev <= 0 or close <= 0:
            return None
        value = math.log(close / prev)
        self._returns.append(value)
        return value

    def _realized_vol(self) -> float | None:
        if len(self._returns) < self.window:
            return None
        return _mean_std(self._returns)[1]

    def _volume_zscore(self, volume: float) -> float | None:
        if len(self._volumes) < self.window:
            return None
        mean, std = _mean_std(self._volumes)
        return (volume - mean) / std if std > 0 else 0.0
