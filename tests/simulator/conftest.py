"""Fixtures for the simulator tests: a started simulator of any venue (stopped after the test), CSV files."""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import websockets

from monitoring.metrics import PlatformMetrics
from simulator.binance import BinanceSimulator
from simulator.exchange import SimulatedExchange
from simulator.markets import MarketSource, SyntheticMarket
from simulator.venue import VenueOptions
from simulator.venues import VENUES, make_venue

StartSim = Callable[..., Awaitable[BinanceSimulator]]
StartVenue = Callable[..., Awaitable[SimulatedExchange]]
VENUE_NAMES = sorted(VENUES)
HEADER = ["timestamp_ms", "symbol", "trade_id", "price", "quantity", "is_buyer_maker"]


@pytest.fixture
async def start_sim(metrics: PlatformMetrics) -> AsyncIterator[StartSim]:
    started: list[BinanceSimulator] = []

    async def start(market: MarketSource, **kwargs: Any) -> BinanceSimulator:
        sim = BinanceSimulator(market, metrics=metrics, **kwargs)
        await sim.start()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        await sim.stop()


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
