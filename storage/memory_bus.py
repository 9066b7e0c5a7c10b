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

from core.errors import BusError
from core.types import Delivery, Trade
from monitoring.metrics import METRICS, PlatformMetrics

STREAM_PREFIX = "memory:trades"


class InProcessBus:
    """At most `max_trades` trades queued or unacknowledged; publish() waits for room when full.

    Deliveries carry the trades of one (exchange, symbol) each; `stream` is "memory:trades:EX:SYM".
    """

    def __init__(self, max_trades: int = 100_000, *, metrics: PlatformMetrics = METRICS) -> None:
        if max_trades < 1:
            raise ValueError("max_trades must be at least 1")
        self.max_trades = max_trades
        self._queue: deque[Delivery] = deque()
        self._unacked: dict[str, int] = {}  # delivery_id -> trade count
        self._held = 0  # trades queued + unacknowledged
        self._ids = itertools.count(1)
        self._has_data = asyncio.Event()
        self._has_room = asyncio.Event()
        self._closed = False
        self._published = metrics.bus_published.labels("memory")
        self._waits = metrics.bus_backpressure.labels("memory")
        self._depth = metrics.bus_queue_depth.labels("memory")

    async def publish(self, trades: Sequence[Trade]) -> None:
        """Queue trades (grouped per symbol, order kept); waits while the bus holds `max_trades`."""
        waited = False
        start = 0
        while start < len(trades):
            self._check_open()
            room = self.max_trades - self._held
            if room <= 0:
                if not waited:
                    self._waits.inc()
                    waited = True
                self._has_room.clear()
                await self._has_room.wait()
                continue
            chunk = trades[start : start + room]
            self._enqueue(chunk)
            start += len(chunk)

    def _enqueue(self, trades: Sequence[Trade]) -> None:
        groups: dict[tuple[str, str], list[Trade]] = {}
        exchange = symbol = ""
        group: list[Trade] = []
        for t in trades:
            if t.symbol != symbol or t.exchange != exchange:  # runs of one symbol: one lookup per run
                exchange, symbol = t.exchange, t.symbol
                group = groups.setdefault((exchange, symbol), [])
            group.append(t)
        for (exchange, symbol), group in groups.items():
            stream = f"{STREAM_PREFIX}:{exchange}:{symbol}"
            self._queue.append(Delivery(stream=stream, delivery_id=str(next(self._ids)), trades=group))
        self._held += len(trades)
        self._published.inc(len(trades))
        self._depth.set(self._held)
        self._has_data.set()

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
            self._unacked[delivery.delivery_id] = len(delivery.trades)
            out.append(delivery)
        return out

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        freed = 0
        for d in deliveries:
            freed += self._unacked.pop(d.delivery_id, 0)
        if freed:
            self._held -= freed
            self._depth.set(self._held)
            self._has_room.set()

    @property
    def unacknowledged(self) -> int:
        """Deliveries handed out and not yet acknowledged."""
        return len(self._unacked)

    async def ping(self) -> bool:
        return not self._closed

    async def close(self) -> None:
        self._closed = True
        self._has_data.set()
        self._has_room.set()

    def _check_open(self) -> None:
        if self._closed:
            raise BusError("the in-process bus is closed")
