"""GET /api/v1/feeds: each symbol's feed state as its collector last reported it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest

from api.app import create_app
from api.settings import ApiSettings
from core.types import FeedState, FeedStatus
from monitoring.metrics import PlatformMetrics
from storage.memory_cache import MemoryCache
from storage.sqlite import SQLiteStore

S = 1_000_000_000


@pytest.fixture
async def feeds_client(
    store: SQLiteStore, cache: MemoryCache, metrics: PlatformMetrics, settings: ApiSettings
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(store, cache, metrics=metrics, settings=settings, feeds=cache)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as http:
        yield http


async def test_feeds_report_state_ages_and_repair_counts(
    feeds_client: httpx.AsyncClient, cache: MemoryCache
) -> None:
    now = time.time_ns()
    await cache.put_feeds(
        [
            FeedStatus("coinbase", "BTC-USD", "BTC-USD", FeedState.REPAIRING, now, now - 3 * S, now - 2 * S,
                       280_232, 1200, gaps=2, missing=7, repaired=40, abandoned=0),
            FeedStatus("okx", "BTC-USDT", "BTC-USDT", FeedState.QUIET, now - 30 * S, now - 40 * S,
                       now - 40 * S),
        ]
    )  # fmt: skip
    response = await feeds_client.get("/api/v1/feeds")
    assert response.status_code == 200
    coinbase, okx = response.json()["feeds"]
    assert (coinbase["exchange"], coinbase["symbol"], coinbase["state"], coinbase["reporting"]) == (
        "coinbase", "BTC-USD", "repairing", True,
    )  # fmt: skip
    assert (coinbase["gaps"], coinbase["missing"], coinbase["repaired"], coinbase["last_sequence"]) == (
        2, 7, 40, 280_232,
    )  # fmt: skip
    assert 1.5 < coinbase["last_trade_age_s"] < 10
    # not refreshed for 30 s: its collector is gone, whatever it last said
    assert (okx["state"], okx["reporting"]) == ("disconnected", False)
    only = (await feeds_client.get("/api/v1/feeds", params={"exchange": "okx"})).json()["feeds"]
    assert [f["exchange"] for f in only] == ["okx"]


async def test_feeds_refuse_a_bad_exchange_and_need_a_board(
    feeds_client: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    bad = await feeds_client.get("/api/v1/feeds", params={"exchange": "no such!"})
    assert bad.status_code == 422 and bad.json()["error"]["parameter"] == "exchange"
    missing = await client.get("/api/v1/feeds")  # an app built without a feed board
    assert missing.status_code == 503 and missing.json()["error"]["code"] == "unavailable"
