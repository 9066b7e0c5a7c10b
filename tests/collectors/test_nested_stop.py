"""Nested supervisors (run_collector: the spool republisher, then the collector whose session is itself
a supervise): when the outer deadline cancels the collector while its inner supervise waits for the
outbox, the outbox ends (and keeps its batch for the spool) before the cancellation goes on."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from core.errors import BusError
from core.supervisor import Part, supervise
from core.types import Trade
from monitoring.metrics import PlatformMetrics
from tests.collectors.session_harness import RecordingSink
from tests.collectors.test_outbox import outbox_for, trades


async def test_an_outer_deadline_leaves_the_outbox_batch_in_unpublished(metrics: PlatformMetrics) -> None:
    class DownBus(RecordingSink):  # refuses slowly (a bus waiting for room): each attempt ~0.4 s
        async def publish(self, trades: Sequence[Trade]) -> None:
            await asyncio.sleep(0.4)
            raise BusError("no room")

    outbox = outbox_for(DownBus(), metrics)
    outbox.put(trades(1, 2, 3))
    inner_stop = asyncio.Event()

    async def collector() -> None:  # CollectorSession.run, reduced to its last part
        await supervise([Part("outbox", outbox.run, outbox.stop)], until=inner_stop, deadline=6.0)

    spool_done = asyncio.Event()

    async def spool() -> None:  # the republisher, busy for part of the shared deadline
        await spool_done.wait()
        await asyncio.sleep(0.5)

    outer_stop = asyncio.Event()
    outer_stop.set()
    await supervise(
        [Part("spool", spool, spool_done.set), Part("collector", collector, inner_stop.set)],
        until=outer_stop,
        deadline=1.0,
    )
    kept = [t.sequence for item in outbox.unpublished for t in item.trades]  # what bus.close() spools
    assert kept == [1, 2, 3], f"spooled {kept}; outbox task still running: {not outbox.idle}"
