"""The simulated Kraken Spot WebSocket v2 over real sockets: the status greeting, per-symbol acks, the
50-trade snapshot, updates with JSON-number prices read exactly by the real adapter, heartbeats, ping,
the refusals, and REST Trades paged forward by `since`/`last` (and a repair by the real adapter) and
AssetPairs."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from collectors.adapter import ExchangeAdapter, Gap, RestRequest
from collectors.registry import create_adapter
from simulator.exchange import SimulatedExchange
from simulator.venue import VenueOptions
from tests.simulator.conftest import StartVenue, replayed, ws_connect
from tests.simulator.venue_clients import KRAKEN_TRADE, Number, schema_of

ROOT = Path(__file__).resolve().parents[2]


def subscribe(*symbols: str, snapshot: bool | None = True, req_id: int = 42, channel: str = "trade") -> str:
    params: dict[str, Any] = {"channel": channel, "symbol": list(symbols)}
    if snapshot is not None:
        params["snapshot"] = snapshot
    return json.dumps({"method": "subscribe", "params": params, "req_id": req_id})


async def recv_json(ws: websockets.ClientConnection, timeout: float = 5.0) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout), parse_float=Number)


async def adapter_of(sim: SimulatedExchange) -> ExchangeAdapter:
    """The real collector adapter, knowing the pairs the simulator lists in AssetPairs."""
    async with httpx.AsyncClient(base_url=sim.rest_url) as http:
        body = (await http.get("/0/public/AssetPairs")).content
    return create_adapter("kraken", create_adapter("kraken").parse_symbols(body))


def test_trade_rows_have_the_fields_and_types_of_the_recorded_frames() -> None:
    lines = (ROOT / "tests/fixtures/venues/kraken/frames.txt").read_text().splitlines()
    messages = [
        json.loads(line, parse_float=Number) for line in lines if line.startswith('{"channel":"trade"')
    ]
    rows = [row for m in messages if isinstance(m.get("data"), list) for row in m["data"]]
    assert len(rows) > 3 and schema_of(rows[0]) == KRAKEN_TRADE


async def test_status_acks_snapshot_then_updates_read_exactly_by_the_adapter(start_venue: StartVenue) -> None:
    sim = await start_venue("kraken", tps=1000)
    adapter = await adapter_of(sim)
    async with asyncio.timeout(10):  # history for the snapshots
        while min(len(sim.history(pair)) for pair in ("BTC/USD", "ETH/USD")) < 60:
            await asyncio.sleep(0.05)
    async with ws_connect(f"{sim.ws_url}/v2") as ws:
        status = await recv_json(ws)
        await ws.send(subscribe("BTC/USD", "ETH/USD"))
        frames = [await asyncio.wait_for(ws.recv(), 5) for _ in range(300)]
    assert status["channel"] == "status" and status["data"][0]["system"] == "online"
    messages = [json.loads(f, parse_float=Number) for f in frames]
    for index, pair in ((0, "BTC/USD"), (2, "ETH/USD")):
        ack, snapshot = messages[index], messages[index + 1]
        assert (ack["method"], ack["success"], ack["req_id"]) == ("subscribe", True, 42)
        assert ack["result"] == {"channel": "trade", "snapshot": True, "symbol": pair}
        assert snapshot["type"] == "snapshot" and len(snapshot["data"]) == 50
        assert {row["symbol"] for row in snapshot["data"]} == {pair}
    trades = [t for frame in frames for t in adapter.parse(frame, 1)]
    for pair in ("BTC/USD", "ETH/USD"):
        ids = [t.sequence for t in trades if t.raw_symbol == pair]
        assert len(ids) > 60 and ids == list(range(ids[0], ids[0] + len(ids)))  # snapshot, then updates
        made = {t.trade_id: t for t in sim.history(pair)}
        for trade in (t for t in trades if t.raw_symbol == pair):
            source = made[int(trade.trade_id)]
            assert (trade.price, trade.quantity) == (source.price, source.quantity)  # the digits as made
            assert trade.ts_event == source.time_ms * 1_000_000
            assert (trade.side.value == "sell") is source.is_buyer_maker
    updates = [m for m in messages if m.get("type") == "update"]
    assert updates and all(len(m["data"]) == 1 and schema_of(m["data"][0]) == KRAKEN_TRADE for m in updates)


async def test_heartbeats_ping_refusals_and_unsubscribe(start_venue: StartVenue) -> None:
    sim = await start_venue("kraken", tps=5, options=VenueOptions(heartbeat_interval=0.1))
    async with ws_connect(f"{sim.ws_url}/v2") as ws:
        assert (await recv_json(ws))["channel"] == "status"
        with pytest.raises(TimeoutError):  # nothing subscribed: no heartbeat
            await recv_json(ws, timeout=0.35)
        await ws.send(json.dumps({"method": "ping", "req_id": 7}))
        pong = await recv_json(ws)
        assert (pong["method"], pong["req_id"]) == ("pong", 7) and pong["time_in"] <= pong["time_out"]
        await ws.send(subscribe("XBT/USD", "BTC/USD", snapshot=None))
        refused, ack = await recv_json(ws), await recv_json(ws)
        assert refused["error"] == "Currency pair not supported XBT/USD" and refused["symbol"] == "XBT/USD"
        assert (refused["success"], refused["method"], refused["req_id"]) == (False, "subscribe", 42)
        assert ack["result"] == {"channel": "trade", "snapshot": False, "symbol": "BTC/USD"}  # the default
        await ws.send(subscribe("BTC/USD", channel="book"))
        await ws.send(
            json.dumps({"method": "subscribe", "params": {"channel": "trade", "symbol": ["BTC/USD"]}})
        )
        await ws.send(json.dumps({"method": "shout"}))
        answers = [await recv_json(ws) for _ in range(12)]
        errors = [a["error"] for a in answers if "error" in a]
        assert errors == ["Channel not supported: book", "Already subscribed", "Method not supported"]
        assert {"channel": "heartbeat"} in answers
        await ws.send(
            json.dumps({"method": "unsubscribe", "params": {"channel": "trade", "symbol": ["BTC/USD"]}})
        )
        while (answer := await recv_json(ws)).get("method") != "unsubscribe":
            pass
        assert answer["success"] is True and answer["result"] == {"channel": "trade", "symbol": "BTC/USD"}
        await asyncio.sleep(0.15)  # what was in flight
        with pytest.raises(TimeoutError):  # no more trades, no more heartbeats
            while True:
                await recv_json(ws, timeout=0.35)
    assert sim.state()["client_errors"] == 4


async def test_snapshot_leaves_out_skipped_ids_which_rest_serves(start_venue: StartVenue) -> None:
    sim = await start_venue("kraken", tps=300)
    adapter = await adapter_of(sim)
    async with ws_connect(f"{sim.ws_url}/v2") as ws:
        await ws.send(subscribe("BTC/USD", snapshot=False))
        while not adapter.parse(await asyncio.wait_for(ws.recv(), 5), 1):
            pass
        sim.skip_ids(3, "BTC-USD")
        seen = 0
        while seen < 10:
            seen += len(adapter.parse(await asyncio.wait_for(ws.recv(), 5), 1))
    async with ws_connect(f"{sim.ws_url}/v2") as ws:
        await ws.send(subscribe("BTC/USD"))
        while (message := await recv_json(ws)).get("type") != "snapshot":
            pass
    ids = [row["trade_id"] for row in message["data"]]
    [(before, after)] = [(a, b) for a, b in itertools.pairwise(ids) if b != a + 1]
    assert after - before == 4 and len(ids) <= 50  # the latest 50 at most, withheld ones left out
    async with httpx.AsyncClient(base_url=sim.rest_url) as http:
        rows = (await http.get("/0/public/Trades", params={"pair": "XBTUSD"})).json()["result"]["XXBTZUSD"]
    assert [row[6] for row in rows if before < row[6] < after] == [before + 1, before + 2, before + 3]


START_MS = 1_700_000_000_000
OFFSETS = [0, 0, 1, 1, 1, 2, 3, 3, 4, 5, 5, 5, 6, 9]  # ms after START_MS: several trades share a millisecond


@pytest.fixture
async def kraken(start_venue: StartVenue, tmp_path: Path) -> SimulatedExchange:
    rows = [
        [START_MS + offset, "BTC/USD", 900 + i, f"{30000 + i}.10", "0.00010000", "true" if i % 2 else "false"]
        for i, offset in enumerate(OFFSETS)
    ]
    return await replayed(start_venue, "kraken", rows, tmp_path)


@pytest.fixture
async def http(kraken: SimulatedExchange) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=kraken.rest_url) as client:
        yield client


async def trades(http: httpx.AsyncClient, **params: str) -> tuple[list[list[Any]], str, str]:
    response = await http.get("/0/public/Trades", params=params)
    body = response.json()
    assert response.status_code == 200 and body["error"] == [], body
    return body["result"]["XXBTZUSD"], body["result"]["last"], response.text


async def test_trades_page_forward_by_since_and_last_never_splitting_a_millisecond(
    http: httpx.AsyncClient,
) -> None:
    since, pages = str((START_MS - 1) * 1_000_000), []
    while True:
        rows, last, _ = await trades(http, pair="XBTUSD", since=since, count="4")
        if not rows:
            assert last == since
            break
        pages.append([row[6] for row in rows])
        assert last == str(round(float(rows[-1][2]) * 1000) * 1_000_000)
        since = last
    assert pages == [[900, 901], [902, 903, 904, 905], [906, 907, 908], [909, 910, 911, 912], [913]]
    rows, last, text = await trades(http, pair="BTC/USD", since=str(START_MS // 1000), count="2")
    assert [row[6] for row in rows] == [902, 903]  # seconds are accepted too; since is exclusive
    assert '["30002.10","0.00010000",1700000000.001,"b","' in text  # time: seconds as a JSON number
    latest, _, _ = await trades(http, pair="XXBTZUSD", count="3")
    assert [row[6] for row in latest] == [911, 912, 913]  # no since: the latest
    assert rows[1][3] == "s" and rows[1][4] in ("m", "l") and rows[1][5] == ""


async def test_the_adapter_repairs_a_gap_from_the_simulators_pages(
    kraken: SimulatedExchange, http: httpx.AsyncClient
) -> None:
    adapter = await adapter_of(kraken)
    gap = Gap("BTC/USD", 903, 911, after_ns=(START_MS + 1) * 1_000_000)
    request: RestRequest | None = adapter.repair_request(gap)
    repaired = []
    while request is not None:
        body = (await http.get(request.path, params=list(request.params))).content
        page = adapter.repair_page(gap, request, body, 1)
        repaired.extend(page.trades)
        request = page.next
    assert [t.sequence for t in repaired] == list(range(903, 912))
    made = {t.trade_id: t for t in kraken.history("BTC/USD")}
    assert all(t.price == made[t.sequence].price and t.backfilled for t in repaired if t.sequence)


async def test_asset_pairs_and_rest_errors(http: httpx.AsyncClient) -> None:
    body = (await http.get("/0/public/AssetPairs")).json()
    pair = body["result"]["XXBTZUSD"]
    assert (pair["altname"], pair["wsname"], pair["base"], pair["quote"]) == (
        "XBTUSD",
        "XBT/USD",
        "XXBT",
        "ZUSD",
    )
    [info] = create_adapter("kraken").parse_symbols((await http.get("/0/public/AssetPairs")).content)
    assert (info.raw_symbol, info.symbol) == ("BTC/USD", "BTC-USD")
    assert (await http.get("/0/public/AssetPairs", params={"pair": "XBTUSD"})).json() == body
    for params, error in [
        ({"pair": "DOGEUSD"}, "EQuery:Unknown asset pair"),
        ({}, "EQuery:Unknown asset pair"),
        ({"pair": "XBTUSD", "since": "yesterday"}, "EGeneral:Invalid arguments"),
        ({"pair": "XBTUSD", "count": "0"}, "EGeneral:Invalid arguments"),
        ({"pair": "XBTUSD", "count": "-3"}, "EGeneral:Invalid arguments"),
    ]:
        response = await http.get("/0/public/Trades", params=params)
        assert response.status_code == 200 and response.json() == {"error": [error]}, params
    unknown = await http.get("/0/public/AssetPairs", params={"pair": "NOPE"})
    assert unknown.json() == {"error": ["EQuery:Unknown asset pair"]}
