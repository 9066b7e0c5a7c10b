"""Fixtures for the simulator tests: a started simulator of any venue (stopped after the test), CSV files."""

from __future__ import annotations

import asyncio
import csv
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import websockets

from monitoring.metrics import PlatformMetrics
from simulator.exchange import SimulatedExchange
from simulator.markets import MarketSource, ReplayMarket, SyntheticMarket
from simulator.venue import VenueOptions
from simulator.venues import VENUES, make_venue

StartSim = Callable[..., Awaitable[SimulatedExchange]]
StartVenue = Callable[..., Awaitable[SimulatedExchange]]
VENUE_NAMES = sorted(VENUES)
HEADER = ["timestamp_ms", "symbol", "trade_id", "price", "quantity", "is_buyer_maker"]


@pytest.fixture
async def start_venue(metrics: PlatformMetrics) -> AsyncIterator[StartVenue]:
    """start(exchange, market=None, *, tps=300, seed=1, options=None, **exchange_kwargs): a started exchange
    of venue `exchange`; without a market, a synthetic one on the venue's default symbols."""
    started: list[SimulatedExchange] = []

    async def start(
        exchange: str,
        market: MarketSource | None = None,
        *,
        tps: float = 300.0,
        seed: int = 1,
        options: VenueOptions | None = None,
        **kwargs: Any,
    ) -> SimulatedExchange:
        venue = make_venue(exchange, options)
        if market is None:
            market = SyntheticMarket(venue.default_symbols, tps=tps, seed=seed, symbol_form=venue.raw_symbol)
        sim = SimulatedExchange(market, venue, metrics=metrics, **kwargs)
        await sim.start()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        await sim.stop()


@pytest.fixture
def start_sim(start_venue: StartVenue, metrics: PlatformMetrics) -> StartSim:
    """start(market, **kwargs): a started Binance, keywords as BinanceSimulator takes them."""

    async def start(market: MarketSource, **kwargs: Any) -> SimulatedExchange:
        venue_keywords = {
            k: kwargs.pop(k) for k in ("ping_interval", "ping_timeout", "weight_limit") if k in kwargs
        }
        return await start_venue("binance", market, options=VenueOptions(**venue_keywords), **kwargs)

    return start


def id_rows(
    symbol: str, first_id: int, count: int, *, start_ms: int, price: float, quantity: str
) -> list[list[object]]:
    """Replay rows of `symbol` with consecutive ids from `first_id`, 1 ms apart; price `price + i` (one
    decimal), the buyer the maker on odd rows."""
    return [
        [start_ms + i, symbol, first_id + i, f"{price + i:.1f}", quantity, "true" if i % 2 else "false"]
        for i in range(count)
    ]


async def replayed(
    start: StartVenue, exchange: str, rows: Sequence[Sequence[object]], tmp_path: Path
) -> SimulatedExchange:
    """A started `exchange` that has replayed `rows` (as fast as it can) to their end."""
    path = write_csv(tmp_path / "replay.csv", rows)
    market = ReplayMarket(
        path, speed=1e9, wait_for_subscriber=False, symbol_form=make_venue(exchange).raw_symbol
    )
    return await finished(await start(exchange, market))


async def finished(sim: SimulatedExchange, timeout: float = 5.0) -> SimulatedExchange:
    """`sim` once its market has finished (a replay played to its end)."""
    async with asyncio.timeout(timeout):
        while not sim.finished:
            await asyncio.sleep(0.01)
    return sim


def write_csv(path: Path, rows: Sequence[Sequence[object]], header: Sequence[str] = HEADER) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def ws_connect(url: str, **kwargs: Any) -> websockets.connect:
    """A websockets client that can always complete the close handshake: with a bounded queue, a client
    that stops reading a busy stream never sees the server's close frame and waits close_timeout."""
    return websockets.connect(url, **{"max_queue": None, "close_timeout": 1.0, **kwargs})
