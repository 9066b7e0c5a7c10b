"""The simulated OKX v5 over real sockets: subscribe acks and errors per endpoint, pushes of `trades` and
`trades-all` (compared with a recorded OKX session), text ping/pong, the 4004 idle close, the subscribe
limit, the shutdown notice, and market-data REST."""

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

from simulator.venue import VenueOptions
from simulator.venues.okx import MAX_OPS_PER_HOUR
from tests.collectors.captures import ws_frames
from tests.simulator.conftest import StartVenue, id_rows, replayed, ws_connect
from tests.simulator.venue_clients import OKX_TRADES, OKX_TRADES_ALL, schema_of

BTC_ALL = {"channel": "trades-all", "instId": "BTC-USDT"}


async def recv_json(ws: websockets.ClientConnection, timeout: float = 5.0) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def until(ws: websockets.ClientConnection, key: str) -> dict[str, Any]:
    while key not in (message := await recv_json(ws)):
        pass
    return message


def request(op: str, *args: dict[str, str], request_id: str | None = "7") -> str:
    body: dict[str, Any] = {"op": op, "args": list(args)}
    return json.dumps(body if request_id is None else {"id": request_id, **body})


def test_trades_push_has_the_recorded_fields_and_types(captures_dir: Path) -> None:
    frames = ws_frames(captures_dir / "OKX.ws.1.0")
    pushes = [json.loads(r.payload) for r in frames if '"channel":"trades"' in r.payload]
    rows = [row for push in pushes if "data" in push for row in push["data"]]
    [recorded] = {schema_of(row) for row in rows}
    assert len(rows) > 50
    # the 2022 capture predates count, source and seqId; the fields it has match in name, order and type
    assert tuple(f for f in OKX_TRADES if f[0] in dict(recorded)) == recorded


async def test_business_trades_all_acks_and_pushes(start_venue: StartVenue) -> None:
    sim = await start_venue("okx", tps=1000)
    async with ws_connect(f"{sim.ws_url}/ws/v5/business") as ws:
        eth_all = {"channel": "trades-all", "instId": "ETH-USDT"}
        await ws.send(request("subscribe", BTC_ALL, eth_all))
        first, second = await recv_json(ws), await recv_json(ws)
        conn_id = first["connId"]
        assert first == {"id": "7", "event": "subscribe", "arg": BTC_ALL, "connId": conn_id}
        assert second == {"id": "7", "event": "subscribe", "arg": eth_all, "connId": conn_id}
        assert len(conn_id) == 8 and int(conn_id, 16) >= 0
        pushes = [await recv_json(ws) for _ in range(200)]
    ids: dict[str, list[int]] = {"BTC-USDT": [], "ETH-USDT": []}
    for push in pushes:
        [row] = push["data"]
        assert list(push) == ["arg", "data"] and push["arg"] == {
            "channel": "trades-all",
            "instId": row["instId"],
        }
        assert schema_of(row) == OKX_TRADES_ALL and row["source"] == "0"
        made = next(t for t in sim.history(row["instId"]) if t.trade_id == int(row["tradeId"]))
        assert (row["px"], row["sz"], row["ts"]) == (made.price, made.quantity, str(made.time_ms))
        assert row["side"] == ("sell" if made.is_buyer_maker else "buy")  # the taker's side
        ids[row["instId"]].append(int(row["tradeId"]))
    for seen in ids.values():
        assert len(seen) > 20 and seen == list(range(seen[0], seen[0] + len(seen)))


async def test_public_trades_are_aggregates_of_one(start_venue: StartVenue) -> None:
    sim = await start_venue("okx", tps=1000)
    async with ws_connect(f"{sim.ws_url}/ws/v5/public") as ws:
        await ws.send(request("subscribe", {"channel": "trades", "instId": "ETH-USDT"}, request_id=None))
        ack = await recv_json(ws)
        assert ack == {
            "event": "subscribe",
            "arg": {"channel": "trades", "instId": "ETH-USDT"},
            "connId": ack["connId"],
        }
        rows = [(await recv_json(ws))["data"][0] for _ in range(50)]
    assert all(schema_of(row) == OKX_TRADES and row["count"] == "1" for row in rows)
    ids = [int(row["tradeId"]) for row in rows]
    assert ids == list(range(ids[0], ids[0] + len(ids)))
    assert all(b["seqId"] > a["seqId"] for a, b in itertools.pairwise(rows))


