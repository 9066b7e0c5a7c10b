"""Fixtures for the simulator tests: a started simulator (stopped after the test) and small CSV files."""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import websockets

from monitoring.metrics import PlatformMetrics
from simulator.binance import BinanceSimulator
from simulator.markets import MarketSource

StartSim = Callable[..., Awaitable[BinanceSimulator]]
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
