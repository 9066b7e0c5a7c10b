"""TradeBus inside one process (REDIS_URL absent): a bounded queue of per-symbol deliveries.

The bound counts trades queued plus trades delivered but not yet acknowledged, so a consumer that stops
acknowledging stops its publishers too (backpressure, never loss). There is nothing to resume after a
crash: the process's memory is the bus.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Sequence

from loguru import logger

from core.errors import BusError
from core.types import BusItem, CoverageEvent, DeadLetter, DeadLetterRecord, Delivery, ResumePoint, Trade
from monitoring import tracing
from monitoring.metrics import METRICS, PlatformMetrics
from storage.backpressure import RoomGate, group_by_symbol
from storage.dead_letters import DeadLetterFile, as_record, report
from storage.spool import Spool, save_leftover

STREAM_PREFIX = "memory:trades"
_log = logger.bind(component="bus", bus="memory")


class InProcessBus:
    """At most `max_trades` trades queued or unacknowledged; publish() waits for room when full.

    Deliveries carry the trades of one (exchange, symbol) each; `stream` is "memory:trades:EX:SYM".
    """

    def __init__(
        self,
        max_trades: int = 100_000,
        *,
        metrics: PlatformMetrics = METRICS,
        spool: Spool | None = None,
        dead_letter_file: DeadLetterFile | None = None,
    ) -> None:
        if max_trades < 1:
            raise ValueError("max_trades must be at least 1")
        self.max_trades = max_trades
        self._spool = spool
        self._dead_file = dead_letter_file
        self._dead_kept: deque[DeadLetterRecord] = deque(maxlen=1000)  # when there is no file
        self._dead_counter = metrics.bus_dead_letters
        self._queue: deque[Delivery] = deque()
        self._unacked: dict[str, Delivery] = {}
        self._held = 0  # trades queued + unacknowledged
        self._ids = itertools.count(1)
        self._has_data = asyncio.Event()
        self._closed = False
        self._published = metrics.bus_published.labels("memory")
        self._gate = RoomGate(metrics.bus_backpressure.labels("memory"))
        self._depth = metrics.bus_queue_depth.labels("memory")

    async def publish(self, trades: Sequence[Trade]) -> None:
        """Queue trades (grouped per symbol, order kept); waits while the bus holds `max_trades`."""
        await self._gate.admit(
            trades, room=lambda: self.max_trades - self._held, take=self._enqueue, check_open=self._check_open
        )

    async def publish_events(self, events: Sequence[CoverageEvent]) -> None:
        """Queue each event as its own delivery, after what was published before it (never waits)."""
        self._check_open()
        for event in events:
            stream = f"{STREAM_PREFIX}:{event.exchange}:{event.symbol}"
            delivery = Delivery(stream=stream, delivery_id=str(next(self._ids)), trades=[], events=[event])
            self._queue.append(delivery)
        if events:
            self._has_data.set()

    def _enqueue(self, trades: Sequence[Trade]) -> None:
        trace = tracing.current_traceparent() if tracing.ENABLED else ""
        for (exchange, symbol), group in group_by_symbol(trades).items():
            stream = f"{STREAM_PREFIX}:{exchange}:{symbol}"
            self._queue.append(
                Delivery(stream=stream, delivery_id=str(next(self._ids)), trades=group, trace=trace)
            )
        self._held += len(trades)
        self._published.inc(len(trades))
        self._depth.set(self._held)
        self._has_data.set()

    async def flush(self) -> None:
        """Nothing to do: a published trade is queued at once."""

    async def read(self, consumer: str, *, max_count: int = 100, block_ms: int = 1000) -> list[Delivery]:
        """Up to `max_count` deliveries, waiting up to `block_ms` for the first one."""
        self._check_open()
        if not self._queue and block_ms > 0:
            self._has_data.clear()
            try:
                await asyncio.wait_for(self._has_data.wait(), timeout=block_ms / 1000)
            except TimeoutError:
                return []
        out: list[Delivery] = []
        while self._queue and len(out) < max_count:
            delivery = self._queue.popleft()
            self._unacked[delivery.delivery_id] = delivery
            out.append(delivery)
        return out

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        freed = 0
        for d in deliveries:
            acknowledged = self._unacked.pop(d.delivery_id, None)
            freed += len(acknowledged.trades) if acknowledged is not None else 0
        if freed:
            self._held -= freed
            self._depth.set(self._held)
            self._gate.freed()

    @property
    def unacknowledged(self) -> int:
        """Deliveries handed out and not yet acknowledged."""
        return len(self._unacked)

    async def dead_letter(self, letters: Sequence[DeadLetter]) -> None:
        report(letters, self._dead_counter, "memory")
        if self._dead_file is not None:
            self._dead_file.append(letters)
        else:
            self._dead_kept.extend(as_record(letter) for letter in letters)

    async def dead_letters(self, limit: int = 100) -> list[DeadLetterRecord]:
        if self._dead_file is not None:
            return self._dead_file.read(limit)
        return list(self._dead_kept)[-limit:] if limit > 0 else []

    async def open_gaps(self, exchange: str) -> list[CoverageEvent]:
        """None: an in-process bus dies with its collector (the embedded store answers instead)."""
        return []

    async def resume_points(self, exchange: str) -> list[ResumePoint]:
        """None: nothing of this bus outlives its process (the store says where a restart resumes)."""
        return []

    def owns(self, exchange: str, symbol: str) -> bool:
        return True  # one process, one consumer: every symbol

    async def ping(self) -> bool:
        return not self._closed

    async def close(self, leftover: Sequence[BusItem] = ()) -> None:
        """Close; what was not acknowledged (read or not) and `leftover` go to the spool, since nothing of
        this bus survives the process (BusError when they cannot be kept)."""
        self._closed = True
        self._has_data.set()
        self._gate.freed()
        pending = [*self._unacked.values(), *self._queue]
        self._unacked.clear()
        self._queue.clear()
        items = [BusItem(trades=d.trades, events=d.events) for d in pending]
        save_leftover(self._spool, [*items, *leftover], _log)

    def _check_open(self) -> None:
        if self._closed:
            raise BusError("the in-process bus is closed")
