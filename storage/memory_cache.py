"""MarketCache and FeedBoard inside one process (REDIS_URL absent): latest bar per key, fan-out to
subscribers, latest feed status per symbol, the instruments collectors described."""

from __future__ import annotations

from collections.abc import Sequence

from core.types import ClosedBar, FeedStatus, SymbolInfo
from monitoring.metrics import METRICS, PlatformMetrics
from storage.codec import encode_bar
from storage.fanout import Fanout, Subscription

LATEST_BAR = "latest_bar"


class MemoryCache:
    """Latest ClosedBar per (exchange, symbol, timeframe) and pub/sub of every bar put.

    cache_size_bytes counts the msgpack size of the values held, as the Redis cache does.
    """

    def __init__(self, *, metrics: PlatformMetrics = METRICS, max_subscriber_queue: int = 1000) -> None:
        self._bars: dict[tuple[str, str, str], tuple[ClosedBar, int]] = {}
        self._feeds: dict[tuple[str, str], FeedStatus] = {}
        self._instruments: dict[tuple[str, str], SymbolInfo] = {}
        self._size = 0
        self._fanout = Fanout(max_subscriber_queue)
        self._hits = metrics.cache_hits.labels(LATEST_BAR)
        self._misses = metrics.cache_misses.labels(LATEST_BAR)
        self._size_gauge = metrics.cache_size_bytes

    async def put_bar(self, closed: ClosedBar) -> None:
        b = closed.bar
        key = (b.exchange, b.symbol, b.timeframe)
        size = len(encode_bar(closed))
        old = self._bars.get(key)
        self._size += size - (old[1] if old else 0)
        self._bars[key] = (closed, size)
        self._size_gauge.set(self._size)
        self._fanout.publish(closed)

    async def latest_bar(self, exchange: str, symbol: str, timeframe: str) -> ClosedBar | None:
        entry = self._bars.get((exchange, symbol, timeframe))
        if entry is None:
            self._misses.inc()
            return None
        self._hits.inc()
        return entry[0]

    async def put_feeds(self, statuses: Sequence[FeedStatus]) -> None:
        for status in statuses:
            self._feeds[(status.exchange, status.symbol)] = status

    async def feeds(self) -> list[FeedStatus]:
        return [self._feeds[key] for key in sorted(self._feeds)]

    async def put_instruments(self, instruments: Sequence[SymbolInfo]) -> None:
        for info in instruments:  # as the Redis board keeps them: the common fields only
            plain = SymbolInfo(info.exchange, info.symbol, info.raw_symbol, info.base, info.quote)
            self._instruments[(info.exchange, info.symbol)] = plain

    async def instruments(self) -> list[SymbolInfo]:
        return [self._instruments[key] for key in sorted(self._instruments)]

    def subscribe(self) -> Subscription:
        return self._fanout.subscribe()

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._fanout.close()