async def test_errors_echo_the_id_and_change_nothing(start_venue: StartVenue) -> None:
    sim = await start_venue("okx", tps=300)
    async with ws_connect(f"{sim.ws_url}/ws/v5/business") as ws:
        wrong = "Wrong URL or channel:{},instId:{} doesn't exist. Please use the correct URL"
        public_trades = {"channel": "trades", "instId": "BTC-USDT"}
        cases = [
            (request("subscribe", public_trades), "60018", wrong.format("trades", "BTC-USDT")),
            (request("subscribe", BTC_ALL, {**BTC_ALL, "instId": "DOGE-USDT"}), "60018",
             wrong.format("trades-all", "DOGE-USDT")),
            (request("subscribe", {**BTC_ALL, "channel": "tickers"}), "60018",
             wrong.format("tickers", "BTC-USDT")),
            (request("subscribe"), "60012", "Invalid request: "),
            (request("login", BTC_ALL), "60012", "Invalid request: "),
            (json.dumps({"id": "x" * 40, "op": "subscribe", "args": [BTC_ALL]}), "60012",
             "Invalid request: "),
        ]  # fmt: skip
        for sent, code, msg in cases:
            await ws.send(sent)
            answer = await recv_json(ws)
            assert answer["event"] == "error" and answer["code"] == code and answer["msg"].startswith(msg), (
                answer
            )
            assert list(answer) == ["id", "event", "code", "msg", "connId"]
        await ws.send("{nope")
        answer = await recv_json(ws)
        assert (
            list(answer) == ["event", "code", "msg", "connId"] and answer["msg"] == "Invalid request: {nope"
        )
        assert sim.state()["connection_details"][0]["streams"] == []
        with pytest.raises(TimeoutError):
            await recv_json(ws, timeout=0.3)


async def test_unsubscribe_stops_the_pushes(start_venue: StartVenue) -> None:
    sim = await start_venue("okx", tps=1000)
    async with ws_connect(f"{sim.ws_url}/ws/v5/business") as ws:
        await ws.send(request("subscribe", BTC_ALL))
        await until(ws, "data")
        await ws.send(request("unsubscribe", BTC_ALL, request_id="8"))
        answer = await until(ws, "event")
        assert answer == {"id": "8", "event": "unsubscribe", "arg": BTC_ALL, "connId": answer["connId"]}
        with pytest.raises(TimeoutError):
            while True:
                await recv_json(ws, timeout=0.3)


async def test_text_ping_is_answered_pong_and_keeps_an_idle_connection(start_venue: StartVenue) -> None:
    sim = await start_venue("okx", tps=5, options=VenueOptions(idle_timeout=0.6))
    loop = asyncio.get_running_loop()
    async with (
        ws_connect(f"{sim.ws_url}/ws/v5/public", ping_interval=None) as silent,
        ws_connect(f"{sim.ws_url}/ws/v5/business", ping_interval=None) as pinging,
    ):
        started = loop.time()
        for _ in range(5):
            await pinging.send("ping")
            assert await asyncio.wait_for(pinging.recv(), 2) == "pong"
            await asyncio.sleep(0.3)
        with pytest.raises(websockets.ConnectionClosed):
            await recv_json(silent)
        assert silent.close_code == 4004 and silent.close_reason == "No data received in 0.6s."
        assert loop.time() - started > 1.4
        await pinging.send("ping")
        assert await asyncio.wait_for(pinging.recv(), 2) == "pong"


async def test_the_idle_close_waits_30_seconds_by_default(start_venue: StartVenue) -> None:
    sim = await start_venue("okx", tps=5)
    assert sim.venue.keepalive.idle is not None
    assert (sim.venue.keepalive.idle.timeout, sim.venue.keepalive.idle.reason) == (
        30.0,
        "No data received in 30s.",
    )


async def test_subscribe_requests_are_limited_per_hour(start_venue: StartVenue) -> None:
    sim = await start_venue("okx", tps=0)
    async with ws_connect(f"{sim.ws_url}/ws/v5/business") as ws:
        for i in range(MAX_OPS_PER_HOUR):
            await ws.send(request("unsubscribe" if i % 2 else "subscribe", BTC_ALL, request_id=str(i)))
        answers = [await recv_json(ws) for _ in range(MAX_OPS_PER_HOUR)]
        assert all(a["event"] in ("subscribe", "unsubscribe") for a in answers)
        await ws.send(request("subscribe", BTC_ALL, request_id="last"))
        assert await until(ws, "event") == {
            "id": "last", "event": "error", "code": "60014", "msg": "Requests too frequent.",
            "connId": answers[0]["connId"],
        }  # fmt: skip
        await ws.send("ping")
        assert await asyncio.wait_for(ws.recv(), 2) == "pong"


