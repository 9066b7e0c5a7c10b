"""The processor service over the embedded store: a batch delivered twice (a redelivery after a crash) is
stored and applied once, and the repeat is counted, not silently dropped."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import msgspec
import pytest

from core.clock import ManualClock
from core.timeframes import NS_PER_SECOND, bucket_start, timeframe_ns
from core.types import Bar, CoverageEvent, CoverageKind, Delivery, SymbolInfo, Trade
from monitoring.metrics import PlatformMetrics
from processor.bars import BarAggregator
from processor.pipeline import batches
from processor.service import ProcessorService
from storage.memory_bus import InProcessBus
from storage.memory_cache import MemoryCache
from storage.redis_bus import RedisStreamBus
from storage.sqlite import SQLiteStore
from tests.processor.test_bars_pandas import random_trades
from tests.storage.conftest import make_trade


def delivery(n: int, trades: list[Trade]) -> Delivery:
    return Delivery("trades:binance:BTC-USDT", str(n), trades)


async def test_a_redelivered_batch_is_applied_once_and_counted(
    tmp_path: Path, metrics: PlatformMetrics
) -> None:
    store = SQLiteStore(tmp_path / "db.sqlite", metrics=metrics)
    await store.migrate()
    service = ProcessorService(
        InProcessBus(metrics=metrics),
        store,
        MemoryCache(metrics=metrics),
        timeframes=("1m",),
        grace_ns=0,
        metrics=metrics,
    )
    first = [make_trade(i) for i in range(1, 6)]
    await service.process([delivery(1, first)])
    await service.process([delivery(2, [*first[2:], make_trade(6)])])  # 3, 4, 5 again, then 6

    sample = metrics.registry.get_sample_value
    assert sample("trades_processed_total", {"exchange": "binance"}) == 6
    assert sample("trades_duplicate_total", {"exchange": "binance", "symbol": "BTC-USDT"}) == 3
    assert service.trades_applied == 6
    stored = await store.trades("binance", "BTC-USDT", limit=100)
    assert [t.sequence for t in stored] == [1, 2, 3, 4, 5, 6]
    open_bars = service._pipeline.aggregator.open_bars()
    assert [b.trade_count for b in open_bars] == [6]
    await store.close()


def test_batches_group_whole_deliveries_up_to_a_trade_count() -> None:
    sizes = [3, 4, 2, 9, 1, 1]
    deliveries = [delivery(n, [make_trade(n * 100 + i) for i in range(size)]) for n, size in enumerate(sizes)]
    groups = list(batches(deliveries, 7))
    assert [[len(d.trades) for d in group] for group in groups] == [[3, 4], [2], [9], [1, 1]]
    assert [d for group in groups for d in group] == deliveries
    assert list(batches([], 7)) == []


async def test_many_batches_in_flight_are_applied_in_read_order(
    tmp_path: Path, metrics: PlatformMetrics
) -> None:
    """Small reads and store groups keep several inserts in flight at once; the bars stored must be
    exactly those of one aggregator fed the trades in bus order."""
    trades = random_trades(6000, seed=3)  # hours of trades, received long ago: bars close by event time
    timeframes, grace = ("1m", "5m"), 2 * NS_PER_SECOND
    store = SQLiteStore(tmp_path / "db.sqlite", metrics=metrics)
    await store.migrate()
    bus = InProcessBus(metrics=metrics)
    for start in range(0, len(trades), 37):
        await bus.publish(trades[start : start + 37])
    service = ProcessorService(
        bus, store, MemoryCache(metrics=metrics), timeframes=timeframes, grace_ns=grace,
        read_batch=20, store_batch=150, drain_on_stop=True, metrics=metrics,
    )  # fmt: skip
    running = asyncio.create_task(service.run())
    deadline = time.monotonic() + 30
    while service.trades_applied < len(trades):
        assert time.monotonic() < deadline, f"applied {service.trades_applied} of {len(trades)}"
        await asyncio.sleep(0.05)
    service.stop()
    await asyncio.wait_for(running, 10)

    aggregator = BarAggregator(timeframes, grace)
    # once the bus is drained the clock closes the open bars too (the trades are old)
    closed = aggregator.add_many(trades).closed + aggregator.close_due(time.time_ns())
    expected = {(b.timeframe, b.open_time): b for b in closed}
    stored = {}
    for timeframe in timeframes:
        for item in await store.bars("binance", "BTC-USDT", timeframe, limit=10_000):
            stored[(timeframe, item.bar.open_time)] = item.bar
    assert stored.keys() == expected.keys()
    for key, bar in expected.items():
        assert stored[key] == bar, key  # every field round-trips exactly
    assert len(await store.trades("binance", "BTC-USDT", limit=10_000)) == len(trades)
    assert metrics.registry.get_sample_value(
        "late_trades_total", {"exchange": "binance", "symbol": "BTC-USDT"}
    ) in (
        None,
        0.0,
    )
    await store.close()


async def test_a_sharded_processor_warms_up_and_closes_only_its_own_symbols(
    tmp_path: Path, metrics: PlatformMetrics, redis_url: str
) -> None:
    """Another shard's open bars, rebuilt and closed here, would overwrite that shard's complete bars."""
    symbols = [f"C{i}-USDT" for i in range(10)]
    in_last_minute = bucket_start(time.time_ns(), timeframe_ns("1m")) - 30 * NS_PER_SECOND
    store = SQLiteStore(tmp_path / "db.sqlite", metrics=metrics)
    await store.migrate()
    await store.upsert_symbols([SymbolInfo("binance", s, s.replace("-", ""), s[:2], "USDT") for s in symbols])
    await store.insert_trades([make_trade(1, symbol=s, ts=in_last_minute) for s in symbols])
    bus = RedisStreamBus(redis_url, prefix="shardtest", shard_index=0, shard_count=2, metrics=metrics)
    owned = {s for s in symbols if bus.owns("binance", s)}
    assert owned and owned != set(symbols)
    service = ProcessorService(
        bus, store, MemoryCache(metrics=metrics), timeframes=("1m",), grace_ns=0, tick_interval=0.05,
        metrics=metrics,
    )  # fmt: skip
    running = asyncio.create_task(service.run())
    deadline = time.monotonic() + 10
    while len(await store.bars("binance", min(owned), "1m")) == 0:
        assert time.monotonic() < deadline, "the owned symbols' last minute was never closed"
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # a few more ticks: time for the other shard's bars to close, were they open
    service.stop()
    await asyncio.wait_for(running, 10)
    await bus.close()
    with_bars = {s for s in symbols if await store.bars("binance", s, "1m")}
    assert with_bars == owned
    await store.close()


async def test_a_trade_from_a_clock_far_ahead_is_stored_and_counted_but_closes_no_bar(
    tmp_path: Path, metrics: PlatformMetrics
) -> None:
    store = SQLiteStore(tmp_path / "db.sqlite", metrics=metrics)
    await store.migrate()
    service = ProcessorService(
        InProcessBus(metrics=metrics), store, MemoryCache(metrics=metrics), timeframes=("1m",), grace_ns=0,
        metrics=metrics,
    )  # fmt: skip
    minute = [make_trade(i) for i in range(1, 4)]
    ahead = msgspec.structs.replace(make_trade(4, ts=minute[0].ts_event + 3600 * NS_PER_SECOND),
                                    ts_recv=minute[-1].ts_recv)  # fmt: skip
    await service.process([delivery(1, [*minute, ahead])])
    assert [t.sequence for t in await store.trades("binance", "BTC-USDT", limit=10)] == [1, 2, 3, 4]
    assert await store.bars("binance", "BTC-USDT", "1m") == []  # the open minute was not closed early
    sample = metrics.registry.get_sample_value
    labels = {"exchange": "binance", "symbol": "BTC-USDT", "anomaly_type": "future_timestamp"}
    assert sample("data_anomalies_detected_total", labels) == 1
    assert sample("trades_processed_total", {"exchange": "binance"}) == 4
    await service.process([delivery(2, [make_trade(5)])])
    assert await store.bars("binance", "BTC-USDT", "1m") == []
    await store.close()


@pytest.mark.parametrize("piecewise", [False, True])
async def test_a_gap_holds_its_bars_until_the_repaired_trades_are_in(
    tmp_path: Path, metrics: PlatformMetrics, piecewise: bool
) -> None:
    """The collector publishes GAP before the trade that revealed it and REPAIRED after the missing
    trades (at once, or piece by piece): the 1m bar they belong to must not close in between, and an
    unanswered repair holds bars for max_hold seconds only."""
    store = SQLiteStore(tmp_path / "db.sqlite", metrics=metrics)
    await store.migrate()
    clock = ManualClock()
    service = ProcessorService(
        InProcessBus(metrics=metrics), store, MemoryCache(metrics=metrics), timeframes=("1m",),
        grace_ns=0, metrics=metrics, max_hold=0.5, clock=clock,
    )  # fmt: skip
    t0 = 1_700_000_040 * NS_PER_SECOND  # a whole minute

    def at(seq: int, offset_s: float) -> Trade:
        ts = t0 + int(offset_s * NS_PER_SECOND)
        clock.set(max(clock.now_ns(), ts))  # received as it happened: live
        return msgspec.structs.replace(make_trade(seq), ts_event=ts, ts_recv=ts)

    def event(kind: CoverageKind, n: int, after_s: float) -> Delivery:
        coverage = CoverageEvent("binance", "BTC-USDT", "BTCUSDT", kind, t0 + int(after_s * NS_PER_SECOND),
                                 0, 0, n, n + 1, 2)  # fmt: skip
        return Delivery("trades:binance:BTC-USDT", f"e{n}", [], [coverage])

    async def bars() -> list[Bar]:
        return [c.bar for c in await store.bars("binance", "BTC-USDT", "1m")]

    await service.process([delivery(1, [at(1, 10), at(2, 20)]), event(CoverageKind.GAP, 3, 20)])
    await service.process([delivery(3, [at(5, 70), at(6, 130)])])  # the first bar is due, but held
    assert await bars() == []
    if piecewise:  # one missing trade arrives (live or over REST) and is resolved alone: still held
        repaired = CoverageEvent("binance", "BTC-USDT", "BTCUSDT", CoverageKind.REPAIRED, t0, 0, 0, 3, 3, 1)
        await service.process(
            [delivery(4, [at(3, 30)]), Delivery("trades:binance:BTC-USDT", "r3", [], [repaired])]
        )
        assert await bars() == []
        await service.process([delivery(5, [at(4, 50)]), event(CoverageKind.REPAIRED, 3, 20)])
    else:
        await service.process([delivery(4, [at(3, 30), at(4, 50)]), event(CoverageKind.REPAIRED, 3, 20)])
    [first, second] = await bars()  # [120, 180) is still open: the clock is at 130 s
    assert (first.trade_count, first.low, first.last_trade_id, second.trade_count) == (
        4,
        "0.00150000",
        "4",
        1,
    )
    sample = metrics.registry.get_sample_value
    assert sample("coverage_events_total", {"exchange": "binance", "kind": "gap"}) == 1
    assert sample("late_trades_total", {"exchange": "binance", "symbol": "BTC-USDT"}) is None
    kinds = [e.kind for e in await store.coverage("binance", "BTC-USDT")]
    assert sorted(kinds) == sorted(
        [CoverageKind.GAP, CoverageKind.REPAIRED] + [CoverageKind.REPAIRED] * piecewise
    )
    # a repair that never reports back holds the bars for max_hold seconds only
    await service.process([event(CoverageKind.GAP, 20, 140), delivery(8, [at(22, 190), at(23, 250)])])
    assert len(await bars()) == 2
    await asyncio.sleep(0.6)
    await service.close_due()
    assert [b.trade_count for b in await bars()] == [4, 1, 1, 1]  # [240, 300) stays open at 250 s
    assert sample("coverage_holds_expired_total", {"exchange": "binance"}) == 1
    await store.close()
