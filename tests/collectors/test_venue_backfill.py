"""RestBackfiller runs the Coinbase and OKX repair conversations against a real HTTP server on loopback:
trade histories that answer ids below an `after` cursor, newest first, in pages of the venue's size,
and each venue's own rate-limit answer. (Binance, which pages oldest first: test_backfill.py.)"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from collectors.adapter import Gap
from collectors.backfill import RestBackfiller, discover
from collectors.registry import create_adapter
from core.errors import RateLimitedError
from monitoring.metrics import PlatformMetrics
from tests.collectors.http_server import serve

LAST_ID = 5000  # the newest trade id the fake venue has; ids start at 1
T0_MS = 1_709_647_000_000


def _coinbase_rows(raw: str, ids: list[int]) -> Any:
    return [
        {"time": f"2024-03-05T13:{i // 1000 % 60:02d}:{i % 60:02d}.{i:06d}Z", "trade_id": i,
         "price": f"67000.{i % 100:02d}", "size": "0.01000000", "side": "buy" if i % 2 else "sell"}
        for i in ids
    ]  # fmt: skip


def _okx_rows(raw: str, ids: list[int]) -> Any:
    rows = [
        {"instId": raw, "side": "sell" if i % 2 else "buy", "sz": "0.01", "source": "0",
         "px": f"67000.{i % 10}", "tradeId": str(i), "ts": str(T0_MS + i)}
        for i in ids
    ]  # fmt: skip
    return {"code": "0", "msg": "", "data": rows}


@dataclass(frozen=True)
class Venue:
    """How the fake server plays one venue."""

    name: str
    raw_symbol: str
    trades_route: str
    symbols_route: str
    symbols_body: Any
    rows: Callable[[str, list[int]], Any]
    rate_limited: Callable[[], web.Response]
    retry_after_s: float  # what the adapter must make of `rate_limited`
    page: int  # the venue's largest page


VENUES = {
    "coinbase": Venue(
        "coinbase",
        "BTC-USD",
        "/products/{product}/trades",
        "/products",
        [{"id": "BTC-USD", "base_currency": "BTC", "quote_currency": "USD", "status": "online"}],
        _coinbase_rows,
        lambda: web.json_response(
            {"message": "Public rate limit exceeded"}, status=429, headers={"Retry-After": "3"}
        ),
        3.0,
        1000,
    ),
    "okx": Venue(
        "okx",
        "BTC-USDT",
        "/api/v5/market/history-trades",
        "/api/v5/public/instruments",
        {
            "code": "0",
            "msg": "",
            "data": [{"instId": "BTC-USDT", "baseCcy": "BTC", "quoteCcy": "USDT", "state": "live"}],
        },
        _okx_rows,
        lambda: web.json_response({"code": "50011", "msg": "Too Many Requests", "data": []}, status=429),
        2.0,  # no Retry-After: the adapter's default (OKX limits count per 2 s)
        100,
    ),
}


@dataclass
class FakeVenue:
    venue: Venue
    url: str = ""
    requests: list[dict[str, str]] = field(default_factory=list)
    rate_limit_next: int = 0


@pytest.fixture(params=sorted(VENUES))
async def server(request: pytest.FixtureRequest) -> AsyncIterator[FakeVenue]:
    state = FakeVenue(VENUES[request.param])
    venue = state.venue

    async def trades(req: web.Request) -> web.Response:
        state.requests.append({"path": req.path, **req.query})
        if state.rate_limit_next:
            state.rate_limit_next -= 1
            return venue.rate_limited()
        newest = min(int(req.query["after"]) - 1, LAST_ID)
        limit = min(int(req.query["limit"]), venue.page)
        raw = req.match_info.get("product") or req.query["instId"]
        return web.json_response(venue.rows(raw, list(range(newest, max(newest - limit, 0), -1))))

    async def symbols(req: web.Request) -> web.Response:
        return web.json_response(venue.symbols_body)

    app = web.Application()
    app.router.add_get(venue.trades_route, trades)
    app.router.add_get(venue.symbols_route, symbols)
    async with serve(app) as state.url:
        yield state


async def test_fetch_gap_pages_back_and_returns_the_gap_in_ascending_order(
    server: FakeVenue, metrics: PlatformMetrics
) -> None:
    venue = server.venue
    first, last = LAST_ID - 2 * venue.page - venue.page // 2, LAST_ID - 3  # two and a half pages
    async with await discover(venue.name, server.url, metrics=metrics) as backfiller:
        trades = await backfiller.fetch_gap(Gap(venue.raw_symbol, first, last))
    assert [t.sequence for t in trades] == list(range(first, last + 1))
    assert [t.trade_id for t in trades] == [str(i) for i in range(first, last + 1)]
    assert all(t.backfilled and t.raw_symbol == venue.raw_symbol and t.exchange == venue.name for t in trades)
    assert [r["after"] for r in server.requests] == [str(last + 1 - n * venue.page) for n in range(3)]
    assert {r["limit"] for r in server.requests} == {str(venue.page)}


async def test_fetch_gap_returns_what_the_venue_has(server: FakeVenue, metrics: PlatformMetrics) -> None:
    venue = server.venue
    async with await discover(venue.name, server.url, metrics=metrics) as backfiller:
        newest = await backfiller.fetch_gap(Gap(venue.raw_symbol, LAST_ID - 2, LAST_ID + 10))
        oldest = await backfiller.fetch_gap(Gap(venue.raw_symbol, 1, 3))
    assert [t.sequence for t in newest] == [LAST_ID - 2, LAST_ID - 1, LAST_ID]
    assert [t.sequence for t in oldest] == [1, 2, 3]
    assert len(server.requests) == 2


async def test_rate_limit_is_refused_locally_until_retry_after(
    server: FakeVenue, metrics: PlatformMetrics
) -> None:
    venue = server.venue
    now = [100.0]
    adapter = create_adapter(venue.name, create_adapter(venue.name).parse_symbols(_body(venue.symbols_body)))
    server.rate_limit_next = 1
    gap = Gap(venue.raw_symbol, LAST_ID - 4, LAST_ID)
    async with RestBackfiller(adapter, server.url, metrics=metrics, monotonic=lambda: now[0]) as backfiller:
        with pytest.raises(RateLimitedError) as caught:
            await backfiller.fetch_gap(gap)
        assert caught.value.retry_after == venue.retry_after_s
        now[0] += venue.retry_after_s - 0.5
        with pytest.raises(RateLimitedError):
            await backfiller.fetch_gap(gap)
        assert len(server.requests) == 1  # refused without asking the venue again
        now[0] += 1.0
        assert [t.sequence for t in await backfiller.fetch_gap(gap)] == list(range(LAST_ID - 4, LAST_ID + 1))
    assert len(server.requests) == 2


def _body(value: Any) -> bytes:
    return web.json_response(value).body  # type: ignore[return-value]
