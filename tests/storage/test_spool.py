"""The spool: what a bus could not deliver at stop is kept on disk and published at the next start."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from core.errors import BusError
from core.types import BusItem, CoverageEvent, CoverageKind, Delivery
from monitoring.metrics import PlatformMetrics
from storage.memory_bus import InProcessBus
from storage.redis_bus import RedisStreamBus
from storage.spool import Spool, republish
from tests.conftest import free_port
from tests.storage.conftest import make_trade
from tests.storage.tcp_proxy import TcpProxy

GAP = CoverageEvent("binance", "BTC-USDT", "BTCUSDT", CoverageKind.GAP, 1, 2, 3, 4, 5, 2)


async def read_all(bus: InProcessBus | RedisStreamBus, expected: int) -> list[Delivery]:
    got: list[Delivery] = []
    async with asyncio.timeout(20):
        while sum(len(d.trades) + len(d.events) for d in got) < expected:
            batch = await bus.read("p1", max_count=100, block_ms=100)
            await bus.ack(batch)
            got.extend(batch)
    return got


def test_files_are_whole_and_read_oldest_first(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", "collector-binance")
    assert spool.files() == [] and spool.save([BusItem()]) is None
    first = spool.save([BusItem(trades=[make_trade(1)]), BusItem(events=[GAP])])
    second = spool.save([BusItem(trades=[make_trade(2), make_trade(3)])])
    Spool(tmp_path / "spool", "collector-okx").save([BusItem(trades=[make_trade(9)])])  # someone else's
    assert spool.files() == [first, second]
    assert spool.load(first) == [BusItem(trades=[make_trade(1)]), BusItem(events=[GAP])]
    assert not list((tmp_path / "spool").glob("*.partial"))


async def test_an_in_process_bus_spools_what_was_not_acknowledged_and_the_next_start_gets_it(
    tmp_path: Path, metrics: PlatformMetrics
) -> None:
    spool = Spool(tmp_path, "platform")
    bus = InProcessBus(metrics=metrics, spool=spool)
    await bus.publish([make_trade(i) for i in range(1, 4)])
    await bus.publish_events([GAP])
    await bus.read("p1", max_count=1)  # read, never acknowledged: not stored for sure
    late = BusItem(trades=[make_trade(4)])  # what a stopping collector could not hand over
    await bus.close(leftover=[late])
    [path] = spool.files()
    restarted = InProcessBus(metrics=metrics, spool=spool)
    assert await republish(spool, restarted) == 4
    assert spool.files() == [] and not path.exists()
    got = await read_all(restarted, 5)
    assert [t.sequence for d in got for t in d.trades] == [1, 2, 3, 4]
    assert [e for d in got for e in d.events] == [GAP]


async def test_a_redis_bus_closing_while_redis_is_down_spools_its_buffer(
    tmp_path: Path, metrics: PlatformMetrics, redis_url: str
) -> None:
    proxy = TcpProxy("127.0.0.1", 6379, free_port())
    url = f"redis://127.0.0.1:{proxy.port}/{redis_url.rsplit('/', 1)[-1]}"  # the test database, via the proxy
    prefix = f"spool{free_port()}"
    spool = Spool(tmp_path, "collector-binance")
    bus = RedisStreamBus(url, prefix=prefix, metrics=metrics, spool=spool, close_drain_s=1.0)
    await proxy.start()
    await bus.publish([make_trade(1)])
    await bus.flush()
    await proxy.stop()  # Redis unreachable from here on
    await bus.publish([make_trade(2), make_trade(3)])
    await bus.publish_events([GAP])
    await bus.close()
    assert len(spool.files()) == 1
    await proxy.start()
    restarted = RedisStreamBus(redis_url, prefix=prefix, metrics=metrics, spool=spool)
    try:
        assert await republish(spool, restarted) == 2
        got = await read_all(restarted, 4)
        assert [t.sequence for d in got for t in d.trades] == [1, 2, 3]
        assert [e for d in got for e in d.events] == [GAP]
        points = await restarted.resume_points("binance")
        assert [(p.raw_symbol, p.sequence) for p in points] == [("BTCUSDT", 3)]
    finally:
        await restarted.close()
        await proxy.stop()


async def test_without_a_spool_a_bus_that_cannot_deliver_says_how_much_is_lost(
    metrics: PlatformMetrics,
) -> None:
    bus = InProcessBus(metrics=metrics)
    await bus.publish([make_trade(1), make_trade(2)])
    with pytest.raises(BusError, match="2 trades could not be delivered"):
        await bus.close()


async def test_an_unreadable_spool_file_is_set_aside_not_in_the_way(
    tmp_path: Path, metrics: PlatformMetrics
) -> None:
    spool = Spool(tmp_path, "platform")
    bad = tmp_path / "platform-1.spool"
    bad.write_bytes(b"\x00not msgpack")
    spool.save([BusItem(trades=[make_trade(7)])])
    bus = InProcessBus(metrics=metrics)
    assert await republish(spool, bus) == 1
    assert bad.with_suffix(".bad").exists() and spool.files() == []
