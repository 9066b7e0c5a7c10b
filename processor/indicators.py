"""Technical indicators on CLOSED bars, updated incrementally and equal to TA-Lib (0.8.2) on the same bars.

Each indicator is a small class: `update(high, low, close)` with floats of one closed bar, O(1) or
O(period) work, never a recomputation of history; `value` is None until warmed up. TA-Lib semantics,
index i = the i-th bar fed (0-based):

- SMA(n): mean of the last n closes; first at i = n-1.
- EMA(n): seeded with the SMA of the first n closes (at i = n-1), then prev + k*(close - prev), k = 2/(n+1).
- RSI(n): Wilder. At i = n the simple means of the first n gains and losses; then
  avg = (avg*(n-1) + x)/n. RSI = 100*gain/(gain+loss), and 0 when gain+loss is within 1e-8 of zero
  (TA-Lib's TA_IS_ZERO: flat input gives 0, not 50).
- MACD(12,26,9): slow EMA seeded on closes [0..25]; the fast EMA is seeded on the 12 closes ending at
  the same bar ([14..25]); line = fast - slow from i = 25; signal = EMA(9) of the line seeded with the
  mean of its first 9 values, so line, signal and hist = line - signal all start at i = 33.
- Bollinger(20, 2, 2, SMA): middle = SMA; std = population std of the window computed two-pass
  (a running sum of squares cancels catastrophically at BTC prices); a variance below 1e-8 counts as
  0 as in TA-Lib; upper/lower = middle +/- 2*std.
- ATR(14): true range from bar 1 (bar 0 has no previous close); first ATR at i = 14 is the mean of
  TR[1..14]; then Wilder (atr*(n-1) + tr)/n.

Values depend on where the history starts; the engine starts where the stored history starts.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from typing import Protocol

from core.types import Bar, Indicators

_TA_EPSILON = 1e-8  # TA-Lib's TA_IS_ZERO / TA_IS_ZERO_OR_NEG threshold


class Indicator(Protocol):
    """An incremental indicator fed one closed bar at a time."""

    def update(self, high: float, low: float, close: float) -> None: ...

    @property
    def ready(self) -> bool: ...


class SMA:
    """Simple moving average of closes over `period` bars."""

    __slots__ = ("_window", "period", "value")

    def __init__(self, period: int = 20) -> None:
        self.period = period
        self._window: deque[float] = deque(maxlen=period)
        self.value: float | None = None

    def update(self, high: float, low: float, close: float) -> None:
        self._window.append(close)
        if len(self._window) == self.period:
            self.value = sum(self._window) / self.period

    @property
    def ready(self) -> bool:
        return self.value is not None


class _Ema:
    """EMA on a stream of numbers, seeded with the mean of the first `period` values."""

    __slots__ = ("_k", "_seed", "period", "value")

    def __init__(self, period: int) -> None:
        self.period = period
        self._k = 2.0 / (period + 1)
        self._seed: list[float] = []
        self.value: float | None = None

    def push(self, x: float) -> None:
        if self.value is not None:
            self.value = (x - self.value) * self._k + self.value
            return
        self._seed.append(x)
        if len(self._seed) == self.period:
            self.value = sum(self._seed) / self.period
            self._seed = []

    def start_from(self, seed: float) -> None:
        """Start from a given seed value (MACD seeds its fast EMA on a window of its own)."""
        self.value = seed
        self._seed = []


class EMA:
    """Exponential moving average of closes, TA-Lib seeding (SMA of the first `period`)."""

    __slots__ = ("_ema",)

    def __init__(self, period: int = 20) -> None:
        self._ema = _Ema(period)

    def update(self, high: float, low: float, close: float) -> None:
        self._ema.push(close)

    @property
    def value(self) -> float | None:
        return self._ema.value

    @property
    def ready(self) -> bool:
        return self._ema.value is not None


class RSI:
    """Relative strength index (Wilder smoothing), 0..100; 0 on flat input as TA-Lib."""

    __slots__ = ("_count", "_gain", "_loss", "_prev", "period", "value")

    def __init__(self, period: int = 14) -> None:
        self.period = period
        self._prev: float | None = None
        self._count = 0  # price changes seen
        self._gain = 0.0
        self._loss = 0.0
        self.value: float | None = None

    def update(self, high: float, low: float, close: float) -> None:
        prev, self._prev = self._prev, close
        if prev is None:
            return
        change = close - prev
        n = self.period
        self._count += 1
        if self._count <= n:
            if change < 0:
                self._loss -= change
            else:
                self._gain += change
            if self._count < n:
                return
            self._loss /= n
            self._gain /= n
        else:
            self._loss *= n - 1
            self._gain *= n - 1
            if change < 0:
                self._loss -= change
            else:
                self._gain += change
            self._loss /= n
            self._gain /= n
        total = self._gain + self._loss
        self.value = 100.0 * (self._gain / total) if not -_TA_EPSILON < total < _TA_EPSILON else 0.0

    @property
    def ready(self) -> bool:
        return self.value is not None


class MACD:
    """MACD line, signal and histogram with TA-Lib's alignment (all three from bar slow+signal-2)."""

    __slots__ = ("_closes", "_fast", "_signal", "_slow", "line")

    def __init__(self, fast: int = 12, slow: int = 26, signal: int = 9) -> None:
        self._fast = _Ema(fast)
        self._slow = _Ema(slow)
        self._signal = _Ema(signal)
        self._closes: deque[float] | None = deque(maxlen=slow)
        self.line: float | None = None

    def update(self, high: float, low: float, close: float) -> None:
        if self._closes is not None:
            self._closes.append(close)
            if len(self._closes) < self._slow.period:
                return
            window = list(self._closes)
            self._slow.start_from(sum(window) / self._slow.period)
            fast_window = window[-self._fast.period :]
            self._fast.start_from(sum(fast_window) / self._fast.period)
            self._closes = None
        else:
            self._fast.push(close)
            self._slow.push(close)
        self.line = self._fast.value - self._slow.value  # type: ignore[operator]
        self._signal.push(self.line)

    @property
    def value(self) -> tuple[float, float, float] | None:
        """(line, signal, hist), None until the signal has warmed up."""
        signal = self._signal.value
        if signal is None or self.line is None:
            return None
        return (self.line, signal, self.line - signal)

    @property
    def ready(self) -> bool:
        return self._signal.value is not None


