"""The processor service over the embedded store: a batch delivered twice (a redelivery after a crash) is
stored and applied once, and the repeat is counted, not silently dropped."""

from __future__ import annotations

from pathlib import Path

from core.types import Delivery, Trade
from cryptostock.processing import ProcessorService, batches
from monitoring.metrics import PlatformMetrics
from storage.memory_bus import InProcessBus
from storage.memory_cache import MemoryCache
from storage.sqlite import SQLiteStore
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
    assert [t.trade_id for t in stored] == [1, 2, 3, 4, 5, 6]
    open_bars = service._aggregator.open_bars()
    assert [b.trade_count for b in open_bars] == [6]
    await store.close()


def test_batches_group_whole_deliveries_up_to_a_trade_count() -> None:
    sizes = [3, 4, 2, 9, 1, 1]
    deliveries = [delivery(n, [make_trade(n * 100 + i) for i in range(size)]) for n, size in enumerate(sizes)]
    groups = list(batches(deliveries, 7))
    assert [[len(d.trades) for d in group] for group in groups] == [[3, 4], [2], [9], [1, 1]]
    assert [d for group in groups for d in group] == deliveries
    assert list(batches([], 7)) == []
