"""Fault injection through the Python API and the admin endpoints, observed by real clients."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import aiohttp
import pytest
import websockets

from simulator.binance.protocol import MALFORMED_KINDS
from simulator.malformed import OVERSIZED_BYTES
from simulator.markets import SyntheticMarket
from tests.simulator.conftest import StartSim, ws_connect


async def recv(ws: websockets.ClientConnection, timeout: float = 5.0) -> str | bytes:
    return await asyncio.wait_for(ws.recv(), timeout)


async def test_stall_sends_no_data_but_keeps_answering_pings(start_sim: StartSim) -> None:
    market = SyntheticMarket(["BTCUSDT"], tps=500, seed=2)
    sim = await start_sim(market, ping_interval=0.2, ping_timeout=0.5)
    loop = asyncio.get_running_loop()
    # max_queue=None: a client that stops reading with frames queued cannot see the close handshake
    async with ws_connect(f"{sim.ws_url}/ws/btcusdt@trade", ping_interval=None, max_queue=None) as ws:
        last_before = json.loads(await recv(ws))["t"]
        sim.stall(1.2)
        stalled_at = loop.time()
        while True:  # frames already in flight may still arrive, then nothing
            try:
                last_before = json.loads(await recv(ws, timeout=0.3))["t"]
            except TimeoutError:
                break
        assert loop.time() - stalled_at < 0.9
        after = json.loads(await recv(ws, timeout=3.0))
        assert loop.time() - stalled_at >= 1.1
        assert after["t"] == last_before + 1  # a stall delays, it does not lose
    assert sim.state()["faults"]["stall_remaining_s"] == 0


async def test_malformed_frames_of_every_kind_then_trades_resume(start_sim: StartSim) -> None:
    sim = await start_sim(SyntheticMarket(["BTCUSDT"], tps=200, seed=3))
    async with ws_connect(f"{sim.ws_url}/ws/btcusdt@trade", max_size=None) as ws:
        last = json.loads(await recv(ws))["t"]
        sim.send_malformed(len(MALFORMED_KINDS))
        bad: list[str | bytes] = []
        while len(bad) < len(MALFORMED_KINDS):
            frame = await recv(ws)
            event = _decode(frame)
            if event is not None and _is_good_trade(event):
                assert event["t"] == last + 1
                last = event["t"]
            else:
                bad.append(frame)
        event = _decode(await recv(ws))
        assert event is not None and _is_good_trade(event)
    kinds = _classify(bad)
    assert kinds["binary"] == 1 and kinds["undecodable"] == 2 and kinds["oversized"] == 1
    assert kinds["decodable"] == len(MALFORMED_KINDS) - 4
    assert sim.malformed_sent == len(MALFORMED_KINDS)


def _decode(frame: str | bytes) -> dict[str, Any] | None:
    if isinstance(frame, bytes):
        return None
    try:
        value = json.loads(frame)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _is_good_trade(event: dict[str, Any]) -> bool:
    try:
        return (
            list(event) == ["e", "E", "s", "t", "p", "q", "T", "m", "M"]
            and event["e"] == "trade"
            and event["s"] == "BTCUSDT"
            and type(event["t"]) is int
            and isinstance(event["p"], str)
            and float(event["p"]) > 0
            and float(event["q"]) > 0
        )
    except ValueError:
        return False


def _classify(frames: list[str | bytes]) -> dict[str, int]:
    kinds = {"binary": 0, "undecodable": 0, "oversized": 0, "decodable": 0}
    for frame in frames:
        if isinstance(frame, bytes):
            kinds["binary"] += 1
        elif len(frame) > OVERSIZED_BYTES:
            kinds["oversized"] += 1
        elif _decode(frame) is None:
            kinds["undecodable"] += 1
        else:
            kinds["decodable"] += 1
    return kinds


async def test_skip_withholds_ids_from_websockets_but_not_from_rest(start_sim: StartSim) -> None:
    sim = await start_sim(SyntheticMarket(["BTCUSDT", "ETHUSDT"], tps=400, seed=4))
    async with ws_connect(f"{sim.ws_url}/stream?streams=btcusdt@trade/ethusdt@trade") as ws:
        seen: dict[str, list[int]] = {"BTCUSDT": [], "ETHUSDT": []}
        while not seen["BTCUSDT"]:
            data = json.loads(await recv(ws))["data"]
            seen[data["s"]].append(data["t"])
        sim.skip_ids(3, symbol="BTCUSDT")
        while len(seen["BTCUSDT"]) < 30:
            data = json.loads(await recv(ws))["data"]
            seen[data["s"]].append(data["t"])
    btc, eth = seen["BTCUSDT"], seen["ETHUSDT"]
    gaps = [(a, b) for a, b in itertools.pairwise(btc) if b != a + 1]
    assert len(gaps) == 1 and gaps[0][1] - gaps[0][0] == 4
    assert eth == list(range(eth[0], eth[0] + len(eth)))
    missing = gaps[0][0] + 1
    async with aiohttp.ClientSession() as http:
        url = f"{sim.rest_url}/api/v3/historicalTrades"
        async with http.get(url, params={"symbol": "BTCUSDT", "fromId": str(missing), "limit": "3"}) as r:
            rows = await r.json()
    assert [row["id"] for row in rows] == [missing, missing + 1, missing + 2]
    assert sim.state()["faults"]["trades_skipped"] == 3


async def test_rate_limit_answers_429_with_retry_after(start_sim: StartSim) -> None:
    sim = await start_sim(SyntheticMarket(["BTCUSDT"], tps=10, seed=5))
    sim.rate_limit(2, retry_after=3)
    async with aiohttp.ClientSession() as http:
        for _ in range(2):
            async with http.get(f"{sim.rest_url}/api/v3/trades", params={"symbol": "BTCUSDT"}) as r:
                assert r.status == 429 and r.headers["Retry-After"] == "3"
                assert (await r.json())["code"] == -1003
                assert "X-MBX-USED-WEIGHT-1M" in r.headers
        async with http.get(f"{sim.rest_url}/api/v3/trades", params={"symbol": "BTCUSDT"}) as r:
            assert r.status == 200


async def test_admin_endpoints_inject_faults_and_report_state(start_sim: StartSim) -> None:
    sim = await start_sim(SyntheticMarket(["BTCUSDT", "ETHUSDT"], tps=300, seed=6))
    async with (
        aiohttp.ClientSession() as http,
        ws_connect(f"{sim.ws_url}/ws/ethusdt@trade") as ws,
    ):
        await recv(ws)
        body = {"skip": 2, "skip_symbol": "ETHUSDT", "rate_limit": 1, "stall": 0.2}
        async with http.post(f"{sim.rest_url}/admin/faults", json=body) as r:
            assert r.status == 200
            state = await r.json()
        assert state["faults"]["rate_limit_pending"] == 1
        assert state["faults"]["stall_remaining_s"] > 0
        assert state["faults"]["skip_pending"] in ({"ETHUSDT": 2}, {"ETHUSDT": 1}, {})
        for bad in ({"explode": True}, {"skip": -1}, {"skip": 1, "skip_symbol": "NOPEUSDT"}):
            async with http.post(f"{sim.rest_url}/admin/faults", json=bad) as r:
                assert r.status == 400, bad
        async with http.post(f"{sim.rest_url}/admin/faults", data=b"{nope") as r:
            assert r.status == 400
        async with http.get(f"{sim.rest_url}/admin/state") as r:
            state = await r.json()
    assert state["market"] == "synthetic" and state["finished"] is False
    assert state["connections"] == 1 and state["trades_sent"] >= 1
    assert state["symbols"]["ETHUSDT"]["last_trade_id"] >= 1_000_000
    assert state["connection_details"][0]["streams"] == ["ethusdt@trade"]


async def test_drop_through_admin_and_faults_at_start(start_sim: StartSim) -> None:
    sim = await start_sim(SyntheticMarket(["BTCUSDT"], tps=300, seed=7))
    async with aiohttp.ClientSession() as http, ws_connect(f"{sim.ws_url}/ws/btcusdt@trade") as ws:
        await recv(ws)
        async with http.post(f"{sim.rest_url}/admin/faults", json={"drop": True}) as r:
            assert r.status == 200
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                await recv(ws)
