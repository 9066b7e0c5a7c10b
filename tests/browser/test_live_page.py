"""The live page at / and the API docs in a real headless Chromium, against a real uvicorn server over a
real SQLite store: nothing is requested from another host, the chart draws the bars the API serves, the
feed rows show, and a bar published through the cache reaches the chart over the WebSocket."""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from playwright.async_api import BrowserContext
from prometheus_client import CollectorRegistry

from api.app import create_app
from api.settings import ApiSettings
from core.timeframes import NS_PER_SECOND
from core.types import Bar, ClosedBar, Coverage, FeedState, FeedStatus, Indicators, SymbolInfo
from monitoring.metrics import PlatformMetrics
from storage.memory_cache import MemoryCache
from storage.sqlite import SQLiteStore
from tests.api.conftest import serve
from tests.browser.conftest import BrowserPage, open_page, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]

MINUTE = 60 * NS_PER_SECOND
BAR_COUNT = 90
SYMBOLS = [
    SymbolInfo("binance", "BTC-USDT", "BTCUSDT", "BTC", "USDT"),
    SymbolInfo("binance", "ETH-USDT", "ETHUSDT", "ETH", "USDT"),
    SymbolInfo("coinbase", "BTC-USD", "BTC-USD", "BTC", "USD"),
]
UP_RGB, DOWN_RGB = (38, 166, 154), (239, 83, 80)  # the page's candle colours


def random_walk(count: int, start_ns: int, seed: int = 7) -> list[ClosedBar]:
    """`count` 1m BTC-USDT bars ending at start_ns + count minutes; prices as exact 2-decimal strings."""
    rng = random.Random(seed)
    price, bars = 42_000.0, []
    for i in range(count):
        open_ = price
        close = max(100.0, open_ + rng.gauss(0, 35))
        high, low = max(open_, close) + rng.uniform(0, 20), min(open_, close) - rng.uniform(0, 20)
        volume = round(rng.uniform(0.5, 6.0), 4)
        bars.append(make_closed(start_ns + i * MINUTE, open_, high, low, close, volume))
        price = close
    return bars


def make_closed(open_ns: int, o: float, h: float, low: float, c: float, volume: float) -> ClosedBar:
    bar = Bar(
        exchange="binance", symbol="BTC-USDT", timeframe="1m", open_time=open_ns, close_time=open_ns + MINUTE,
        open=f"{o:.2f}", high=f"{h:.2f}", low=f"{low:.2f}", close=f"{c:.2f}", volume=f"{volume:.4f}",
        quote_volume=f"{volume * c:.6f}", vwap=(o + c) / 2, trade_count=12, buy_volume=f"{volume / 2:.4f}",
        sell_volume=f"{volume / 2:.4f}", first_trade_id="1", last_trade_id="12", coverage=Coverage.COMPLETE,
    )  # fmt: skip
    return ClosedBar(bar=bar, indicators=Indicators())


def feed(exchange: str, symbol: str, state: FeedState, now: int, received: int, **counts: int) -> FeedStatus:
    return FeedStatus(
        exchange, symbol, symbol.replace("-", "") if exchange == "binance" else symbol, state,
        now, now - NS_PER_SECOND // 2, now - NS_PER_SECOND // 2, None, received, **counts,
    )  # fmt: skip


