"""Decode + normalize throughput of the Binance adapter on one core (prints frames/s; runs < 20 s).

Frames are realistic combined-stream `@trade` frames: 10 symbols, consecutive ids, a random-walk price
on an 8-decimal grid and random quantities, so the adapter's decimal cache sees realistic repetition
(cold: every price and quantity distinct is also measured).

    .venv/bin/python bench/bench_decode.py
"""

from __future__ import annotations

import argparse
import json
import random
import time

from collectors.exchanges.binance import BinanceAdapter
from collectors.gaps import GapTracker
from core.types import SymbolInfo

SYMBOLS = [
    "BTCUSDT",
    "ETHUSDT",
    "BNBUSDT",
    "SOLUSDT",
    "XRPUSDT",
    "DOGEUSDT",
    "ADAUSDT",
    "LTCUSDT",
    "DOTUSDT",
    "TRXUSDT",
]
FRAMES = 200_000
ROUNDS = 5


def make_frames(count: int, *, distinct: bool, seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    ids = dict.fromkeys(SYMBOLS, 3_000_000_000)
    ticks = {s: rng.randint(10_000, 6_000_000) for s in SYMBOLS}
    frames = []
    t_ms = 1_700_000_000_000
    for n in range(count):
        symbol = SYMBOLS[rng.randrange(len(SYMBOLS))]
        ids[symbol] += 1
        ticks[symbol] = max(1, ticks[symbol] + rng.choice((-1, 0, 0, 1)))
        t_ms += rng.randint(0, 3)
        price = ticks[symbol] * 1_000_000 + (n if distinct else 0)  # in 1e-8 units
        qty = rng.choice((100_000, 250_000, 1_000_000, 5_000_000)) + (n if distinct else rng.randrange(100))
        data = {
            "e": "trade", "E": t_ms + 1, "s": symbol, "t": ids[symbol],
            "p": f"{price // 10**8}.{price % 10**8:08d}", "q": f"{qty // 10**8}.{qty % 10**8:08d}",
            "T": t_ms, "m": rng.random() < 0.5, "M": True,
        }  # fmt: skip
        frames.append(
            json.dumps({"stream": f"{symbol.lower()}@trade", "data": data}, separators=(",", ":")).encode()
        )
    return frames


def bench(label: str, frames: list[bytes], *, track_gaps: bool = False, rounds: int = ROUNDS) -> float:
    best = 0.0
    for _ in range(rounds):
        adapter = BinanceAdapter(
            [SymbolInfo("binance", f"{s[:-4]}-USDT", s, s[:-4], "USDT") for s in SYMBOLS]
        )
        tracker = GapTracker()
        parse, observe = adapter.parse, tracker.observe
        ts = time.time_ns()
        started = time.perf_counter()
        if track_gaps:
            for frame in frames:
                for trade in parse(frame, ts):
                    observe(trade.raw_symbol, trade.sequence, trade.ts_event)  # type: ignore[arg-type]
        else:
            for frame in frames:
                parse(frame, ts)
        best = max(best, len(frames) / (time.perf_counter() - started))
    print(f"{label:<48} {best / 1e6:6.2f} M frames/s  ({1e9 / best:5.0f} ns/frame)")
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=FRAMES)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args()
    warm = make_frames(args.frames, distinct=False)
    cold = make_frames(args.frames, distinct=True)
    print(f"{args.frames} combined @trade frames, best of {args.rounds} rounds, one core")
    bench("decode + validate + normalize (realistic)", warm, rounds=args.rounds)
    bench("decode + validate + normalize (all distinct)", cold, rounds=args.rounds)
    bench("... + gap tracking (realistic)", warm, track_gaps=True, rounds=args.rounds)


if __name__ == "__main__":
    main()
