"""The outbox alone: retries only a publisher's named errors, and never loses what it held, whether it
was refused at stop, cancelled at the stop deadline, or stopped by a bug."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from collectors.outbox import Outbox
from collectors.session_metrics import SessionMetrics
from core.types import CoverageEvent, Side, Trade
from monitoring.metrics import PlatformMetrics
from tests.collectors.session_harness import RecordingSink, Sample


def trades(*sequences: int) -> list[Trade]:
    return [Trade("binance", "BTC-USDT", "BTCUSDT", str(s), s, "1", "1", Side.BUY, s, s) for s in sequences]


def outbox_for(publisher: RecordingSink, metrics: PlatformMetrics) -> Outbox:
    session_metrics = SessionMetrics(metrics, "binance", {"BTCUSDT": "BTC-USDT"}, 1)
    return Outbox(publisher, session_metrics, retry_max=0.01)


async def test_a_bus_error_is_retried_until_the_publisher_takes_the_trades(metrics: PlatformMetrics) -> None:
    sink = RecordingSink(fail=2)
    outbox = outbox_for(sink, metrics)
    outbox.put(trades(1, 2))
    outbox.stop()
    await asyncio.wait_for(outbox.run(), 1)
    assert sink.ids("BTCUSDT") == [1, 2] and outbox.unpublished == []
    assert Sample(metrics, "binance")("collector_errors_total", error_type="publish_failed") == 2


async def test_a_bug_in_the_publisher_is_raised_and_what_was_held_is_kept(metrics: PlatformMetrics) -> None:
    class Buggy(RecordingSink):
        async def publish(self, trades: Sequence[Trade]) -> None:
            raise TypeError("a bug, not an outage")

    outbox = outbox_for(Buggy(), metrics)
    outbox.put(trades(1))
    outbox.put_events([])
    with pytest.raises(TypeError):
        await asyncio.wait_for(outbox.run(), 1)
    outbox.put(trades(2))  # after it ended: kept too
    assert [t.sequence for item in outbox.unpublished for t in item.trades] == [1, 2]


async def test_cancelled_while_delivering_it_keeps_the_item_in_flight(metrics: PlatformMetrics) -> None:
    class Stuck(RecordingSink):
        async def publish(self, trades: Sequence[Trade]) -> None:
            await asyncio.Event().wait()

        async def publish_events(self, events: Sequence[CoverageEvent]) -> None:
            await asyncio.Event().wait()

    outbox = outbox_for(Stuck(), metrics)
    running = asyncio.create_task(outbox.run())
    outbox.put(trades(1, 2))
    await asyncio.sleep(0.01)
    outbox.put(trades(3))
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert [t.sequence for item in outbox.unpublished for t in item.trades] == [1, 2, 3]
