"""RestBackfiller runs each venue's REST conversation against a real HTTP server on loopback: trade
histories that answer ids below an `after` cursor, newest first (Coinbase, OKX), trades after a `since`
time in nanoseconds, oldest first, with the next `since` in `last` (Kraken), or only the latest trades
(Bybit's recent-trade), in pages of the venue's size, and each venue's own rate-limit and ban answers.
(Binance, which pages oldest first by id: test_backfill.py.)

The fake market is the same for every venue: trade i (1..LAST_ID) happened at T0 + i * 250 µs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web

from collectors.adapter import Gap
from collectors.backfill import RestBackfiller, discover
from collectors.registry import create_adapter
from core.errors import RateLimitedError
from core.types import Trade
from monitoring.metrics import PlatformMetrics
from tests.collectors.http_server import serve

LAST_ID = 5000  # the newest trade id the fake venue has; ids start at 1
T0_NS = 1_709_647_000_000_000_000
STEP_NS = 250_000
KRAKEN_MARGIN_NS = 1_000_000  # the adapter asks from this much before the trade preceding a gap


def trade_ns(i: int) -> int:
    return T0_NS + i * STEP_NS


Query = Mapping[str, str]


def _iso(ns: int) -> str:
    return (
        datetime.fromtimestamp(ns // 10**9, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{ns % 10**9 // 1000:06d}Z"
    )


def _below_after(query: Query, page: int) -> list[int]:
    """Ids below the `after` cursor, newest first (Coinbase, OKX)."""
    newest = min(int(query["after"]) - 1, LAST_ID)
    return list(range(newest, max(newest - min(int(query["limit"]), page), 0), -1))


def _coinbase(query: Query, raw: str) -> Any:
    return [
        {"time": _iso(trade_ns(i)), "trade_id": i,
         "price": f"67000.{i % 100:02d}", "size": "0.01000000", "side": "buy" if i % 2 else "sell"}
        for i in _below_after(query, 1000)
    ]  # fmt: skip


def _okx(query: Query, raw: str) -> Any:
    rows = [
        {"instId": raw, "side": "sell" if i % 2 else "buy", "sz": "0.01", "source": "0",
         "px": f"67000.{i % 10}", "tradeId": str(i), "ts": str(trade_ns(i) // 1_000_000)}
        for i in _below_after(query, 100)
    ]  # fmt: skip
    return {"code": "0", "msg": "", "data": rows}


def _kraken(query: Query, raw: str) -> web.Response:
    """Trades strictly after `since` (ns), oldest first, `count` of them; without `since` the latest.
    Times are float seconds as Kraken prints them (a binary float's shortest text)."""
    count = min(int(query["count"]), 1000)
    since = query.get("since")
    start = LAST_ID - count + 1 if since is None else max((int(since) - T0_NS) // STEP_NS + 1, 1)
    ids = range(start, min(start + count, LAST_ID + 1))
    rows = [
        [f"67000.{i % 10}0000", "0.01000000", trade_ns(i) / 1e9, "s" if i % 2 else "b", "l", "", i]
        for i in ids
    ]
    last = str(trade_ns(ids[-1])) if ids else query.get("since", "0")
    return web.Response(text=json.dumps({"error": [], "result": {"XXBTZUSD": rows, "last": last}}))


def _bybit(query: Query, raw: str) -> Any:
    """The latest `limit` (at most 60) trades, newest first, as Bybit's recent-trade serves them."""
    ids = range(LAST_ID, LAST_ID - min(int(query["limit"]), 60), -1)
    rows = [
        {"execId": str(2_290_000_000_000_000_000 + i), "symbol": raw, "price": f"67000.{i % 10}",
         "size": "0.001000", "side": "Buy" if i % 2 else "Sell", "time": str(trade_ns(i) // 1_000_000),
         "isBlockTrade": False, "isRPITrade": False, "seq": str(56_000_000 + 3 * i)}
        for i in ids
    ]  # fmt: skip
    return {"retCode": 0, "retMsg": "OK", "result": {"category": "spot", "list": rows}, "retExtInfo": {}}


@dataclass(frozen=True)
class Limit:
    """One of a venue's "slow down" answers and the wait the adapter must make of it."""

    why: str
    answer: Callable[[], web.Response]
    wait_s: float


@dataclass(frozen=True)
class Venue:
    """How the fake server plays one venue. `cursors(first, last)`: the cursor parameter's values the
    adapter must send to repair first..last of two and a half pages (gap venues only); `end_pages`: the
    requests it takes to find that a gap reaches past the newest trade."""

    name: str
    raw_symbol: str
    trades_route: str
    symbols_route: str
    symbols_body: Any
    answer: Callable[[Query, str], Any]
    limits: tuple[Limit, ...]
    page: int
    cursor: str = ""
    cursors: Callable[[int, int], list[str]] = lambda first, last: []
    end_pages: int = 1
    time_unit_ns: int = 1_000_000  # the resolution of the venue's trade times


def _answer(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Callable[[], web.Response]:
    return lambda: web.json_response(body, status=status, headers=headers)


def _text(status: int, text: str) -> Callable[[], web.Response]:
    return lambda: web.Response(status=status, text=text)


_OKX_LIVE = {"instId": "BTC-USDT", "baseCcy": "BTC", "quoteCcy": "USDT", "state": "live"}
_KRAKEN_PAIR = {"altname": "XBTUSD", "wsname": "XBT/USD", "base": "XXBT", "quote": "ZUSD"}
_BYBIT_SPOT = {"symbol": "BTCUSDT", "baseCoin": "BTC", "quoteCoin": "USDT", "status": "Trading"}
_COINBASE_LIMITED = {"message": "Public rate limit exceeded"}
_OKX_LIMITED = {"code": "50011", "msg": "Too Many Requests", "data": []}
_KRAKEN_LIMITED = {"error": ["EAPI:Rate limit exceeded"]}
_BYBIT_LIMITED = {"retCode": 10006, "retMsg": "Too many visits!", "result": {}}


def _kraken_cursors(first: int, last: int) -> list[str]:
    """From a millisecond before the trade preceding the gap (4 earlier trades come along), then each
    answer's `last`: the time of its newest trade."""
    return [
        str(trade_ns(first - 1) - KRAKEN_MARGIN_NS),
        str(trade_ns(first + 995)),
        str(trade_ns(first + 1995)),
    ]


VENUES = {
    "coinbase": Venue(
        "coinbase", "BTC-USD", "/products/{product}/trades", "/products",
        [{"id": "BTC-USD", "base_currency": "BTC", "quote_currency": "USD", "status": "online"}],
        _coinbase,
        (Limit("429 with Retry-After", _answer(_COINBASE_LIMITED, 429, {"Retry-After": "3"}), 3.0),),
        1000, "after", lambda first, last: [str(last + 1 - n * 1000) for n in range(3)], time_unit_ns=1000,
    ),
    "okx": Venue(
        "okx", "BTC-USDT", "/api/v5/market/history-trades", "/api/v5/public/instruments",
        {"code": "0", "msg": "", "data": [_OKX_LIVE]},
        _okx,
        (Limit("code 50011 without Retry-After", _answer(_OKX_LIMITED, 429), 2.0),),
        100, "after", lambda first, last: [str(last + 1 - n * 100) for n in range(3)],
    ),
    "kraken": Venue(
        "kraken", "BTC/USD", "/0/public/Trades", "/0/public/AssetPairs",
        {"error": [], "result": {"XXBTZUSD": _KRAKEN_PAIR}},
        _kraken,
        (Limit("EAPI:Rate limit exceeded under HTTP 200", _answer(_KRAKEN_LIMITED), 5.0),),
        1000, "since", _kraken_cursors, end_pages=2, time_unit_ns=1000,
    ),
    "bybit": Venue(
        "bybit", "BTCUSDT", "/v5/market/recent-trade", "/v5/market/instruments-info",
        {"retCode": 0, "retMsg": "OK", "result": {"category": "spot", "list": [_BYBIT_SPOT]}},
        _bybit,
        (
            Limit("retCode 10006 under HTTP 200", _answer(_BYBIT_LIMITED), 5.0),
            Limit("HTTP 429", _text(429, "Too Many Requests"), 5.0),
            Limit("HTTP 403: banned for ten minutes", _text(403, "access too frequent"), 600.0),
        ),
        60,
    ),
}  # fmt: skip
GAP_VENUES = sorted(n for n in VENUES if VENUES[n].cursor)
RECENT_VENUES = sorted(n for n in VENUES if not VENUES[n].cursor)
LIMITS = [(name, limit) for name in sorted(VENUES) for limit in VENUES[name].limits]


@dataclass
class FakeVenue:
    venue: Venue
    url: str = ""
    requests: list[dict[str, str]] = field(default_factory=list)
    limit_next: list[Limit] = field(default_factory=list)


@pytest.fixture
async def server(request: pytest.FixtureRequest) -> AsyncIterator[FakeVenue]:
    state = FakeVenue(VENUES[request.param])
    venue = state.venue

    async def trades(req: web.Request) -> web.Response:
        state.requests.append({"path": req.path, **req.query})
        if state.limit_next:
            return state.limit_next.pop().answer()
        raw = req.match_info.get("product") or req.query.get("instId") or req.query.get("symbol") or "BTC/USD"
        answer = venue.answer(req.query, raw)
        return answer if isinstance(answer, web.Response) else web.json_response(answer)

    async def symbols(req: web.Request) -> web.Response:
        return web.json_response(venue.symbols_body)

    app = web.Application()
    app.router.add_get(venue.trades_route, trades)
    app.router.add_get(venue.symbols_route, symbols)
    async with serve(app) as state.url:
        yield state


def _gap(raw_symbol: str, first: int, last: int) -> Gap:
    """A gap as the session finds it: with the event times of the trades on either side."""
    return Gap(raw_symbol, first, last, trade_ns(first - 1), trade_ns(last + 1))


def _sequences(trades: list[Trade]) -> list[int | None]:
    return [t.sequence for t in trades]


@pytest.mark.parametrize("server", GAP_VENUES, indirect=True)
async def test_fetch_gap_pages_and_returns_the_gap_in_ascending_order(
    server: FakeVenue, metrics: PlatformMetrics
) -> None:
    venue = server.venue
    first, last = LAST_ID - 2 * venue.page - venue.page // 2, LAST_ID - 3  # two and a half pages
    async with await discover(venue.name, server.url, metrics=metrics) as backfiller:
        trades = await backfiller.fetch_gap(_gap(venue.raw_symbol, first, last))
    assert _sequences(trades) == list(range(first, last + 1))
    assert [t.trade_id for t in trades] == [str(i) for i in range(first, last + 1)]
    unit = venue.time_unit_ns
    assert [t.ts_event for t in trades] == [trade_ns(i) // unit * unit for i in range(first, last + 1)]
    assert all(t.backfilled and t.raw_symbol == venue.raw_symbol and t.exchange == venue.name for t in trades)
    assert [r[venue.cursor] for r in server.requests] == venue.cursors(first, last)
    assert {r.get("limit") or r.get("count") for r in server.requests} == {str(venue.page)}


@pytest.mark.parametrize("server", GAP_VENUES, indirect=True)
async def test_fetch_gap_returns_what_the_venue_has(server: FakeVenue, metrics: PlatformMetrics) -> None:
    venue = server.venue
    async with await discover(venue.name, server.url, metrics=metrics) as backfiller:
        newest = await backfiller.fetch_gap(_gap(venue.raw_symbol, LAST_ID - 2, LAST_ID + 10))
        oldest = await backfiller.fetch_gap(_gap(venue.raw_symbol, 1, 3))
    assert _sequences(newest) == [LAST_ID - 2, LAST_ID - 1, LAST_ID]
    assert _sequences(oldest) == [1, 2, 3]
    assert len(server.requests) == venue.end_pages + 1


@pytest.mark.parametrize("server", ["kraken"], indirect=True)
async def test_a_gap_without_the_time_before_it_is_looked_for_among_the_latest_trades(
    server: FakeVenue, metrics: PlatformMetrics
) -> None:
    """Kraken without `Gap.after_ns`: no `since`, so one page of the latest trades; a gap among them is
    repaired, an older one stays missing (nothing is paged through from the epoch)."""
    async with await discover("kraken", server.url, metrics=metrics) as backfiller:
        recent = await backfiller.fetch_gap(Gap("BTC/USD", LAST_ID - 5, LAST_ID - 4))
        older = await backfiller.fetch_gap(Gap("BTC/USD", 100, 104))
    assert _sequences(recent) == [LAST_ID - 5, LAST_ID - 4]
    assert older == []
    assert [("since" in r, r["count"]) for r in server.requests] == [(False, "1000"), (False, "1000")]


@pytest.mark.parametrize("server", RECENT_VENUES, indirect=True)
async def test_recent_trades_are_the_latest_page_oldest_first(
    server: FakeVenue, metrics: PlatformMetrics
) -> None:
    venue = server.venue
    async with await discover(venue.name, server.url, metrics=metrics) as backfiller:
        adapter = backfiller.adapter
        assert adapter.repair_request(_gap(venue.raw_symbol, 10, 20)) is None  # no gap is repaired by id
        request = adapter.recent_request(venue.raw_symbol)
        assert request is not None
        trades = adapter.parse_recent(venue.raw_symbol, await backfiller.get(request), 7)
    ids = range(LAST_ID - venue.page + 1, LAST_ID + 1)
    assert [t.trade_id for t in trades] == [str(2_290_000_000_000_000_000 + i) for i in ids]
    assert [t.ts_event for t in trades] == [trade_ns(i) // 1_000_000 * 1_000_000 for i in ids]
    assert all(t.sequence is None and t.backfilled and t.ts_recv == 7 for t in trades)
    assert server.requests == [
        {"path": venue.trades_route, "category": "spot", "symbol": "BTCUSDT", "limit": "60"}
    ]


@pytest.mark.parametrize(
    ("server", "limit"), LIMITS, indirect=["server"], ids=[f"{n}-{x.why}" for n, x in LIMITS]
)
async def test_rate_limits_and_bans_are_refused_locally_until_their_time(
    server: FakeVenue, limit: Limit, metrics: PlatformMetrics
) -> None:
    venue = server.venue
    now = [100.0]
    bootstrap = create_adapter(venue.name)
    adapter = create_adapter(venue.name, bootstrap.parse_symbols(json.dumps(venue.symbols_body).encode()))
    server.limit_next = [limit]
    async with RestBackfiller(adapter, server.url, metrics=metrics, monotonic=lambda: now[0]) as backfiller:

        async def fetch() -> list[Trade]:
            if not venue.cursor:
                request = adapter.recent_request(venue.raw_symbol)
                assert request is not None
                return adapter.parse_recent(venue.raw_symbol, await backfiller.get(request), 0)
            return await backfiller.fetch_gap(_gap(venue.raw_symbol, LAST_ID - 4, LAST_ID))

        with pytest.raises(RateLimitedError) as caught:
            await fetch()
        assert caught.value.retry_after == limit.wait_s
        now[0] += limit.wait_s - 0.5
        with pytest.raises(RateLimitedError):
            await fetch()
        assert len(server.requests) == 1  # refused without asking the venue again
        now[0] += 1.0
        trades = await fetch()
    assert len(trades) == (5 if venue.cursor else venue.page)
    assert len(server.requests) == 2
