"""A messy replay file and an independent pandas computation of the bars the platform must build from it.

The market (`messy_rows`): trades of two symbols over about three hours across a midnight, with trades
exactly on and just before minute boundaries, equal timestamps, out-of-order neighbours (a row up to
400 ms older than the one before it), duplicate rows (an earlier row again) and late trades (10-120 s
older than the newest trade of their symbol). Ids increase per symbol in file order, except duplicates.

The oracle (`oracle_bars`) applies the platform's documented policies (docs/bars-and-indicators.md) to
the file, in file order, per symbol and timeframe, with pandas and exact decimals, sharing no code with
the platform:
- a duplicate (an id seen before) is dropped;
- a trade is late for a timeframe when its bucket's end + grace is at or before the newest event time
  of the symbol's earlier trades: it is in no bar of that timeframe;
- every other trade is in the bar of its bucket; open/close are the trades with the lowest/highest event
  time, ties going to the earlier/later row; the last bars close when the replay ends.
"""

from __future__ import annotations

import csv
import random
from decimal import Decimal
from pathlib import Path

import pandas as pd

TIMEFRAMES = {
    "1m": 60_000,
    "5m": 300_000,
    "15m": 900_000,
    "1h": 3_600_000,
    "4h": 14_400_000,
    "1d": 86_400_000,
}
GRACE_MS = 5_000  # the runs' --grace-seconds: a processor delayed by less never closes a bar early
# A late trade is generated only where it is late (or not) for every timeframe by at least this much
# event time: the processor's clock may run ahead of the newest trade by its processing delay.
LATE_MARGIN_MS = 4_000  # more than the caught-up slack: the clock cannot close such a bar early
START_MS = 1_704_146_400_000  # 2024-01-01T22:00:00Z: the replay crosses midnight
HEADER = ["timestamp_ms", "symbol", "trade_id", "price", "quantity", "is_buyer_maker"]
Row = tuple[int, str, int, str, str, bool]


def _price_walk(rng: random.Random, start: float) -> list[str]:
    prices, price = [], start
    for _ in range(100_000):
        price = max(1.0, price + rng.choice((-1, 1)) * rng.random() * start * 0.0005)
        prices.append(f"{price:.2f}")
    return prices


def _clean_rows(rng: random.Random, symbol: str, count: int, span_ms: int, first_id: int) -> list[Row]:
    times = sorted(START_MS + rng.randrange(span_ms) for _ in range(count))
    for i in rng.sample(range(count), count // 20):  # on a minute boundary, or 1 ms before one
        minute = (times[i] // 60_000 + 1) * 60_000
        times[i] = minute - rng.choice((0, 1))
    times.sort()
    for i in rng.sample(range(1, count), count // 20):  # equal timestamps
        times[i] = times[i - 1]
    prices = _price_walk(rng, 40_000.0 if symbol.startswith("BTC") else 2_000.0)
    rows: list[Row] = []
    for i, ts in enumerate(times):
        quantity = f"{rng.randrange(1, 10**8) / 10**8:.{rng.choice((3, 5, 8))}f}"
        if Decimal(quantity) == 0:
            quantity = "0.001"
        rows.append((ts, symbol, first_id + i, prices[i], quantity, rng.random() < 0.5))
    return rows


def _late_enough(ts: int, newest: int) -> bool:
    """`ts` is late, or not late, for every timeframe with a margin (see LATE_MARGIN_MS)."""
    for length in TIMEFRAMES.values():
        due = ts - ts % length + length + GRACE_MS
        if abs(due - newest) < LATE_MARGIN_MS:
            return False
    return True


def _disorder(rng: random.Random, rows: list[Row]) -> list[Row]:
    """Out-of-order neighbours and late trades (ids stay in file order), then duplicate rows."""
    out: list[Row] = []
    newest = 0
    for ts, symbol, trade_id, price, quantity, maker in rows:
        roll = rng.random()
        if roll < 0.05 and out:
            ts = max(START_MS, min(ts, newest) - rng.randrange(1, 400))  # an out-of-order neighbour
        elif roll < 0.07 and newest - START_MS > 130_000:
            for _ in range(20):
                late = newest - rng.randrange(10_000, 120_000)
                if _late_enough(late, newest):
                    ts = late
                    break
        newest = max(newest, ts)
        out.append((ts, symbol, trade_id, price, quantity, maker))
    for i in sorted(rng.sample(range(20, len(out)), len(out) // 50), reverse=True):
        out.insert(i + rng.randrange(1, 20), out[i - rng.randrange(0, 20)])  # a duplicate row
    return out


def messy_rows(seed: int, per_symbol: int = 2_500, span_ms: int = 3 * 3_600_000) -> dict[str, list[Row]]:
    rng = random.Random(seed)
    return {
        symbol: _disorder(rng, _clean_rows(rng, symbol, per_symbol, span_ms, first_id))
        for symbol, first_id in (("BTCUSDT", 7_000_000), ("ETHUSDT", 300))
    }


def write_rows(path: Path, by_symbol: dict[str, list[Row]], seed: int) -> int:
    """Interleave the symbols' rows (each symbol's in order) into a CSV file; returns the row count."""
    rng = random.Random(seed)
    queues = {symbol: list(rows) for symbol, rows in by_symbol.items()}
    merged: list[Row] = []
    while queues:
        symbol = rng.choice(sorted(queues))
        merged.append(queues[symbol].pop(0))
        if not queues[symbol]:
            del queues[symbol]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for ts, symbol, trade_id, price, quantity, maker in merged:
            writer.writerow([ts, symbol, trade_id, price, quantity, "true" if maker else "false"])
    return len(merged)


def oracle_bars(rows: list[Row], timeframe: str) -> pd.DataFrame:
    """The bars of one symbol's rows (file order) for `timeframe`, by the policies in the docstring."""
    length = TIMEFRAMES[timeframe]
    frame = pd.DataFrame(rows, columns=["ts", "symbol", "trade_id", "price", "quantity", "maker"])
    frame["order"] = range(len(frame))
    frame = frame[~frame["trade_id"].duplicated(keep="first")].copy()
    newest_before = frame["ts"].cummax().shift(1, fill_value=-1)
    frame["bucket"] = frame["ts"] - frame["ts"] % length
    frame = frame[frame["bucket"] + length + GRACE_MS > newest_before]
    frame = frame.sort_values(["ts", "order"], kind="stable")
    frame["qty"] = frame["quantity"].map(Decimal)
    frame["px"] = frame["price"].map(Decimal)
    frame["notional"] = frame["qty"] * frame["px"]
    frame["buy"] = frame["qty"].where(~frame["maker"], Decimal(0))
    frame["sell"] = frame["qty"].where(frame["maker"], Decimal(0))
    exact_sum = lambda values: sum(values, Decimal(0))  # noqa: E731
    grouped = frame.groupby("bucket")
    return pd.DataFrame(
        {
            "open": grouped["price"].first(),
            "high": grouped["px"].max(),
            "low": grouped["px"].min(),
            "close": grouped["price"].last(),
            "volume": grouped["qty"].agg(exact_sum),
            "quote_volume": grouped["notional"].agg(exact_sum),
            "buy_volume": grouped["buy"].agg(exact_sum),
            "sell_volume": grouped["sell"].agg(exact_sum),
            "trade_count": grouped.size(),
            "first_trade_id": grouped["trade_id"].first().astype(str),
            "last_trade_id": grouped["trade_id"].last().astype(str),
        }
    )
