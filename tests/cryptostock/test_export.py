"""`cryptostock export`: a day of bars to Parquet read back with pandas, trades to CSV, exact strings and
ns times kept, paging that never loses or repeats a trade, and memory bounded by the page size."""

from __future__ import annotations

import csv
import gc
import subprocess
import tracemalloc
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path

import msgspec
import pandas as pd
import pytest

from core.timeframes import NS_PER_SECOND
from core.types import ClosedBar, Trade
from cryptostock.export import ExportRequest, write_export
from monitoring.metrics import PlatformMetrics
from storage.postgres import PostgresStore
from storage.sqlite import SQLiteStore
from tests.api.conftest import MINUTE, SYMBOLS, T0, make_bar, make_trade
from tests.integration.procs import CRYPTOSTOCK, ROOT, base_env

DAY = 24 * 60 * 60 * NS_PER_SECOND


def day_of_bars() -> list[ClosedBar]:
    """1440 1m bars of 2024-01-01 plus one each side of the day (which must not be exported)."""
    day = [make_bar(i) for i in range(1441)]
    before = make_bar(0)
    earlier = msgspec.structs.replace(before.bar, open_time=T0 - MINUTE, close_time=T0)
    return [msgspec.structs.replace(before, bar=earlier), *day]


@pytest.fixture
async def store(tmp_path: Path, metrics: PlatformMetrics) -> AsyncIterator[SQLiteStore]:
    db = SQLiteStore(tmp_path / "data" / "simulated.db", metrics=metrics)
    await db.migrate()
    await db.upsert_symbols(SYMBOLS)
    yield db
    await db.close()


def request(kind: str, page_size: int = 100, end_ns: int = T0 + DAY) -> ExportRequest:
    return ExportRequest(kind, "binance", "BTC-USDT", "1m", T0, end_ns, page_size)


