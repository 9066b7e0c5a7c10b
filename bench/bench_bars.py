"""Throughput of processor.bars.BarAggregator: trades/s for add() and add_many() on one core.

Run: .venv/bin/python bench/processor_bars.py [n_trades]
"""

from __future__ import annotations

import random
import sys
import time

from core.timeframes import DEFAULT_TIMEFRAMES
from core.types import Side, Trade
from processor.bars import BarAggregator


def make_trades(n: int, symbols: int = 4) -> list[Trade]:
    rng = random.Random(7)
    ts = 1_700_000_000_000_000_000
    price = 60_000.0
    out = []
    for i in range(n):
        ts += rng.randrange(0, 20_000_000)  # ~100 trades/s per stream: many bars close
        price *= 1 + rng.gauss(0, 1e-4)
        sym = f"S{i % symbols}-USDT"
        out.append(
            Trade(
                "binance",
                sym,
                sym.replace("-", ""),
                str(i),
                i,
                f"{price:.2f}",
                f"{rng.random():.5f}",
                Side.BUY if rng.random() < 0.5 else Side.SELL,
                ts,
                ts + 5_000_000,
            )
        )
    return out


def run(label: str, timeframes: tuple[str, ...], trades: list[Trade]) -> None:
    agg = BarAggregator(timeframes, grace_ns=2_000_000_000)
    t0 = time.perf_counter()
    bars = 0
    for t in trades:
        bars += len(agg.add(t).closed)
    dt = time.perf_counter() - t0
    agg2 = BarAggregator(timeframes, grace_ns=2_000_000_000)
    t1 = time.perf_counter()
    res = agg2.add_many(trades)
    dt2 = time.perf_counter() - t1
    n = len(trades)
    print(
        f"{label:14s} add(): {n / dt / 1e3:7.0f}k trades/s ({bars} bars)   "
        f"add_many(): {n / dt2 / 1e3:7.0f}k trades/s ({len(res.closed)} bars)"
    )


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500_000
    trades = make_trades(n)
    run("1 timeframe", ("1m",), trades)
    run("6 timeframes", DEFAULT_TIMEFRAMES, trades)
    run("3m,5m,15m", ("3m", "5m", "15m"), trades)


if __name__ == "__main__":
    main()
