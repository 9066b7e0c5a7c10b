"""Market streams over real websockets on loopback: formats, live control messages, limits, keep-alive."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import aiohttp
import pytest
import websockets

from simulator.markets import SyntheticMarket
from tests.simulator.conftest import StartSim, ws_connect

TRADE_KEYS = ["e", "E", "s", "t", "p", "q", "T", "m", "M"]
EIGHT_DECIMALS = re.compile(r"^\d+\.\d{8}$")


async def recv_json(ws: websockets.ClientConnection, timeout: float = 5.0) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


def assert_trade_event(event: dict[str, Any], symbol: str) -> None:
    assert list(event) == TRADE_KEYS
    assert event["e"] == "trade" and event["s"] == symbol and event["M"] is True
    assert type(event["E"]) is int and type(event["T"]) is int and type(event["t"]) is int
    assert event["E"] == event["T"] and event["T"] > 1_600_000_000_000
    assert isinstance(event["m"], bool)
    assert EIGHT_DECIMALS.match(event["p"]) and EIGHT_DECIMALS.match(event["q"])


async def test_raw_stream_sends_bare_trade_events_with_consecutive_ids(start_sim: StartSim) -> None:
    sim = await start_sim(SyntheticMarket(["BTCUSDT", "ETHUSDT"], tps=3000, seed=1))
    async with ws_connect(f"{sim.ws_url}/ws/btcusdt@trade") as ws:
        events = [await recv_json(ws) for _ in range(200)]
    for event in events:
        assert_trade_event(event, "BTCUSDT")
    ids = [e["t"] for e in events]
    assert ids == list(range(ids[0], ids[0] + len(ids)))
    history = {t.trade_id: t for t in sim.history("BTCUSDT")}
    assert all(history[e["t"]].price == e["p"] and history[e["t"]].quantity == e["q"] for e in events)


async def test_combined_stream_wraps_events_per_stream(start_sim: StartSim) -> None:
    sim = await start_sim(SyntheticMarket(["BTCUSDT", "ETHUSDT", "SOLUSDT"], tps=3000, seed=2))
    async with ws_connect(f"{sim.ws_url}/stream?streams=btcusdt@trade/ethusdt@trade") as ws:
        frames = [await recv_json(ws) for _ in range(300)]
    ids: dict[str, list[int]] = {"BTCUSDT": [], "ETHUSDT": []}
    for wrapped in frames:
        assert list(wrapped) == ["stream", "data"]
        symbol = wrapped["data"]["s"]
        assert wrapped["stream"] == f"{symbol.lower()}@trade"
        assert_trade_event(wrapped["data"], symbol)
        ids[symbol].append(wrapped["data"]["t"])
    for seen in ids.values():
        assert len(seen) > 10 and seen == list(range(seen[0], seen[0] + len(seen)))


async def test_agg_trade_stream_and_microsecond_time_unit(start_sim: StartSim) -> None:
    sim = await start_sim(SyntheticMarket(["BTCUSDT"], tps=2000, seed=3))
    async with ws_connect(f"{sim.ws_url}/ws/btcusdt@aggTrade") as ws:
        agg = await recv_json(ws)
    assert list(agg) == ["e", "E", "s", "a", "p", "q", "f", "l", "T", "m", "M"]
    assert agg["e"] == "aggTrade" and agg["a"] == agg["f"] == agg["l"]
    async with ws_connect(f"{sim.ws_url}/ws/btcusdt@trade?timeUnit=MICROSECOND") as ws:
        event = await recv_json(ws)
    assert event["T"] > 1_600_000_000_000_000 and event["E"] == event["T"]
    trade = next(t for t in sim.history("BTCUSDT") if t.trade_id == event["t"])
    assert event["T"] == trade.time_ms * 1000


async def test_live_subscribe_list_and_unsubscribe(start_sim: StartSim) -> None:
    sim = await start_sim(SyntheticMarket(["BTCUSDT", "ETHUSDT"], tps=2000, seed=4))
    async with ws_connect(f"{sim.ws_url}/ws") as ws:
        await ws.send(
            json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@trade", "ethusdt@trade"], "id": 1})
        )
        assert await recv_json(ws) == {"result": None, "id": 1}
        first = [await recv_json(ws) for _ in range(20)]
        assert {e["s"] for e in first} == {"BTCUSDT", "ETHUSDT"}
        await ws.send(json.dumps({"method": "UNSUBSCRIBE", "params": ["ethusdt@trade"], "id": 2}))
        while "result" not in (message := await recv_json(ws)):
            pass
        assert message == {"result": None, "id": 2}
        after = [await recv_json(ws) for _ in range(30)]
        assert {e["s"] for e in after} == {"BTCUSDT"}
        await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 3}))
        while "result" not in (message := await recv_json(ws)):
            pass
        assert message == {"result": ["btcusdt@trade"], "id": 3}
        await ws.send("{not json")
        while "code" not in (message := await recv_json(ws)):
            pass
        assert message["code"] == 3 and message["msg"].startswith("Invalid JSON")


async def test_set_property_combined_wraps_a_raw_connection(start_sim: StartSim) -> None:
    sim = await start_sim(SyntheticMarket(["BTCUSDT"], tps=2000, seed=5))
    async with ws_connect(f"{sim.ws_url}/ws/btcusdt@trade") as ws:
        assert "e" in await recv_json(ws)
        await ws.send(json.dumps({"method": "SET_PROPERTY", "params": ["combined", True], "id": 5}))
        while "result" not in (message := await recv_json(ws)):
            pass
        assert message == {"result": None, "id": 5}
        wrapped = await recv_json(ws)
        assert wrapped["stream"] == "btcusdt@trade" and wrapped["data"]["s"] == "BTCUSDT"


async def test_unknown_symbol_is_acknowledged_and_silent(start_sim: StartSim) -> None:
    sim = await start_sim(SyntheticMarket(["BTCUSDT"], tps=2000, seed=6))
    async with ws_connect(f"{sim.ws_url}/ws") as ws:
        await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["nosuchcoin@trade"], "id": 1}))
        assert await recv_json(ws) == {"result": None, "id": 1}
        with pytest.raises(TimeoutError):
            await recv_json(ws, timeout=0.3)
        await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["BTCUSDT@trade"], "id": 2}))
        assert await recv_json(ws) == {"code": 2, "msg": "Invalid request: invalid stream", "id": 2}


async def test_invalid_or_too_many_streams_in_the_url_are_refused(start_sim: StartSim) -> None:
    sim = await start_sim(SyntheticMarket(["BTCUSDT"], tps=10, seed=7))
    with pytest.raises(websockets.InvalidStatus) as bad:
        await ws_connect(f"{sim.ws_url}/ws/btcusdt@nonsense")
    assert bad.value.response.status_code == 400
    streams = "/".join(f"c{i}usdt@trade" for i in range(1025))
    with pytest.raises(websockets.InvalidStatus):
        await ws_connect(f"{sim.ws_url}/stream?streams={streams}", max_size=None)
    async with ws_connect(f"{sim.ws_url}/stream?streams={streams[: streams.rindex('/')]}"):
        pass


async def test_more_than_5_incoming_messages_per_second_disconnects(start_sim: StartSim) -> None:
    sim = await start_sim(SyntheticMarket(["BTCUSDT"], tps=10, seed=8))
    async with ws_connect(f"{sim.ws_url}/ws", ping_interval=None) as ws:
        for i in range(5):
            await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
        for i in range(5):
            assert await recv_json(ws) == {"result": [], "id": i}
        await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 6}))
        with pytest.raises(websockets.ConnectionClosed):
            await recv_json(ws)
        assert ws.close_code == 1008


async def test_server_pings_and_drops_a_client_that_does_not_answer(start_sim: StartSim) -> None:
    sim = await start_sim(SyntheticMarket(["BTCUSDT"], tps=5, seed=9), ping_interval=0.3, ping_timeout=0.8)
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"{sim.ws_url}/ws", autoping=False)
        pings, loop = [], asyncio.get_running_loop()
        started = loop.time()
        while True:
            msg = await asyncio.wait_for(ws.receive(), 5.0)
            if msg.type is not aiohttp.WSMsgType.PING:
                break
            pings.append(loop.time() - started)
        assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.ERROR)
        assert len(pings) >= 2 and 0.2 < pings[0] < 0.6
        assert 0.8 <= loop.time() - started < 3.0
        await ws.close()
    await asyncio.sleep(0.05)
    assert sim.connection_count == 0


async def test_a_client_that_answers_pings_stays_connected(start_sim: StartSim) -> None:
    sim = await start_sim(SyntheticMarket(["BTCUSDT"], tps=5, seed=10), ping_interval=0.3, ping_timeout=0.5)
    async with ws_connect(f"{sim.ws_url}/ws", ping_interval=None) as ws:
        await asyncio.sleep(1.6)
        await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 1}))
        assert await recv_json(ws) == {"result": [], "id": 1}
    assert sim.connection_count <= 1


async def test_stop_sends_server_shutdown_and_closes_with_1001(start_sim: StartSim) -> None:
    sim = await start_sim(SyntheticMarket(["BTCUSDT"], tps=5, seed=11))
    async with ws_connect(f"{sim.ws_url}/stream?streams=btcusdt@trade") as ws:
        await asyncio.sleep(0.05)
        stopping = asyncio.create_task(sim.stop())
        message = await recv_json(ws)
        while message.get("stream") == "btcusdt@trade":
            message = await recv_json(ws)
        assert message["stream"] == "!serverShutdown" and message["data"]["e"] == "serverShutdown"
        with pytest.raises(websockets.ConnectionClosed):
            await recv_json(ws)
        assert ws.close_code == 1001
        await stopping
