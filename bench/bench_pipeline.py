"""Trades per second through decode -> normalize -> bar update, on one core, no I/O.

Frames are real-format Binance combined-stream `@trade` events (bytes, as a websocket client hands them
over); each goes through the Binance adapter (typed msgspec decode, validation, normalization to Trade)
and the bar aggregator with the default six timeframes. Aim: >= 500k trades/s.

Run: .venv/bin/python bench/bench_pipeline.py
"""

from __future__ import annotations

import random
import time

from collectors.exchanges.binance import BinanceAdapter
from core.timeframes import DEFAULT_TIMEFRAMES
from core.types import SymbolInfo
from processor.bars import BarAggregator

N = 300_000
SYMBOLS = {"BTCUSDT": ("BTC", "USDT"), "ETHUSDT": ("ETH", "USDT"), "SOLUSDT": ("SOL", "USDT")}


def frames(n: int) -> list[bytes]:
    rng = random.Random(1)
    out, ids, t = [], dict.fromkeys(SYMBOLS, 1_000_000), 1_700_000_000_000
    prices = {"BTCUSDT": 60000.0, "ETHUSDT": 3000.0, "SOLUSDT": 150.0}
    for _ in range(n):
        raw = rng.choice(list(SYMBOLS))
        ids[raw] += 1
        t += rng.choice((0, 0, 1, 3, 20))
        prices[raw] *= 1 + rng.gauss(0, 0.0003)
        out.append(
            (
                f'{{"stream":"{raw.lower()}@trade","data":{{"e":"trade","E":{t},"s":"{raw}","t":{ids[raw]},'
                f'"p":"{prices[raw]:.2f}","q":"{rng.random():.8f}","T":{t},'
                f'"m":{str(rng.random() < 0.5).lower()},'
                f'"M":true}}}}'
            ).encode()
        )
    return out


def run(data: list[bytes], timeframes: tuple[str, ...]) -> float:
    adapter = BinanceAdapter(
        [SymbolInfo("binance", f"{b}-{q}", raw, b, q) for raw, (b, q) in SYMBOLS.items()]
    )
    aggregator = BarAggregator(timeframes, 2_000_000_000)
    started = time.perf_counter()
    ts_recv = time.time_ns()
    for frame in data:
        aggregator.add_many(adapter.parse(frame, ts_recv))
    return len(data) / (time.perf_counter() - started)


def main() -> None:
    data = frames(N)
    for timeframes in (DEFAULT_TIMEFRAMES, ("1m",)):
        best = max(run(data, timeframes) for _ in range(3))
        print(
            f"decode+normalize+bars [{','.join(timeframes)}]: {best:,.0f} trades/s (best of 3, {N:,} frames)"
        )


if __name__ == "__main__":
    main()
