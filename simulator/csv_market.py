"""Writing replayable trade files: the CSV format `ReplayMarket` reads
(`timestamp_ms,symbol,trade_id,price,quantity,is_buyer_maker`), from a seeded random walk.

Used to make markets for demos, tests and benchmarks that are reproducible and can be checked
independently (the file is the ground truth)."""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from pathlib import Path

HEADER = ("timestamp_ms", "symbol", "trade_id", "price", "quantity", "is_buyer_maker")


def write_random_walk_csv(
    path: Path,
    *,
    symbols: Sequence[str] = ("BTCUSDT", "ETHUSDT"),
    trades_per_symbol: int = 10_000,
    start_ms: int = 1_700_000_000_000,
    mean_gap_ms: float = 50.0,
    seed: int = 1,
) -> int:
    """Write a random-walk market to `path`, rows in time order; returns the number of rows.

    Prices are 2-decimal strings around 60000 (BTC) or 3000 (others), quantities 8-decimal strings;
    ids are consecutive per symbol from 1; several trades may share a millisecond.
    """
    rng = random.Random(seed)
    rows: list[tuple[int, str, int, str, str, str]] = []
    for index, symbol in enumerate(symbols):
        price = 60_000.0 if symbol.startswith("BTC") else 3_000.0 / (index + 1)
        at = float(start_ms)
        for trade_id in range(1, trades_per_symbol + 1):
            at += rng.expovariate(1.0 / mean_gap_ms) if rng.random() > 0.2 else 0.0
            price = max(0.01, price * (1.0 + rng.gauss(0.0, 0.0004)))
            quantity = rng.lognormvariate(-4.0, 1.2)
            maker = "true" if rng.random() < 0.5 else "false"
            rows.append((int(at), symbol, trade_id, f"{price:.2f}", f"{max(quantity, 1e-8):.8f}", maker))
    rows.sort(key=lambda row: (row[0], row[1], row[2]))
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return len(rows)