async def test_a_day_of_bars_to_parquet_from_the_command_line(store: SQLiteStore, tmp_path: Path) -> None:
    await store.upsert_bars(day_of_bars())
    output = tmp_path / "btc-1m.parquet"
    result = subprocess.run(
        [*CRYPTOSTOCK, "export", "bars", "--symbol", "btcusdt", "--timeframe", "1m", "--from", "2024-01-01",
         "--to", "2024-01-02", "--output", str(output), "--page-size", "500"],
        cwd=ROOT, env=base_env(tmp_path), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("cryptostock export bars: 1,440 BTC-USDT 1m bars on binance written to")
    frame = pd.read_parquet(output)
    assert len(frame) == 1440
    assert str(frame["open_time"].dtype) == "datetime64[ns, UTC]"
    assert frame["open_time"].iloc[0] == pd.Timestamp("2024-01-01T00:00:00Z")
    assert frame["open_time_ns"].iloc[-1] == T0 + 1439 * 60 * NS_PER_SECOND
    assert frame["open_time"].is_monotonic_increasing and frame["open_time"].is_unique
    first = make_bar(0).bar
    assert (frame["open"].iloc[0], frame["close"].iloc[0]) == (first.open, first.close)  # exact strings
    assert frame["first_trade_id"].iloc[0] == first.first_trade_id
    assert pd.isna(frame["sma_20"].iloc[0]) and frame["sma_20"].iloc[2] == 42000.5 + 2
    assert not list(tmp_path.glob("*.partial"))


async def test_trades_to_csv_keep_exact_strings_and_ns(store: SQLiteStore, tmp_path: Path) -> None:
    trades = [make_trade(i) for i in range(25)]
    await store.insert_trades(trades)
    output = tmp_path / "trades.csv"
    rows = await write_export(store, request("trades", page_size=4), "csv", output)
    assert rows == 25
    with output.open() as f:
        read = list(csv.DictReader(f))
    assert [r["trade_id"] for r in read] == [t.trade_id for t in trades]
    assert (read[0]["price"], read[0]["quantity"], read[0]["side"]) == ("42000.10", "0.0150", "buy")
    assert int(read[3]["time_ns"]) == trades[3].ts_event
    assert read[3]["time"] == "2024-01-01T00:00:03.123000000Z"
    assert read[0]["backfilled"] == "false" and read[0]["sequence"] == "1000"


def same_instant_trades(count: int, ts: int) -> list[Trade]:
    return [
        Trade("binance", "BTC-USDT", "BTCUSDT", f"s{i:05d}", None, "1.0", "2.0", make_trade(i).side, ts, ts)
        for i in range(count)
    ]


async def test_trade_paging_neither_loses_nor_repeats_one_even_at_one_instant(
    store: SQLiteStore, tmp_path: Path
) -> None:
    busy = T0 + 5 * NS_PER_SECOND  # 120 trades share one event time: more than a page of 50
    trades = [make_trade(i) for i in range(5)] + same_instant_trades(120, busy) + [make_trade(9)]
    await store.insert_trades(trades)
    output = tmp_path / "t.parquet"
    before_nine = request("trades", page_size=50, end_ns=T0 + 9 * NS_PER_SECOND)
    rows = await write_export(store, before_nine, "parquet", output)
    ids = pd.read_parquet(output)["trade_id"].tolist()
    assert rows == len(ids) == 125  # the trade at 9 s lies at the end of the range: excluded
    assert sorted(ids) == sorted(t.trade_id for t in trades[:-1])


class CountingStore(SQLiteStore):
    """The real store, remembering the largest page it returned."""

    largest = 0

    async def trades(self, *args: object, **kwargs: object) -> list[Trade]:
        page = await super().trades(*args, **kwargs)  # type: ignore[arg-type]
        self.largest = max(self.largest, len(page))
        return page


async def _peak_growth(work: Awaitable[object]) -> int:
    """Bytes the traced memory peaked above where it stood when `work` started."""
    gc.collect()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    result = await work
    peak = tracemalloc.get_traced_memory()[1]
    del result
    return peak - base


@pytest.mark.slow
async def test_memory_is_bounded_by_the_page_size(tmp_path: Path, metrics: PlatformMetrics) -> None:
    store = CountingStore(tmp_path / "many.db", metrics=metrics)
    await store.migrate()
    await store.upsert_symbols(SYMBOLS)
    count = 60_000
    for first in range(0, count, 10_000):
        await store.insert_trades([make_trade(i) for i in range(first, first + 10_000)])
    small = request("trades", 500, end_ns=T0 + NS_PER_SECOND)
    await write_export(store, small, "parquet", tmp_path / "warm.pq")  # imports pyarrow: not the export's
    try:
        tracemalloc.start()
        paged = await _peak_growth(write_export(store, request("trades", 500, T0 + DAY), "parquet",
                                                tmp_path / "m.pq"))  # fmt: skip
        largest_page = store.largest
        whole = await _peak_growth(store.trades("binance", "BTC-USDT", limit=count, since_ns=T0))
    finally:
        tracemalloc.stop()
        await store.close()
    print(f"peak growth: paged {paged:,} B, all at once {whole:,} B")
    assert len(pd.read_parquet(tmp_path / "m.pq")) == count and largest_page <= 500
    assert paged < whole / 10, (paged, whole)


async def test_bars_from_postgresql(pg_url: str, metrics: PlatformMetrics, tmp_path: Path) -> None:
    store = PostgresStore(pg_url, metrics=metrics)
    try:
        await store.migrate()
        await store.upsert_bars(day_of_bars())
        rows = await write_export(store, request("bars", page_size=333), "csv", tmp_path / "pg.csv")
    finally:
        await store.close()
    with (tmp_path / "pg.csv").open() as f:
        read = list(csv.DictReader(f))
    assert rows == len(read) == 1440
    assert read[0]["open_time"] == "2024-01-01T00:00:00.000000000Z" and read[0]["open"] == "42000.10"