async def test_stop_sends_the_upgrade_notice_then_closes_1001(start_venue: StartVenue) -> None:
    sim = await start_venue("okx", tps=5)
    async with ws_connect(f"{sim.ws_url}/ws/v5/business") as ws:
        await ws.send(request("subscribe", BTC_ALL))
        await until(ws, "event")
        stopping = asyncio.create_task(sim.stop())
        notice = await until(ws, "event")
        assert (
            notice["event"] == "notice" and notice["code"] == "64008" and "service upgrade" in notice["msg"]
        )
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                await recv_json(ws)
        assert ws.close_code == 1001
        await stopping


FIRST_ID, COUNT, START_MS = 5000, 600, 1_700_000_000_000


@pytest.fixture
async def http(start_venue: StartVenue, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    rows = id_rows("BTCUSDT", FIRST_ID, COUNT, start_ms=START_MS, price=30000.1, quantity="0.25")
    sim = await replayed(start_venue, "okx", rows, tmp_path)
    async with httpx.AsyncClient(base_url=sim.rest_url) as client:
        yield client


async def history(http: httpx.AsyncClient, **params: object) -> list[int]:
    response = await http.get("/api/v5/market/history-trades", params={k: str(v) for k, v in params.items()})
    body = response.json()
    assert response.status_code == 200 and body["code"] == "0" and body["msg"] == "", body
    return [int(row["tradeId"]) for row in body["data"]]


async def test_history_trades_page_by_trade_id_newest_first(http: httpx.AsyncClient) -> None:
    last = FIRST_ID + COUNT - 1
    assert await history(http, instId="BTC-USDT") == list(range(last, last - 100, -1))
    assert await history(http, instId="BTC-USDT", type=1, after=5200, limit=3) == [5199, 5198, 5197]
    assert await history(http, instId="BTC-USDT", before=5200, limit=3) == [5203, 5202, 5201]
    assert await history(http, instId="BTC-USDT", after=5200, before=5195) == [5199, 5198, 5197, 5196]
    assert await history(http, instId="BTC-USDT", after=FIRST_ID) == []
    assert len(await history(http, instId="BTC-USDT", limit=500)) == 100
    params = {"instId": "BTC-USDT", "after": "5011", "limit": "1"}
    body = (await http.get("/api/v5/market/history-trades", params=params)).json()
    assert body["data"] == [  # 5010 is a row with is_buyer_maker false: the taker bought
        {"instId": "BTC-USDT", "side": "buy", "sz": "0.25", "source": "0", "px": "30010.1", "tradeId": "5010",
         "ts": str(START_MS + 10)}
    ]  # fmt: skip


async def test_latest_trades_and_instruments(http: httpx.AsyncClient) -> None:
    latest = (await http.get("/api/v5/market/trades", params={"instId": "BTC-USDT", "limit": "1000"})).json()[
        "data"
    ]
    assert [int(r["tradeId"]) for r in latest] == list(
        range(FIRST_ID + COUNT - 1, FIRST_ID + COUNT - 501, -1)
    )
    spot = (await http.get("/api/v5/public/instruments", params={"instType": "SPOT"})).json()
    [instrument] = spot["data"]
    assert spot["code"] == "0" and instrument["instId"] == "BTC-USDT" and instrument["state"] == "live"
    assert (instrument["instType"], instrument["baseCcy"], instrument["quoteCcy"]) == ("SPOT", "BTC", "USDT")
    swaps = (await http.get("/api/v5/public/instruments", params={"instType": "SWAP"})).json()
    assert swaps == {"code": "0", "msg": "", "data": []}


async def test_rest_errors(http: httpx.AsyncClient) -> None:
    cases = [
        (
            "/api/v5/market/history-trades",
            {"instId": "DOGE-USDT"},
            200,
            "51001",
            "Instrument ID doesn't exist.",
        ),
        ("/api/v5/market/history-trades", {}, 400, "50014", "instId cannot be empty"),
        (
            "/api/v5/market/history-trades",
            {"instId": "BTC-USDT", "type": "2"},
            400,
            "51000",
            "Parameter type error",
        ),
        (
            "/api/v5/market/history-trades",
            {"instId": "BTC-USDT", "after": "x"},
            400,
            "51000",
            "Parameter after error",
        ),
        (
            "/api/v5/market/trades",
            {"instId": "BTC-USDT", "limit": "0"},
            400,
            "51000",
            "Parameter limit error",
        ),
        ("/api/v5/public/instruments", {}, 400, "50014", "instType cannot be empty"),
        ("/api/v5/public/instruments", {"instType": "BOND"}, 400, "51000", "Parameter instType error"),
    ]
    for path, params, status, code, msg in cases:
        response = await http.get(path, params=params)
        assert response.status_code == status and response.json() == {"code": code, "msg": msg, "data": []}
