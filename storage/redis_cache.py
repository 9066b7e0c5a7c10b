"""MarketCache on Redis: the latest ClosedBar per (exchange, symbol, timeframe) under
`{prefix}:bar:{exchange}:{symbol}:{timeframe}`, and every bar published on channel `{prefix}:bars`.
Also the FeedBoard: the latest FeedStatus per symbol in the hash `{prefix}:feeds` (field
`{exchange}:{symbol}`), written by every collector, and the instruments they collect in the hash
`{prefix}:instruments` (same fields, a msgpack SymbolInfo each).

A put is one atomic script (SET ... GET, INCRBY of the stored-bytes total, PUBLISH), so
cache_size_bytes is exact even with several processors writing. Subscribers share one pub/sub
connection per cache (a listener task that reconnects by itself) and fan out in process.
Failures raise StorageError, or CircuitOpenError while the "redis" breaker is open.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from loguru import logger
from redis.asyncio.client import PubSub

from core.errors import CircuitOpenError, ParseError, StorageError
from core.types import ClosedBar, FeedStatus, SymbolInfo
from monitoring.circuit_breaker import CircuitBreaker
from monitoring.metrics import METRICS, PlatformMetrics
from storage.codec import (
    decode_bar,
    decode_feed,
    decode_instrument,
    encode_bar,
    encode_feed,
    encode_instrument,
)
from storage.dsn import redact_dsn
from storage.fanout import Fanout, Subscription
from storage.redis_link import REDIS_ERRORS, guarded, redis_breaker, redis_client

LATEST_BAR = "latest_bar"
PUT_SCRIPT = """
local old = redis.call('SET', KEYS[1], ARGV[1], 'GET')
local delta = string.len(ARGV[1])
if old then delta = delta - string.len(old) end
local total = redis.call('INCRBY', KEYS[2], delta)
redis.call('PUBLISH', ARGV[2], ARGV[1])
return total
"""


class RedisCache:
    """Latest-bar cache and bar pub/sub on Redis at `url` (keys under `prefix`)."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "cryptostock",
        metrics: PlatformMetrics = METRICS,
        breaker: CircuitBreaker | None = None,
        max_subscriber_queue: int = 1000,
    ) -> None:
        self.prefix = prefix
        self.channel = f"{prefix}:bars"
        self._size_key = f"{prefix}:bar_bytes"
        self._feeds_key = f"{prefix}:feeds"
        self._instruments_key = f"{prefix}:instruments"
        self._redis = redis_client(url, f"{prefix}-cache")
        self._put = self._redis.register_script(PUT_SCRIPT)
        self._breaker = breaker or redis_breaker(StorageError, metrics)
        self._fanout = Fanout(max_subscriber_queue)
        self._listener: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self._hits = metrics.cache_hits.labels(LATEST_BAR)
        self._misses = metrics.cache_misses.labels(LATEST_BAR)
        self._size_gauge = metrics.cache_size_bytes
        self._log = logger.bind(component="cache", backend="redis", url=redact_dsn(url))

    @property
    def breaker(self) -> CircuitBreaker:
        return self._breaker

    def key(self, exchange: str, symbol: str, timeframe: str) -> str:
        return f"{self.prefix}:bar:{exchange}:{symbol}:{timeframe}"

    async def put_bar(self, closed: ClosedBar) -> None:
        """Store as the latest for its key and publish it, atomically."""
        b = closed.bar
        data = encode_bar(closed)
        keys = [self.key(b.exchange, b.symbol, b.timeframe), self._size_key]
        total = await guarded(
            self._breaker, StorageError, "put_bar", lambda: self._put(keys=keys, args=[data, self.channel])
        )
        self._size_gauge.set(int(total))

    async def latest_bar(self, exchange: str, symbol: str, timeframe: str) -> ClosedBar | None:
        key = self.key(exchange, symbol, timeframe)
        data = await guarded(self._breaker, StorageError, "latest_bar", lambda: self._redis.get(key))
        if data is None:
            self._misses.inc()
            return None
        try:
            closed = decode_bar(data if isinstance(data, bytes) else data.encode())
        except ParseError as exc:
            self._log.error("undecodable cached bar under {}: {}", key, exc)
            self._misses.inc()
            return None
        self._hits.inc()
        return closed

    async def put_feeds(self, statuses: Sequence[FeedStatus]) -> None:
        if not statuses:
            return
        mapping: dict[Any, Any] = {  # redis-py's annotation asks for a Mapping of its own key union
            f"{s.exchange}:{s.symbol}": encode_feed(s) for s in statuses
        }
        await guarded(
            self._breaker,
            StorageError,
            "put_feeds",
            lambda: self._redis.hset(self._feeds_key, mapping=mapping),
        )

    async def feeds(self) -> list[FeedStatus]:
        raw = await guarded(
            self._breaker, StorageError, "feeds", lambda: self._redis.hgetall(self._feeds_key)
        )
        out: list[FeedStatus] = []
        for field in sorted(raw):
            try:
                value = raw[field]
                out.append(decode_feed(value if isinstance(value, bytes) else value.encode()))
            except ParseError as exc:
                self._log.error("undecodable feed status {!r}: {}", field, exc)
        return out

    async def put_instruments(self, instruments: Sequence[SymbolInfo]) -> None:
        if not instruments:
            return
        mapping: dict[Any, Any] = {f"{i.exchange}:{i.symbol}": encode_instrument(i) for i in instruments}
        await guarded(
            self._breaker,
            StorageError,
            "put_instruments",
            lambda: self._redis.hset(self._instruments_key, mapping=mapping),
        )

    async def instruments(self) -> list[SymbolInfo]:
        raw = await guarded(
            self._breaker, StorageError, "instruments", lambda: self._redis.hgetall(self._instruments_key)
        )
        out: list[SymbolInfo] = []
        for field in sorted(raw):
            try:
                value = raw[field]
                out.append(decode_instrument(value if isinstance(value, bytes) else value.encode()))
            except ParseError as exc:
                self._log.error("undecodable instrument {!r}: {}", field, exc)
        return out

    def subscribe(self) -> Subscription:
        """Bars published (by any process) from now on, once the listener is subscribed (see ready())."""
        sub = self._fanout.subscribe()
        if self._listener is None or self._listener.done():
            self._listener = asyncio.get_running_loop().create_task(
                self._listen(), name="redis-cache-listener"
            )
        return sub

    async def ready(self, timeout: float = 5.0) -> bool:
        """Wait until the pub/sub listener is subscribed; False if it is not within `timeout` seconds."""
        try:
            await asyncio.wait_for(self._listening.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def _listen(self) -> None:
        """Supervised loop: (re)subscribe with backoff, decode, fan out."""
        backoff = 0.1
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self._listening.set()
                backoff = 0.1
                await self._pump(pubsub)
            except REDIS_ERRORS as exc:
                self._log.warning("bar subscription lost ({}); resubscribing in {:.1f}s", exc, backoff)
            except Exception:  # noqa: BLE001
                # The top of the only bar listener: a bug in decoding or fan-out must not end live bars for
                # every subscriber. Logged with its traceback, then resubscribed; CancelledError (a
                # BaseException) still stops the loop.
                self._log.exception("bar listener failed; restarting in {:.1f}s", backoff)
            finally:
                self._listening.clear()
                await asyncio.shield(_close_quietly(pubsub))
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    async def _pump(self, pubsub: PubSub) -> None:
        async for message in pubsub.listen():
            if message.get("type") != "message":
                continue
            try:
                self._fanout.publish(decode_bar(message["data"]))
            except ParseError as exc:
                self._log.error("undecodable bar on {}: {}", self.channel, exc)

    async def ping(self) -> bool:
        try:
            return bool(await guarded(self._breaker, StorageError, "ping", self._redis.ping))
        except (StorageError, CircuitOpenError):
            return False

    async def close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
        self._fanout.close()
        await self._redis.aclose()


async def _close_quietly(pubsub: PubSub) -> None:
    with contextlib.suppress(*REDIS_ERRORS):
        # redis-py leaves PubSub.aclose unannotated (only its deprecated aliases close/reset are typed);
        # warn_unused_ignores flags this line once it is annotated.
        await pubsub.aclose()  # type: ignore[no-untyped-call]
