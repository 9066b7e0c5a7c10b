"""TradeBus contract over Redis Streams and the in-process bus; Redis-only recovery behaviour."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
import redis.exceptions

from core.errors import BusError, CircuitOpenError
from core.types import CoverageEvent, CoverageKind, Delivery, Trade
from monitoring.metrics import PlatformMetrics
from storage.codec import encode_trades
from storage.memory_bus import InProcessBus
from storage.redis_bus import RedisStreamBus, shard_of
from tests.conftest import free_port
from tests.storage.conftest import make_trade
from tests.storage.tcp_proxy import TcpProxy

Bus = RedisStreamBus | InProcessBus


def trades_for(symbols: list[str], per_symbol: int, start: int = 1) -> list[Trade]:
    return [make_trade(i, symbol=s) for i in range(start, start + per_symbol) for s in symbols]


async def drain(
    bus: Bus, consumer: str, expected: int, *, ack: bool = True, timeout: float = 15.0
) -> list[Delivery]:
    """Read (and ack) until `expected` trades arrived; bus errors during an outage are retried."""
    got: list[Delivery] = []
    async with asyncio.timeout(timeout):
        while sum(len(d.trades) for d in got) < expected:
            try:
                batch = await bus.read(consumer, max_count=50, block_ms=100)
                if ack:
                    await bus.ack(batch)
            except (BusError, CircuitOpenError):
                await asyncio.sleep(0.05)
                continue
            got.extend(batch)
    return got


def by_symbol(deliveries: list[Delivery]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for d in deliveries:
        for t in d.trades:
            out.setdefault(t.symbol, []).append(t.sequence)  # type: ignore[arg-type]
    return out


@pytest.fixture
def prefix() -> str:
    return f"cs{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def make_bus(
    redis_url: str, metrics: PlatformMetrics, prefix: str
) -> AsyncIterator[Callable[..., RedisStreamBus]]:
    """Builds Redis buses on the test database (closed at the end)."""
    made: list[RedisStreamBus] = []

    def build(**options: Any) -> RedisStreamBus:
        options.setdefault("url", redis_url)
        options.setdefault("prefix", prefix)
        options.setdefault("metrics", metrics)
        options.setdefault("discovery_interval_s", 0.05)
        url = options.pop("url")
        bus = RedisStreamBus(url, **options)
        made.append(bus)
        return bus

    yield build
    for bus in made:
        await bus.close()


@pytest.fixture(params=["redis", "memory"])
async def small_bus(
    request: pytest.FixtureRequest, make_bus: Callable[..., RedisStreamBus], metrics: PlatformMetrics
) -> AsyncIterator[Bus]:
    """A bus that holds at most ~10 trades before publishers wait."""
    if request.param == "memory":
        bus = InProcessBus(max_trades=10, metrics=metrics)
        yield bus
        await bus.close()
    else:
        yield make_bus(max_pending_trades=10, max_stream_entries=2, batch_size=5, flush_interval=0)


@pytest.fixture(params=["redis", "memory"])
async def bus(
    request: pytest.FixtureRequest, make_bus: Callable[..., RedisStreamBus], metrics: PlatformMetrics
) -> AsyncIterator[Bus]:
    if request.param == "memory":
        memory = InProcessBus(metrics=metrics)
        yield memory
        await memory.close()
    else:
        yield make_bus(batch_size=100)


def bus_label(bus: Bus) -> str:
    return "memory" if isinstance(bus, InProcessBus) else "redis"


async def test_publish_read_ack_keeps_per_symbol_order(bus: Bus, metrics: PlatformMetrics) -> None:
    symbols = ["BTC-USDT", "ETH-USDT", "SOL-USDT"]
    trades = trades_for(symbols, 250)
    await bus.publish(trades[:400])
    await bus.publish(trades[400:])
    got = await drain(bus, "p1", len(trades))
    assert by_symbol(got) == {s: list(range(1, 251)) for s in symbols}
    assert all(len({t.symbol for t in d.trades}) == 1 for d in got)
    assert await bus.read("p1", block_ms=50) == []
    label = bus_label(bus)
    assert metrics.registry.get_sample_value("bus_trades_published_total", {"bus": label}) == 750
    assert await bus.ping()


async def test_backpressure_waits_instead_of_dropping(small_bus: Bus, metrics: PlatformMetrics) -> None:
    trades = trades_for(["BTC-USDT"], 100)
    publisher = asyncio.create_task(small_bus.publish(trades))
    await asyncio.sleep(0.3)
    assert not publisher.done(), "publish() should be waiting for room"
    label = bus_label(small_bus)
    assert metrics.registry.get_sample_value("bus_backpressure_waits_total", {"bus": label}) == 1
    got = await drain(small_bus, "p1", 100)
    await asyncio.wait_for(publisher, 5)
    assert by_symbol(got) == {"BTC-USDT": list(range(1, 101))}


async def test_unacked_deliveries_come_back_after_a_crash(
    make_bus: Callable[..., RedisStreamBus], redis_url: str, prefix: str
) -> None:
    first = make_bus()
    await first.publish(trades_for(["BTC-USDT"], 30))
    await first.flush()
    crashed = await drain(first, "proc-a", 30, ack=False)
    await first.close()  # the consumer "crashes" without acknowledging
    restarted = make_bus()
    again = await drain(restarted, "proc-a", 30, ack=False)
    assert [d.delivery_id for d in again] == [d.delivery_id for d in crashed]
    assert by_symbol(again) == {"BTC-USDT": list(range(1, 31))}
    # proc-a never comes back: after the idle time another consumer name claims its entries
    rescuer = make_bus(claim_idle_s=0.2)
    await asyncio.sleep(0.3)
    rescued = await drain(rescuer, "proc-b", 30)
    assert [d.delivery_id for d in rescued] == [d.delivery_id for d in crashed]
    client = aioredis.from_url(redis_url)
    stream = f"{prefix}:trades:binance:BTC-USDT"
    assert (await client.xpending(stream, "processor"))["pending"] == 0
    assert await client.xlen(stream) == 0  # acknowledged entries are deleted
    await client.aclose()


async def test_own_pending_is_not_reclaimed_while_in_flight(make_bus: Callable[..., RedisStreamBus]) -> None:
    bus = make_bus(claim_idle_s=0.1)
    await bus.publish(trades_for(["BTC-USDT"], 5))
    await bus.flush()
    await drain(bus, "p1", 5, ack=False)
    await asyncio.sleep(0.2)
    assert await bus.read("p1", block_ms=50) == []


async def test_entries_handed_out_in_a_lost_reply_are_read_again(
    make_bus: Callable[..., RedisStreamBus],
) -> None:
    """The connection dies after Redis handed out new entries and before their reply arrived (Redis cut
    mid-read): they are pending for this consumer, which never saw them. The read after the failure
    delivers them; entries handed out earlier and not yet acknowledged are not delivered twice. (Real
    Redis; only the reply's loss is injected, by wrapping the client's XREADGROUP.)"""
    bus = make_bus()
    await bus.publish(trades_for(["BTC-USDT"], 10))
    await bus.flush()
    held = await drain(bus, "p1", 10, ack=False)  # handed out, still being processed
    await bus.publish(trades_for(["BTC-USDT"], 10, start=11))
    await bus.flush()
    client = bus._redis
    real = client.xreadgroup

    async def reply_lost(*args: Any, **kwargs: Any) -> Any:
        await real(*args, **kwargs)  # Redis hands the entries out to p1...
        client.xreadgroup = real  # type: ignore[method-assign]
        raise redis.exceptions.ConnectionError("connection lost before the reply")  # ...which never sees them

    client.xreadgroup = reply_lost  # type: ignore[method-assign]
    with pytest.raises(BusError):
        await bus.read("p1", max_count=50, block_ms=100)
    got = await drain(bus, "p1", 10, timeout=5)
    assert by_symbol(got) == {"BTC-USDT": list(range(11, 21))}
    await bus.ack(held)
    assert await bus.read("p1", block_ms=50) == []


async def test_a_read_failing_while_setting_junk_aside_strands_nothing(
    make_bus: Callable[..., RedisStreamBus], prefix: str
) -> None:
    """Redis fails while a read sets an undecodable entry aside (the dead letter is not written): the
    good entries of that read, never handed out, come with the next read."""
    bus = make_bus()
    await bus.publish(trades_for(["BTC-USDT"], 10))
    await bus.flush()
    await bus._redis.xadd(f"{prefix}:trades:binance:BTC-USDT", {b"t": b"junk"})
    real = bus.dead_letter

    async def fails(letters: Any) -> None:
        bus.dead_letter = real  # type: ignore[method-assign]
        raise BusError("redis dead_letter failed")

    bus.dead_letter = fails  # type: ignore[method-assign]
    with pytest.raises(BusError):
        await bus.read("p1", max_count=50, block_ms=100)
    got = await drain(bus, "p1", 10, timeout=5)
    assert by_symbol(got) == {"BTC-USDT": list(range(1, 11))}


async def test_entries_lost_in_a_reply_come_before_newer_ones(
    make_bus: Callable[..., RedisStreamBus],
) -> None:
    """Many entries in flight (a backlog in the pipeline) when a reply is lost: the lost entries are
    delivered next, before entries published after them, so no trade arrives after newer ones."""
    bus = make_bus(batch_size=1)
    await bus.publish(trades_for(["BTC-USDT"], 6))
    await bus.flush()
    for _ in range(2):
        await bus.read("p1", max_count=2, block_ms=100)  # 1..4 handed out, not acknowledged
    client = bus._redis
    real = client.xreadgroup

    async def reply_lost(*args: Any, **kwargs: Any) -> Any:
        await real(*args, **kwargs)
        client.xreadgroup = real  # type: ignore[method-assign]
        raise redis.exceptions.ConnectionError("connection lost before the reply")

    client.xreadgroup = reply_lost  # type: ignore[method-assign]
    with pytest.raises(BusError):
        await bus.read("p1", max_count=2, block_ms=100)  # 5 and 6 handed out, never seen
    await bus.publish(trades_for(["BTC-USDT"], 4, start=7))
    await bus.flush()
    order: list[int | None] = []
    for _ in range(4):
        order += [t.sequence for d in await bus.read("p1", max_count=2, block_ms=100) for t in d.trades]
    assert order == [5, 6, 7, 8, 9, 10]


async def test_entries_acknowledged_while_a_walk_awaits_redis_are_not_delivered_again(
    make_bus: Callable[..., RedisStreamBus],
) -> None:
    """The walk of pending entries after a failed read runs beside the apply stage's acknowledgements:
    an entry acknowledged after Redis answered the walk and before the answer arrived is not handed out
    again."""
    bus = make_bus(batch_size=5)
    await bus.publish(trades_for(["BTC-USDT"], 10))
    await bus.flush()
    held = await drain(bus, "p1", 10, ack=False)
    bus._cursors.pop("p1", None)  # as after a failed read
    client = bus._redis
    real = client.xreadgroup
    answered = asyncio.Event()

    async def slow_reply(*args: Any, **kwargs: Any) -> Any:
        reply = await real(*args, **kwargs)  # Redis answers: the held entries are still pending
        await answered.wait()  # the answer is on its way while they are acknowledged
        return reply

    client.xreadgroup = slow_reply  # type: ignore[method-assign]
    reading = asyncio.create_task(bus.read("p1", max_count=50, block_ms=100))
    await asyncio.sleep(0.05)
    await bus.ack(held)
    answered.set()
    again = await reading
    client.xreadgroup = real  # type: ignore[method-assign]
    assert again == []


async def test_a_consumer_reads_a_new_symbol_at_its_next_read(
    make_bus: Callable[..., RedisStreamBus],
) -> None:
    # The periodic SCAN is an hour away: new streams are found through the publisher's registry set.
    consumer, publisher = make_bus(discovery_interval_s=3600), make_bus()
    assert await consumer.read("p1", block_ms=10) == []
    assert await consumer.read("p1", block_ms=10) == []  # the SCAN at the first read found nothing
    await publisher.publish(trades_for(["BTC-USDT"], 3))
    await publisher.flush()
    assert by_symbol(await consumer.read("p1", block_ms=10)) == {"BTC-USDT": [1, 2, 3]}
    await publisher.publish(trades_for(["ETH-USDT"], 1))
    await publisher.flush()
    assert by_symbol(await consumer.read("p1", block_ms=10)) == {"ETH-USDT": [1]}


async def test_a_stream_missing_from_the_registry_is_found_by_the_periodic_scan(
    make_bus: Callable[..., RedisStreamBus], redis_url: str, prefix: str
) -> None:
    consumer = make_bus(discovery_interval_s=0.2)
    assert await consumer.read("p1", block_ms=10) == []
    # Written by a publisher whose registration was lost (Redis flushed while it ran): no registry entry.
    client = aioredis.Redis.from_url(redis_url)
    await client.xadd(f"{prefix}:trades:binance:BTC-USDT", {b"t": encode_trades(trades_for(["BTC-USDT"], 2))})
    await client.aclose()
    assert await consumer.read("p1", block_ms=10) == []  # not yet: the next SCAN is due in 0.2 s
    await asyncio.sleep(0.25)
    assert by_symbol(await consumer.read("p1", block_ms=10)) == {"BTC-USDT": [1, 2]}


async def test_shards_split_streams_between_processors(make_bus: Callable[..., RedisStreamBus]) -> None:
    symbols = [f"C{i}-USDT" for i in range(20)]
    publisher = make_bus()
    await publisher.publish(trades_for(symbols, 3))
    await publisher.flush()
    shard0, shard1 = make_bus(shard_index=0, shard_count=2), make_bus(shard_index=1, shard_count=2)
    owned0 = set(by_symbol(await drain(shard0, "s0", sum(1 for s in symbols if _shard(shard0, s) == 0) * 3)))
    owned1 = set(by_symbol(await drain(shard1, "s1", sum(1 for s in symbols if _shard(shard1, s) == 1) * 3)))
    assert owned0 | owned1 == set(symbols)
    assert not owned0 & owned1
    assert owned0 and owned1
    assert await shard0.read("s0", block_ms=50) == []


def _shard(bus: RedisStreamBus, symbol: str) -> int:
    return shard_of(f"{bus.prefix}:trades:binance:{symbol}", 2)


async def test_survives_redis_connection_kill(
    make_bus: Callable[..., RedisStreamBus], redis_url: str, prefix: str
) -> None:
    bus = make_bus()
    await bus.publish(trades_for(["BTC-USDT", "ETH-USDT"], 50))
    first = await drain(bus, "p1", 100)
    reader = asyncio.create_task(bus.read("p1", block_ms=3000))
    await asyncio.sleep(0.2)
    admin = aioredis.from_url(redis_url)
    clients = await admin.client_list()
    ours = [c["id"] for c in clients if c.get("name") == f"{prefix}-bus"]
    assert ours
    for client_id in ours:
        await admin.client_kill_filter(_id=client_id)
    await admin.aclose()
    with contextlib.suppress(BusError, CircuitOpenError):  # or redis-py retried the blocked read itself
        await reader
    await bus.publish(trades_for(["BTC-USDT", "ETH-USDT"], 50, start=51))
    rest = await drain(bus, "p1", 100)
    assert by_symbol(first + rest) == {s: list(range(1, 101)) for s in ("BTC-USDT", "ETH-USDT")}


async def test_redis_outage_keeps_buffer_and_recovers(
    metrics: PlatformMetrics, prefix: str, redis_url: str
) -> None:
    proxy = TcpProxy("127.0.0.1", 6379, free_port())
    url = f"redis://127.0.0.1:{proxy.port}/15"
    bus = RedisStreamBus(
        url, prefix=prefix, metrics=metrics, max_pending_trades=50, discovery_interval_s=0.05
    )
    try:
        await proxy.start()
        await bus.publish(trades_for(["BTC-USDT"], 10))
        await bus.flush()
        await proxy.stop()
        await bus.publish(trades_for(["BTC-USDT"], 40, start=11))
        await asyncio.sleep(0.5)
        assert bus.buffered == 40  # kept, not dropped
        assert metrics.registry.get_sample_value("bus_queue_depth", {"bus": "redis"}) == 40  # visible
        blocked = asyncio.create_task(bus.publish(trades_for(["BTC-USDT"], 20, start=51)))
        await asyncio.sleep(0.2)
        assert not blocked.done()
        assert metrics.registry.get_sample_value("circuit_breaker_failures_total", {"component": "redis"})
        await proxy.start()
        got = await drain(bus, "p1", 70, timeout=20)
        await blocked
        assert by_symbol(got) == {"BTC-USDT": list(range(1, 71))}
        assert metrics.registry.get_sample_value("bus_queue_depth", {"bus": "redis"}) == 0
    finally:
        await bus.close()
        await proxy.stop()


def coverage(symbol: str, kind: CoverageKind, first: int, last: int) -> CoverageEvent:
    return CoverageEvent(
        "binance", symbol, symbol.replace("-", ""), kind, 1, 2, 3, first, last, last - first + 1
    )


def flat(delivery: Delivery) -> list[object]:
    events = [(e.kind.value, e.first_sequence) for e in delivery.events]
    return [*events, *(t.sequence for t in delivery.trades)]


async def test_coverage_events_keep_their_place_among_each_symbols_trades(bus: Bus) -> None:
    btc, eth = "BTC-USDT", "ETH-USDT"
    gap = coverage(btc, CoverageKind.GAP, 4, 5)
    repaired = coverage(btc, CoverageKind.REPAIRED, 4, 5)
    await bus.publish(trades_for([btc, eth], 3))  # 1..3 of each
    await bus.publish_events([gap])
    await bus.publish(trades_for([btc, eth], 1, start=6))
    await bus.publish(trades_for([btc], 2, start=4))
    await bus.publish_events([repaired])
    got: list[Delivery] = []
    async with asyncio.timeout(10):
        while sum(len(d.trades) + len(d.events) for d in got) < 12:
            batch = await bus.read("p1", max_count=50, block_ms=100)
            await bus.ack(batch)
            got.extend(batch)
    order = [item for d in got if d.stream.endswith(btc) for item in flat(d)]
    assert order == [1, 2, 3, ("gap", 4), 6, 4, 5, ("repaired", 4)]
    assert [t.sequence for d in got if d.stream.endswith(eth) for t in d.trades] == [1, 2, 3, 6]
    assert all(not (d.events and d.trades) for d in got)  # an entry is trades or events, never both


async def test_gaps_left_open_at_a_stop_are_kept_for_the_next_collector(
    make_bus: Callable[..., RedisStreamBus],
) -> None:
    """The Redis bus keeps each exchange's unresolved gaps beside the streams: a collector started after
    one that stopped (or was killed) learns which sequence ranges are still missing."""

    def event(kind: CoverageKind, first: int, last: int, raw: str = "BTCUSDT") -> CoverageEvent:
        symbol = raw.replace("USDT", "-USDT")
        return CoverageEvent("binance", symbol, raw, kind, 1, 2, 3, first, last, last - first + 1)

    first = make_bus(flush_interval=0)
    await first.publish_events([event(CoverageKind.GAP, 10, 19), event(CoverageKind.GAP, 30, 39, "ETHUSDT")])
    await first.publish_events([event(CoverageKind.REPAIRED, 10, 14)])
    await first.flush()
    await first.close()  # the collector stops with 15-19 and ETH's 30-39 still missing

    second = make_bus(flush_interval=0)
    still_open = await second.open_gaps("binance")
    assert sorted((e.raw_symbol, e.first_sequence, e.last_sequence) for e in still_open) == [
        ("BTCUSDT", 15, 19),
        ("ETHUSDT", 30, 39),
    ]
    assert await second.open_gaps("okx") == []
    await second.publish_events(
        [event(CoverageKind.REPAIRED, 15, 19), event(CoverageKind.ABANDONED, 30, 39, "ETHUSDT")]
    )
    await second.flush()
    assert await make_bus().open_gaps("binance") == []  # resolved by the successor: nothing left
