"""Fan-out of published bars to in-process subscribers (each API websocket client is one).

A subscriber registers when subscribe() is called, not at its first iteration, so nothing published
after subscribe() returns is missed. Each subscriber has a bounded queue; a subscriber that falls
`max_queue` bars behind loses its oldest bars (logged) rather than growing memory or slowing others.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from loguru import logger

from core.types import ClosedBar


class Subscription(AsyncIterator[ClosedBar]):
    """Async iterator over bars published after its creation; `aclose()` (or the fan-out closing) ends it."""

    def __init__(self, fanout: Fanout, max_queue: int) -> None:
        self._fanout = fanout
        self._queue: asyncio.Queue[ClosedBar | None] = asyncio.Queue(maxsize=max_queue)
        self._closed = False
        self.dropped = 0

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> ClosedBar:
        if self._closed and self._queue.empty():
            raise StopAsyncIteration
        item = await self._queue.get()
        if item is None:
            self._closed = True
            raise StopAsyncIteration
        return item

    def offer(self, item: ClosedBar | None) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
            if self.dropped in (1, 100) or self.dropped % 10_000 == 0:
                logger.bind(component="cache").warning("slow bar subscriber: {} bars dropped", self.dropped)
        self._queue.put_nowait(item)

    async def aclose(self) -> None:
        self._fanout.remove(self)
        self._closed = True


class Fanout:
    """The set of live subscriptions of one cache."""

    def __init__(self, max_queue: int = 1000) -> None:
        self._subs: set[Subscription] = set()
        self._max_queue = max_queue

    def subscribe(self) -> Subscription:
        sub = Subscription(self, self._max_queue)
        self._subs.add(sub)
        return sub

    def remove(self, sub: Subscription) -> None:
        self._subs.discard(sub)

    def publish(self, closed: ClosedBar) -> None:
        for sub in self._subs:
            sub.offer(closed)

    def __len__(self) -> int:
        return len(self._subs)

    def close(self) -> None:
        """End every subscription (iteration stops after the bars already queued)."""
        for sub in self._subs:
            sub.offer(None)
        self._subs.clear()