@pytest.fixture
async def live_server(tmp_path: Path) -> AsyncIterator[tuple[str, MemoryCache, list[ClosedBar]]]:
    metrics = PlatformMetrics(CollectorRegistry())
    store = SQLiteStore(tmp_path / "page.db", metrics=metrics)
    cache = MemoryCache(metrics=metrics)
    start = (time.time_ns() // MINUTE - BAR_COUNT - 1) * MINUTE
    bars = random_walk(BAR_COUNT, start)
    await store.migrate()
    await store.upsert_symbols(SYMBOLS)
    await store.upsert_bars(bars)
    app: FastAPI = create_app(
        store, cache, metrics=metrics, settings=ApiSettings(rate_limit_per_second=0), feeds=cache
    )
    try:
        async with serve(app) as address:
            yield address, cache, bars
    finally:
        await cache.close()
        await store.close()


async def wait_for(page: BrowserPage, expression: str, what: str, timeout_ms: int = 15_000) -> Any:
    try:
        # a function, not an expression string: the page's CSP forbids the eval a string would need
        return await page.page.wait_for_function(f"() => ({expression})", timeout=timeout_ms)
    except Exception as exc:
        raise AssertionError(f"page never showed {what}; errors: {page.errors}") from exc


async def drawn_candle_pixels(page: BrowserPage) -> dict[str, int]:
    """Pixels of the candle colours on the chart's canvases: proof that candles were painted."""
    return await page.page.evaluate(
        """([up, down]) => {
            const near = (d, i, c) => Math.abs(d[i] - c[0]) < 6 && Math.abs(d[i + 1] - c[1]) < 6
                && Math.abs(d[i + 2] - c[2]) < 6 && d[i + 3] > 200;
            let ups = 0, downs = 0;
            for (const canvas of document.querySelectorAll('#chart canvas')) {
                if (!canvas.width || !canvas.height) continue;
                const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
                for (let i = 0; i < d.length; i += 4) {
                    if (near(d, i, up)) ups++; else if (near(d, i, down)) downs++;
                }
            }
            return {up: ups, down: downs};
        }""",
        [UP_RGB, DOWN_RGB],
    )


async def test_live_page_draws_the_api_bars_shows_feeds_and_updates_live(
    browser: BrowserContext, live_server: tuple[str, MemoryCache, list[ClosedBar]], tmp_path: Path
) -> None:
    address, cache, bars = live_server
    now = time.time_ns()
    await cache.put_feeds(
        [
            feed("binance", "BTC-USDT", FeedState.STREAMING, now, 10_000),
            feed("binance", "ETH-USDT", FeedState.REPAIRING, now, 4_000, gaps=1, missing=12, repaired=30),
            feed("coinbase", "BTC-USD", FeedState.QUIET, now, 900),
        ]
    )
    page = await open_page(browser, f"http://{address}/?exchange=binance&symbol=BTC-USDT&timeframe=1m")
    await wait_for(page, "window.cryptostock.loaded && window.cryptostock.wsState === 'live'", "the chart")

    # The chart holds exactly the bars the API serves, and painted them.
    async with httpx.AsyncClient(base_url=f"http://{address}") as http:
        served = (await http.get("/api/v1/bars", params={"symbol": "BTC-USDT", "limit": 500})).json()["bars"]
    drawn = await page.page.evaluate("window.cryptostock.candles.data()")
    volumes = await page.page.evaluate("window.cryptostock.volume.data().map(v => [typeof v.value, v.value])")
    assert len(served) == len(drawn) == BAR_COUNT
    assert [(d["time"], d["open"], d["high"], d["low"], d["close"]) for d in drawn] == [
        (b["open_time_ms"] / 1000, float(b["open"]), float(b["high"]), float(b["low"]), float(b["close"]))
        for b in served
    ]
    assert volumes == [["number", float(b["volume"])] for b in served]  # the API serves exact strings
    pixels = await drawn_candle_pixels(page)
    assert pixels["up"] > 200 and pixels["down"] > 200, pixels

    # Feed rows, and trades/s from two successive reports one second apart.
    rows = await page.page.locator("#feeds tbody tr").all_inner_texts()
    assert len(rows) == 3
    assert "streaming" in rows[0] and "repairing" in rows[1] and "quiet" in rows[2], rows
    later = now + NS_PER_SECOND
    await cache.put_feeds([feed("binance", "BTC-USDT", FeedState.STREAMING, later, 10_250)])
    await wait_for(
        page,
        "document.querySelector('#feeds tbody tr').children[4].textContent === '250'",
        "250 trades/s",
    )

    # A bar closes: published through the cache, pushed over the WebSocket, drawn.
    last = bars[-1].bar
    base = float(last.close)
    new = make_closed(last.open_time + MINUTE, base, base + 41.25, base - 8.5, base + 30.5, 7.25)
    await cache.put_bar(new)
    await wait_for(page, f"window.cryptostock.candles.data().length === {BAR_COUNT + 1}", "the new bar")
    newest = await page.page.evaluate("window.cryptostock.candles.data().at(-1)")
    expected = (new.bar.open_time / 1e9, float(new.bar.close), float(new.bar.high))
    assert (newest["time"], newest["close"], newest["high"]) == expected
    assert await page.page.evaluate("window.cryptostock.barsPushed") == 1
    assert new.bar.close in await page.page.locator("#last").inner_text()
    assert f"{BAR_COUNT + 1} closed 1m bars" in await page.page.locator("#chart-note").inner_text()

    shot = await screenshot(page.page, tmp_path, "web-page.png")
    assert shot.stat().st_size > 20_000
    assert page.foreign(address) == [], "the page reached another host"
    assert page.errors == []


async def test_docs_render_offline(
    browser: BrowserContext, live_server: tuple[str, MemoryCache, list[ClosedBar]], tmp_path: Path
) -> None:
    address, _, _ = live_server
    swagger = await open_page(browser, f"http://{address}/docs")
    await wait_for(swagger, "document.querySelectorAll('.swagger-ui .opblock').length >= 5", "Swagger UI")
    assert "/api/v1/bars" in await swagger.page.locator(".swagger-ui").inner_text()
    redoc = await open_page(browser, f"http://{address}/redoc")
    await wait_for(redoc, "document.querySelector('.api-content h1') !== null", "ReDoc")
    assert "cryptostock market-data API" in await redoc.page.locator(".api-content").inner_text()
    await screenshot(swagger.page, tmp_path, "docs.png")
    for page in (swagger, redoc):
        assert page.foreign(address) == [], f"a docs page reached another host: {page.foreign(address)}"
        assert page.errors == []
