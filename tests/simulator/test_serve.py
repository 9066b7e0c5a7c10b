"""The service entry points: `serve(settings)` and `python -m simulator`."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pydantic
import pytest
import websockets

from monitoring.metrics import PlatformMetrics
from simulator.exchange import SimulatedExchange
from simulator.faults import FaultRequest
from simulator.serve import SimulatorSettings, build_market, serve
from simulator.synthetic import SyntheticMarket
from simulator.venues import make_venue
from tests.simulator.conftest import VENUE_NAMES, write_csv, ws_connect
from tests.simulator.venue_clients import CLIENTS

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", VENUE_NAMES)
async def test_serve_runs_the_chosen_venue_until_cancelled_then_closes_with_1001(
    name: str, metrics: PlatformMetrics
) -> None:
    ready: asyncio.Future[SimulatedExchange] = asyncio.get_running_loop().create_future()
    settings = SimulatorSettings(exchange=name, port=0, tps=200, seed=1, faults=FaultRequest(rate_limit=1))
    task = asyncio.create_task(serve(settings, metrics, on_ready=ready.set_result))
    sim = await asyncio.wait_for(ready, 5)
    client = CLIENTS[name]
    assert sim.venue.name == name and sim.symbols == set(client.symbols) and sim.faults.rate_limited == 1
    async with ws_connect(f"{sim.ws_url}{client.path}") as ws:
        for message in client.subscribe(list(client.symbols)):
            await ws.send(message)
        while client.trade(await asyncio.wait_for(ws.recv(), 5), sim.symbols) is None:
            pass
        task.cancel()
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 1001
    with pytest.raises(asyncio.CancelledError):
        await task


def test_settings_check_the_exchange_and_spell_symbols_its_way(tmp_path: Path) -> None:
    with pytest.raises(
        pydantic.ValidationError,
        match="unknown exchange 'gemini'; known: binance, bybit, coinbase, kraken, okx",
    ):
        SimulatorSettings(exchange="gemini")
    assert build_market(SimulatorSettings(exchange="coinbase")).symbols == ("BTC-USD", "ETH-USD")
    assert build_market(SimulatorSettings(exchange="kraken", symbols="xbt-usd")).symbols == ("XBT/USD",)
    assert build_market(SimulatorSettings(exchange="bybit", symbols="btc/usdt")).symbols == ("BTCUSDT",)
    assert build_market(SimulatorSettings(exchange="okx")).symbols == ("BTC-USDT", "ETH-USDT")
    okx = build_market(SimulatorSettings(exchange="okx", symbols="btcusdt, SOL/USDT"))
    assert okx.symbols == ("BTC-USDT", "SOL-USDT")
    rows = [[1_700_000_000_000, "solusdt", 1, "150.0", "1.0", "true"]]
    replay = build_market(SimulatorSettings(exchange="coinbase", replay=write_csv(tmp_path / "r.csv", rows)))
    assert replay.symbols == ("SOL-USDT",)


def test_settings_choose_the_market(tmp_path: Path) -> None:
    assert isinstance(build_market(SimulatorSettings()), SyntheticMarket)
    rows = [[1_700_000_000_000, "SOLUSDT", 1, "150.0", "1.0", "true"]]
    replay = build_market(SimulatorSettings(replay=write_csv(tmp_path / "r.csv", rows), speed=0))
    assert replay.kind == "replay" and replay.symbols == ("SOLUSDT",) and replay.on_demand
    with pytest.raises(ValueError):
        SimulatorSettings(tps=1, colour="red")  # type: ignore[call-arg]


@pytest.mark.parametrize("name", VENUE_NAMES)
def test_python_m_simulator_starts_and_stops_on_sigterm(name: str) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "simulator",
            "--exchange",
            name,
            "--port",
            "0",
            "--symbols",
            "BTC-USDT",
            "--tps",
            "10",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline()
        assert ready.startswith("READY ws://127.0.0.1:")
        state = httpx.get(f"http{ready.split()[1][2:]}/admin/state").json()
        assert state["exchange"] == name and list(state["symbols"]) == [
            make_venue(name).raw_symbol("BTC-USDT")
        ]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