class BollingerBands:
    """Bollinger bands around the SMA of closes, population std computed two-pass over the window."""

    __slots__ = ("_window", "dev_down", "dev_up", "period", "value")

    def __init__(self, period: int = 20, dev_up: float = 2.0, dev_down: float = 2.0) -> None:
        self.period = period
        self.dev_up = dev_up
        self.dev_down = dev_down
        self._window: deque[float] = deque(maxlen=period)
        self.value: tuple[float, float, float] | None = None  # (upper, middle, lower)

    def update(self, high: float, low: float, close: float) -> None:
        window = self._window
        window.append(close)
        if len(window) < self.period:
            return
        mean = sum(window) / self.period
        var = sum((x - mean) * (x - mean) for x in window) / self.period
        std = math.sqrt(var) if var >= _TA_EPSILON else 0.0
        self.value = (mean + self.dev_up * std, mean, mean - self.dev_down * std)

    @property
    def ready(self) -> bool:
        return self.value is not None


class ATR:
    """Average true range (Wilder); first value at bar `period` (bar 0 has no true range)."""

    __slots__ = ("_count", "_prev_close", "_sum", "period", "value")

    def __init__(self, period: int = 14) -> None:
        self.period = period
        self._prev_close: float | None = None
        self._count = 0  # true ranges seen
        self._sum = 0.0
        self.value: float | None = None

    def update(self, high: float, low: float, close: float) -> None:
        prev, self._prev_close = self._prev_close, close
        if prev is None:
            return
        tr = max(high - low, abs(high - prev), abs(low - prev))
        self._count += 1
        n = self.period
        if self.value is not None:
            self.value = (self.value * (n - 1) + tr) / n
        elif self._count < n:
            self._sum += tr
        else:
            self.value = (self._sum + tr) / n

    @property
    def ready(self) -> bool:
        return self.value is not None


INDICATOR_NAMES: tuple[str, ...] = ("sma", "ema", "rsi", "macd", "bbands", "atr")


class IndicatorEngine:
    """The indicators of one (exchange, symbol, timeframe), fed its closed bars oldest first.

    `indicators` maps name -> indicator in INDICATOR_NAMES order, so a caller can time each
    `update(high, low, close)` itself and then take `snapshot()`. Bars whose open_time is not after the
    last one applied are ignored (a replay after a restart must not count a bar twice).
    """

    def __init__(self) -> None:
        self.sma = SMA(20)
        self.ema = EMA(20)
        self.rsi = RSI(14)
        self.macd = MACD(12, 26, 9)
        self.bbands = BollingerBands(20, 2.0, 2.0)
        self.atr = ATR(14)
        self.indicators: dict[str, Indicator] = {
            "sma": self.sma,
            "ema": self.ema,
            "rsi": self.rsi,
            "macd": self.macd,
            "bbands": self.bbands,
            "atr": self.atr,
        }
        self.last_open_time: int | None = None
        self.bars_applied = 0

    def accept(self, bar: Bar) -> bool:
        """True (and the bar is recorded as applied) if the bar is newer than the last one applied."""
        if self.last_open_time is not None and bar.open_time <= self.last_open_time:
            return False
        self.last_open_time = bar.open_time
        self.bars_applied += 1
        return True

    def update(self, bar: Bar) -> Indicators:
        """Apply one closed bar (if newer than the last) and return the values on it."""
        if self.accept(bar):
            high, low, close = float(bar.high), float(bar.low), float(bar.close)
            for indicator in self.indicators.values():
                indicator.update(high, low, close)
        return self.snapshot()

    def warm_up(self, bars: Iterable[Bar]) -> Indicators:
        """Rebuild from stored closed bars, oldest first (same as calling `update` on each)."""
        for bar in bars:
            self.update(bar)
        return self.snapshot()

    def snapshot(self) -> Indicators:
        """Current values (None for indicators not yet warmed up)."""
        macd = self.macd.value
        bands = self.bbands.value
        return Indicators(
            sma_20=self.sma.value,
            ema_20=self.ema.value,
            rsi_14=self.rsi.value,
            macd=macd[0] if macd else None,
            macd_signal=macd[1] if macd else None,
            macd_hist=macd[2] if macd else None,
            bb_upper=bands[0] if bands else None,
            bb_middle=bands[1] if bands else None,
            bb_lower=bands[2] if bands else None,
            atr_14=self.atr.value,
        )
