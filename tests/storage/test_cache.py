"""MarketCache contract over Redis and memory: latest value, pub/sub, hit/miss and size metrics."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import msgspec
import pytest
import redis.asyncio as aioredis

from collectors.symbols import ListedPair
from core.types import FeedState, FeedStatus, SymbolInfo
from monitoring.metrics import PlatformMetrics
from storage.codec import encode_bar
from storage.memory_cache import MemoryCache
from storage.redis_cache import RedisCache
from tests.storage.conftest import make_bar

Cache = RedisCache | MemoryCache


@pytest.fixture(params=["redis", "memory"])
async def cache(
    request: pytest.FixtureRequest, redis_url: str, metrics: PlatformMetrics
) -> AsyncIterator[Cache]:
    c: Cache
    if request.param == "redis":
        c = RedisCache(redis_url, prefix=f"cs{uuid.uuid4().hex[:8]}", metrics=metrics)
    else:
        c = MemoryCache(metrics=metrics)
    yield c
    await c.close()


async def test_latest_bar_replaces_and_counts(cache: Cache, metrics: PlatformMetrics) -> None:
    r = metrics.registry
    assert await cache.latest_bar("binance", "BTC-USDT", "1m") is None
    await cache.put_bar(make_bar(0, sma=1.0))
    newer = make_bar(1, close="0.00150000", sma=None)
    await cache.put_bar(newer)
    assert await cache.latest_bar("binance", "BTC-USDT", "1m") == newer
    assert await cache.latest_bar("binance", "BTC-USDT", "5m") is None
    assert r.get_sample_value("cache_hits_total", {"cache": "latest_bar"}) == 1
    assert r.get_sample_value("cache_misses_total", {"cache": "latest_bar"}) == 2
    other = make_bar(0, timeframe="5m")
    await cache.put_bar(other)
    assert r.get_sample_value("cache_size_bytes") == len(encode_bar(newer)) + len(encode_bar(other))
    assert await cache.ping()


async def test_subscribers_get_every_bar_published_after_subscribing(cache: Cache) -> None:
    await cache.put_bar(make_bar(0))  # before anyone subscribed: not delivered
    first, second = cache.subscribe(), cache.subscribe()
    if isinstance(cache, RedisCache):
        assert await cache.ready()
    bars = [make_bar(m) for m in range(1, 4)]
    for b in bars:
        await cache.put_bar(b)
    for sub in (first, second):
        got = [await asyncio.wait_for(anext(sub), 5) for _ in bars]
        assert got == bars
    await first.aclose()
    await cache.put_bar(make_bar(9))
    assert await asyncio.wait_for(anext(second), 5) == make_bar(9)
    await cache.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(second), 5)


async def test_redis_cache_subscription_survives_connection_kill(
    redis_url: str, metrics: PlatformMetrics
) -> None:
    prefix = f"cs{uuid.uuid4().hex[:8]}"
    cache = RedisCache(redis_url, prefix=prefix, metrics=metrics)
    sub = cache.subscribe()
    assert await cache.ready()
    admin = aioredis.from_url(redis_url)
    for client in await admin.client_list():
        if client.get("name") == f"{prefix}-cache":
            await admin.client_kill_filter(_id=client["id"])
    await admin.aclose()
    await asyncio.sleep(0.3)
    assert await cache.ready()
    await cache.put_bar(make_bar(5))
    assert await asyncio.wait_for(anext(sub), 5) == make_bar(5)
    await cache.close()


async def test_feed_board_keeps_the_latest_status_per_symbol(cache: Cache) -> None:
    assert await cache.feeds() == []
    first = FeedStatus("coinbase", "BTC-USD", "BTC-USD", FeedState.STREAMING, updated_ns=1, trades_received=5)
    other = FeedStatus("okx", "BTC-USDT", "BTC-USDT", FeedState.QUIET, updated_ns=1, last_sequence=7849)
    await cache.put_feeds([first, other])
    newer = msgspec.structs.replace(first, state=FeedState.REPAIRING, updated_ns=2, missing=3, gaps=1)
    await cache.put_feeds([newer])
    assert await cache.feeds() == [newer, other]  # by exchange, then symbol; the newest per symbol


async def test_feed_board_keeps_the_instruments_collectors_describe(cache: Cache) -> None:
    assert await cache.instruments() == []
    perp = SymbolInfo("binance_futures", "BTC-USDT-PERP", "BTCUSDT", "BTC", "USDT")
    listed = ListedPair("kraken", "BTC-USD", "BTC/USD", "BTC", "USD", aliases=("XBTUSD",))
    await cache.put_instruments([perp, listed])
    await cache.put_instruments([perp])  # a restarted collector describes them again
    described = await cache.instruments()
    assert described == [perp, SymbolInfo("kraken", "BTC-USD", "BTC/USD", "BTC", "USD")]
    assert all(type(info) is SymbolInfo for info in described)  # a venue's extras stay in its adapter
