"""Trades per second through decode -> normalize -> bar update, on one core, no I/O.

Frames are real-format Binance combined-stream `@trade` events (bytes, as a websocket client hands them
over); each goes through the Binance adapter (typed msgspec decode, validation, normalization to Trade)
and the bar aggregator with the default six timeframes. Aim: >= 500k trades/s.

Run: .venv/bin/python bench/bench_pipeline.py
"""

from __future__ import annotations

import argparse
import random
import time

from collectors.exchanges.binance import BinanceAdapter
from collectors.session import MAX_FRAMES_PER_READ
from core.timeframes import DEFAULT_TIMEFRAMES
from core.types import SymbolInfo, Trade
from processor.bars import BarAggregator

N = 300_000
SYMBOLS = {"BTCUSDT": ("BTC", "USDT"), "ETHUSDT": ("ETH", "USDT"), "SOLUSDT": ("SOL", "USDT")}


def frames(n: int, *, realistic: bool) -> list[bytes]:
    """Combined-stream trade frames. realistic: prices move by whole ticks (0.01) and quantities sit on
    the 0.00001 lot step, so values repeat as on the exchange; otherwise every price and quantity is new
    (the worst case for the adapter's cache of already-validated decimal strings)."""
    rng = random.Random(1)
    out, ids, t = [], dict.fromkeys(SYMBOLS, 1_000_000), 1_700_000_000_000
    ticks = {"BTCUSDT": 6_000_000, "ETHUSDT": 300_000, "SOLUSDT": 15_000}
    for _ in range(n):
        raw = rng.choice(list(SYMBOLS))
        ids[raw] += 1
        t += rng.choice((0, 0, 1, 3, 20))
        if realistic:
            ticks[raw] += rng.choice((-2, -1, 0, 0, 0, 1, 2))
            price = f"{ticks[raw] / 100:.2f}"
            quantity = f"{max(1, round(rng.lognormvariate(3, 1.5))) / 100_000:.8f}"
        else:
            ticks[raw] = round(ticks[raw] * (1 + rng.gauss(0, 0.0003)))
            price = f"{ticks[raw] / 100 + rng.random() / 1000:.5f}"
            quantity = f"{rng.random():.8f}"
        out.append(
            (
                f'{{"stream":"{raw.lower()}@trade","data":{{"e":"trade","E":{t},"s":"{raw}","t":{ids[raw]},'
                f'"p":"{price}","q":"{quantity}","T":{t},"m":{str(rng.random() < 0.5).lower()},"M":true}}}}'
            ).encode()
        )
    return out


def run(data: list[bytes], timeframes: tuple[str, ...]) -> float:
    """As the platform does it: the collector parses a read's frames (up to MAX_FRAMES_PER_READ) into one
    batch of trades, and the processor applies a batch with add_many."""
    adapter = BinanceAdapter(
        [SymbolInfo("binance", f"{b}-{q}", raw, b, q) for raw, (b, q) in SYMBOLS.items()]
    )
    aggregator = BarAggregator(timeframes, 2_000_000_000)
    started = time.perf_counter()
    parse, add_many = adapter.parse, aggregator.add_many
    for first in range(0, len(data), MAX_FRAMES_PER_READ):
        ts_recv = time.time_ns()
        trades: list[Trade] = []
        for frame in data[first : first + MAX_FRAMES_PER_READ]:
            trades += parse(frame, ts_recv)
        add_many(trades)
    return len(data) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=N)
    count = parser.parse_args().frames
    for realistic in (True, False):
        data = frames(count, realistic=realistic)
        kind = "tick-grid prices, lot-step sizes" if realistic else "every price and size distinct"
        for timeframes in (DEFAULT_TIMEFRAMES, ("1m",)):
            best = max(run(data, timeframes) for _ in range(3))
            print(
                f"decode+normalize+bars [{','.join(timeframes)}] ({kind}): {best:,.0f} trades/s "
                f"(best of 3, {count:,} frames, one core)"
            )


if __name__ == "__main__":
    main()
