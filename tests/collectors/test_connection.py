"""Connections alone, over a real socket against the simulator: what a read hands on, reconnects, the
watchdog, make before break and a prompt stop, without admission, repair or the outbox behind it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from collectors.backfill import discover
from collectors.connection import Connections, split_symbols
from collectors.session_metrics import SessionMetrics
from collectors.session_options import SessionOptions
from collectors.stopping import Stopping
from collectors.transport import WebsocketsConnector
from core.clock import SystemClock
from core.types import Trade
from monitoring.metrics import PlatformMetrics
from simulator.exchange import SimulatedExchange
from simulator.markets import SyntheticMarket
from simulator.venue import VenueOptions
from simulator.venues import DEFAULT_VENUE, make_venue
from tests.collectors.session_harness import Sample, eventually


@pytest.fixture
async def sim(metrics: PlatformMetrics) -> AsyncIterator[SimulatedExchange]:
    protocol = make_venue(DEFAULT_VENUE, VenueOptions())
    market = SyntheticMarket(protocol.default_symbols, tps=400, seed=1, symbol_form=protocol.raw_symbol)
    simulator = SimulatedExchange(market, protocol, metrics=metrics)
    await simulator.start()
    yield simulator
    await simulator.stop()


class Reader:
    """Connections over the simulator, recording what they hand on and which outages ended."""

    def __init__(self, sim: SimulatedExchange, metrics: PlatformMetrics, options: SessionOptions) -> None:
        self.sim, self.metrics, self.options = sim, metrics, options
        self.trades: list[Trade] = []
        self.reopened: list[list[str]] = []

    async def connections(self) -> Connections:
        async with await discover(DEFAULT_VENUE, self.sim.rest_url, metrics=self.metrics) as rest:
            adapter = rest.adapter
        symbols = sorted(self.sim.symbols)
        groups = split_symbols(symbols, 1)  # one connection per symbol
        canonical = {s: adapter.symbol_info(s).symbol for s in symbols}  # type: ignore[union-attr]
        return Connections(
            adapter, groups, url=self.sim.ws_url, connector=WebsocketsConnector(), options=self.options,
            metrics=SessionMetrics(self.metrics, adapter.name, canonical, len(groups)),
            take=self.trades.extend, reopened=lambda raw: self.reopened.append(list(raw)),
            stopping=Stopping(), clock=SystemClock(), rng=lambda: 0.0,
        )  # fmt: skip


def test_symbols_are_split_over_connections_in_order() -> None:
    assert split_symbols(["A", "B", "C"], 2) == [["A", "B"], ["C"]]
    assert split_symbols(["A"], 5) == [["A"]]


async def test_reads_hand_on_every_symbols_trades_and_stop_is_prompt(
    sim: SimulatedExchange, metrics: PlatformMetrics
) -> None:
    reader = Reader(sim, metrics, SessionOptions())
    connections = await reader.connections()
    task = asyncio.create_task(connections.run())
    symbols = set(sim.symbols)
    await eventually(lambda: {t.raw_symbol for t in reader.trades} == symbols)
    assert connections.connected() == symbols and connections.reads > 0
    assert sorted(map(tuple, reader.reopened)) == sorted((s,) for s in symbols)  # each opened once
    connections.stop()
    await asyncio.wait_for(task, 1.0)
    assert connections.connected() == set()
    sample = Sample(metrics, DEFAULT_VENUE)
    assert sample("exchange_connected") == 0


async def test_a_stalled_connection_is_reopened_and_its_outage_reported(
    sim: SimulatedExchange, metrics: PlatformMetrics
) -> None:
    reader = Reader(sim, metrics, SessionOptions(stale_timeout=0.3, backoff_initial=0.05, backoff_max=0.1))
    connections = await reader.connections()
    task = asyncio.create_task(connections.run())
    await eventually(lambda: len(reader.trades) > 20)
    sim.stall(1.0)
    sample = Sample(metrics, DEFAULT_VENUE)
    await eventually(lambda: sample("collector_errors_total", error_type="stale") >= 1)
    await eventually(lambda: len(reader.reopened) > len(sim.symbols))  # reconnected: the outage ended
    connections.stop()
    await asyncio.wait_for(task, 1.0)


async def test_an_aged_connection_hands_over_to_its_successor_without_an_outage(
    sim: SimulatedExchange, metrics: PlatformMetrics
) -> None:
    reader = Reader(sim, metrics, SessionOptions(max_connection_age=0.3))
    connections = await reader.connections()
    task = asyncio.create_task(connections.run())
    sample = Sample(metrics, DEFAULT_VENUE)
    await eventually(lambda: sample("websocket_reconnections_total") >= 2)
    assert len(reader.reopened) == len(sim.symbols)  # successors overlap: no outage to look back over
    seen = len(reader.trades)
    await eventually(lambda: len(reader.trades) > seen + 20)
    connections.stop()
    await asyncio.wait_for(task, 1.0)
