"""Every adapter's klines (1m candles over REST), checked from its golden `klines.json` (format in
tests/fixtures/venues/README.md): the request for a window, the candles its answer holds (oldest first,
exact text), bad bodies and the error type each raises, and damaged bodies giving only valid candles or
ParseError. A venue without klines has no such file, a reason, and asks for nothing. The executor's
windows and waiting out of rate limits are tested against a local HTTP server."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiohttp import web

from collectors.adapter import NO_KLINES, PARSE_ERROR_TYPES, RestVerdict
from collectors.backfill import RestBackfiller
from collectors.exchanges.binance import BinanceAdapter
from collectors.klines import is_plain_decimal, minute_windows
from collectors.registry import ADAPTERS, create_adapter
from collectors.values import is_positive_decimal
from core.errors import ConfigError, ParseError
from core.timeframes import NS_PER_MINUTE
from core.types import Candle, SymbolInfo
from monitoring.metrics import PlatformMetrics
from tests.collectors import venue_fixtures as vf
from tests.collectors.mutations import mutate

VENUES = sorted(ADAPTERS)
KLINE_VENUES = [n for n in VENUES if create_adapter(n).capabilities.klines.available]


def klines(name: str) -> dict[str, Any] | None:
    path = vf.VENUES_DIR / name / "klines.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def candle(fields: dict[str, Any]) -> Candle:
    return Candle(**fields)


@pytest.mark.parametrize("name", VENUES)
def test_klines_fixture_exactly_where_the_venue_serves_klines(name: str) -> None:
    support = vf.adapter(name).capabilities.klines
    assert (klines(name) is not None) is support.available
    if not support.available:
        assert support.reason and vf.adapter(name).klines_request("X", 0, NS_PER_MINUTE) is None


@pytest.mark.parametrize("name", KLINE_VENUES)
def test_klines_conversations(name: str) -> None:
    adapter = vf.adapter(name)
    fixture = klines(name)
    assert fixture is not None
    for conversation in fixture["conversations"]:
        why, raw = conversation["why"], conversation["raw_symbol"]
        request = adapter.klines_request(raw, conversation["start_ns"], conversation["end_ns"])
        assert request is not None and request.method == "GET"
        expected = vf.request(conversation["request"])
        assert (request.path, request.params) == (expected.path, expected.params), why
        body = vf.body_bytes(conversation)
        assert adapter.classify_response(200, {}, body).verdict is RestVerdict.OK
        parsed = adapter.parse_klines(raw, body)
        assert parsed == [candle(c) for c in conversation["candles"]], why
        _check_candles(parsed)


@pytest.mark.parametrize("name", KLINE_VENUES)
def test_bad_klines_bodies_raise_parse_error_of_their_type(name: str) -> None:
    adapter = vf.adapter(name)
    fixture = klines(name)
    assert fixture is not None and fixture["bad_bodies"]
    for entry in fixture["bad_bodies"]:
        with pytest.raises(ParseError) as caught:
            adapter.parse_klines(entry["raw_symbol"], vf.body_bytes(entry))
        assert caught.value.error_type == entry["error"], entry["why"]


@pytest.mark.parametrize("name", KLINE_VENUES)
def test_fuzzed_klines_bodies_give_valid_candles_or_parse_errors(name: str) -> None:
    adapter = vf.adapter(name)
    fixture = klines(name)
    assert fixture is not None
    rng = random.Random(f"klines-{name}")
    for conversation in fixture["conversations"]:
        good = vf.body_bytes(conversation)
        for _ in range(300):
            try:
                parsed = adapter.parse_klines(conversation["raw_symbol"], mutate(rng, good))
            except ParseError as exc:
                assert exc.error_type in PARSE_ERROR_TYPES
                continue
            _check_candles(parsed)


@pytest.mark.parametrize("name", KLINE_VENUES)
def test_a_window_of_page_minutes_is_one_request_naming_the_symbol(name: str) -> None:
    adapter = vf.adapter(name)
    raw = next(iter(vf.load(name).instruments["listed"]))
    start = 1_709_647_200 * 10**9
    end = start + adapter.capabilities.klines.page_minutes * NS_PER_MINUTE
    request = adapter.klines_request(raw, start, end)
    assert request is not None
    info = adapter.symbol_info(raw)
    rest_name = getattr(info, "rest_symbol", "") or raw  # a venue whose REST API has its own names
    assert rest_name in request.path or rest_name in dict(request.params).values()


def _check_candles(candles: list[Candle]) -> None:
    assert [c.open_time for c in candles] == sorted({c.open_time for c in candles})
    for c in candles:
        assert c.open_time > 0 and c.open_time % NS_PER_MINUTE == 0
        assert all(is_positive_decimal(p) for p in (c.open, c.high, c.low, c.close)), c
        assert is_plain_decimal(c.volume), c
        assert c.trade_count is None or c.trade_count >= 0


def test_minute_windows_cover_the_range_in_pages() -> None:
    start = 10 * NS_PER_MINUTE + 5
    windows = list(minute_windows(start, 25 * NS_PER_MINUTE, 7))
    assert windows == [
        (10 * NS_PER_MINUTE, 17 * NS_PER_MINUTE),
        (17 * NS_PER_MINUTE, 24 * NS_PER_MINUTE),
        (24 * NS_PER_MINUTE, 25 * NS_PER_MINUTE),
    ]
    assert list(minute_windows(start, start, 7)) == [(10 * NS_PER_MINUTE, 11 * NS_PER_MINUTE)]


def test_no_klines_by_default() -> None:
    assert not NO_KLINES.available and NO_KLINES.reason


BINANCE = [SymbolInfo("binance", "BTC-USDT", "BTCUSDT", "BTC", "USDT")]


async def test_the_executor_pages_keeps_the_window_and_waits_out_a_rate_limit(
    tmp_path: Path, metrics: PlatformMetrics
) -> None:
    """Two windows of 1000 minutes; the first answer is a 429 with Retry-After 0.2 s, then pages come,
    each with a row outside its window that must be dropped."""
    seen: list[dict[str, str]] = []

    async def klines_route(request: web.Request) -> web.Response:
        seen.append(dict(request.query))
        if len(seen) == 1:
            return web.json_response(
                {"code": -1003, "msg": "slow"}, status=429, headers={"Retry-After": "0.2"}
            )
        start = int(request.query["startTime"])
        rows = [
            [ms, "1.0", "1.0", "1.0", "1.0", "2.50000000", ms + 59_999, "2.5", 1, "0", "0", "0"]
            for ms in (start - 60_000, start, start + 60_000)
        ]
        return web.json_response(rows)

    app = web.Application()
    app.router.add_get("/api/v3/klines", klines_route)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with RestBackfiller(
            BinanceAdapter(BINANCE), f"http://127.0.0.1:{port}", metrics=metrics
        ) as rest:
            start = 1_709_647_200 * 10**9
            candles = await rest.fetch_klines("BTCUSDT", start, start + 2000 * NS_PER_MINUTE, max_wait_s=5)
    finally:
        await runner.cleanup()
    assert len(seen) == 3 and seen[0] == seen[1]  # the refused request asked again
    assert [int(q["startTime"]) for q in seen[1:]] == [start // 10**6, start // 10**6 + 1000 * 60_000]
    assert [c.open_time for c in candles] == [
        start,
        start + NS_PER_MINUTE,
        start + 1000 * NS_PER_MINUTE,
        start + 1001 * NS_PER_MINUTE,
    ]


async def test_the_executor_refuses_a_venue_without_klines(metrics: PlatformMetrics) -> None:
    class NoKlines(BinanceAdapter):
        capabilities = msgspec.structs.replace(BinanceAdapter.capabilities, klines=NO_KLINES)

    async with RestBackfiller(NoKlines(BINANCE), "http://127.0.0.1:9", metrics=metrics) as rest:
        with pytest.raises(ConfigError, match="serves no 1m candles"):
            await rest.fetch_klines("BTCUSDT", 0, NS_PER_MINUTE)
