"""One trade batch traced from the collector's read through the bus (Redis and in-process) to the stored
bar, with the SDK's in-memory exporter; and nothing written on the bus while tracing is off."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON

from collectors.outbox import Outbox
from collectors.session_metrics import SessionMetrics
from core.ports import TradeBus
from core.timeframes import NS_PER_SECOND
from core.types import Delivery, Trade
from monitoring import tracing
from monitoring.metrics import PlatformMetrics
from processor.service import ProcessorService
from storage.memory_bus import InProcessBus
from storage.memory_cache import MemoryCache
from storage.redis_bus import RedisStreamBus
from storage.sqlite import SQLiteStore
from tests.storage.conftest import T0, make_trade


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.configure_tracing("pipeline-test", exporter=exporter, sampler=ALWAYS_ON)
    yield exporter
    tracing.shutdown_tracing()


@pytest.fixture(params=["redis", "memory"])
async def bus(
    request: pytest.FixtureRequest, redis_url: str, metrics: PlatformMetrics
) -> AsyncIterator[TradeBus]:
    made: TradeBus
    if request.param == "memory":
        made = InProcessBus(metrics=metrics)
    else:
        made = RedisStreamBus(
            redis_url, prefix=f"tr{uuid.uuid4().hex[:8]}", metrics=metrics, discovery_interval_s=0.05
        )
    yield made
    await made.close()


def minute_trades() -> list[Trade]:
    """Trades of one minute, then one of the next: the first minute's 1m bar closes by event time."""
    minute = 60 * NS_PER_SECOND
    start = T0 - T0 % minute
    return [make_trade(i, ts=start + i * NS_PER_SECOND) for i in range(1, 6)] + [
        make_trade(6, ts=start + minute)
    ]


async def hand_over(bus: TradeBus, trades: list[Trade], metrics: PlatformMetrics) -> list[Delivery]:
    """As the session does: the read's batch goes to the outbox (inside the read's span when tracing
    is on), the outbox publishes it; then read everything back."""
    outbox = Outbox(bus, SessionMetrics(metrics, "binance", {"BTCUSDT": "BTC-USDT"}, 1))
    with tracing.trace_operation("collector.batch", {"trades": len(trades)}):
        assert outbox.put(trades) == []
    delivering = asyncio.create_task(outbox.run())
    outbox.stop()
    await delivering
    await bus.flush()
    deliveries: list[Delivery] = []
    for _ in range(50):
        deliveries += await bus.read("proc-a", max_count=100, block_ms=50)
        if sum(len(d.trades) for d in deliveries) == len(trades):
            return deliveries
    raise AssertionError(f"read back {deliveries}")


async def process(
    deliveries: list[Delivery], bus: TradeBus, tmp_path: Path, metrics: PlatformMetrics
) -> None:
    store = SQLiteStore(tmp_path / "db.sqlite", metrics=metrics)
    await store.migrate()
    try:
        service = ProcessorService(
            bus, store, MemoryCache(metrics=metrics), timeframes=("1m",), grace_ns=0, metrics=metrics
        )
        await service.process(deliveries)
        assert len(await store.bars("binance", "BTC-USDT", "1m", limit=10)) == 1
    finally:
        await store.close()


async def test_a_batch_is_one_trace_from_receipt_to_stored_bar(
    bus: TradeBus, spans: InMemorySpanExporter, tmp_path: Path, metrics: PlatformMetrics
) -> None:
    deliveries = await hand_over(bus, minute_trades(), metrics)
    assert deliveries and all(d.trace.startswith("00-") for d in deliveries)
    await process(deliveries, bus, tmp_path, metrics)
    found: dict[str, ReadableSpan] = {s.name: s for s in spans.get_finished_spans()}
    assert {
        "collector.batch",
        "collector.publish",
        "processor.store_trades",
        "processor.apply",
        "processor.store_bars",
    } <= set(found)
    trace_ids = {s.context.trace_id for s in found.values()}
    assert len(trace_ids) == 1, "every span of the batch in one trace"

    def parent(name: str) -> str:
        span = found[name]
        assert span.parent is not None, name
        return next(n for n, s in found.items() if s.context.span_id == span.parent.span_id)

    assert parent("collector.publish") == "collector.batch"
    assert parent("processor.store_trades") == "collector.publish"
    assert parent("processor.apply") == "collector.publish"
    assert parent("processor.store_bars") == "processor.apply"
    closed = [e for e in found["processor.store_bars"].events if e.name == "bar_closed"]
    assert [(e.attributes or {}).get("timeframe") for e in closed] == ["1m"]
    assert all((e.attributes or {}).get("symbol") == "BTC-USDT" for e in closed)
    assert found["processor.store_trades"].attributes == {
        "trades": 6,
        "deliveries": len(deliveries),
        "new_trades": 6,
    }


async def test_nothing_is_carried_while_tracing_is_off(redis_url: str, metrics: PlatformMetrics) -> None:
    assert not tracing.ENABLED
    prefix = f"tr{uuid.uuid4().hex[:8]}"
    bus = RedisStreamBus(redis_url, prefix=prefix, metrics=metrics, discovery_interval_s=0.05)
    try:
        deliveries = await hand_over(bus, minute_trades(), metrics)
        assert [d.trace for d in deliveries] == [""] * len(deliveries)
        client = aioredis.from_url(redis_url)
        try:
            keys = [k async for k in client.scan_iter(f"{prefix}:trades:*") if b"dead" not in k]
            assert keys
            entries = [entry for key in keys for entry in await client.xrange(key)]
            assert len(entries) == len(deliveries)
            assert all(set(fields) == {b"t"} for _, fields in entries)
        finally:
            await client.aclose()
        await bus.ack(deliveries)
    finally:
        await bus.close()


async def test_unsampled_batches_carry_nothing(redis_url: str, metrics: PlatformMetrics) -> None:
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    tracing.configure_tracing("pipeline-test", exporter=InMemorySpanExporter(), sampler=ALWAYS_OFF)
    bus = InProcessBus(metrics=metrics)
    try:
        deliveries = await hand_over(bus, minute_trades(), metrics)
        assert [d.trace for d in deliveries] == [""]
        await bus.ack(deliveries)
    finally:
        tracing.shutdown_tracing()
        await bus.close()
