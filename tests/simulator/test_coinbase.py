"""The simulated Coinbase Exchange over real sockets: the feed's subscribe conversation, match and heartbeat
messages (compared with a recorded Coinbase session), limits, and REST paging with CB-BEFORE/CB-AFTER."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from simulator.venue import VenueOptions
from tests.collectors.captures import ws_frames
from tests.simulator.conftest import StartVenue, id_rows, replayed, ws_connect
from tests.simulator.venue_clients import COINBASE_MATCH, schema_of

ISO_MICROS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
SUBSCRIBE = {"type": "subscribe", "product_ids": ["BTC-USD"], "channels": ["matches"]}


async def recv_json(ws: websockets.ClientConnection, timeout: float = 5.0) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def until(ws: websockets.ClientConnection, kind: str) -> dict[str, Any]:
    while (message := await recv_json(ws))["type"] != kind:
        pass
    return message


def test_match_has_the_recorded_fields_and_types(captures_dir: Path) -> None:
    frames = ws_frames(captures_dir / "COINBASE.ws.28.0")
    recorded = [json.loads(r.payload) for r in frames if 'match"' in r.payload]
    matches = [m for m in recorded if m.get("type") in ("match", "last_match")]
    assert len(matches) > 100 and {schema_of(m) for m in matches} == {COINBASE_MATCH}


async def test_subscribe_answers_subscriptions_then_last_match_then_matches(start_venue: StartVenue) -> None:
    sim = await start_venue("coinbase", tps=300)
    await asyncio.sleep(0.2)  # some history, so that there is a last match
    async with ws_connect(f"{sim.ws_url}/") as ws:
        await ws.send(
            json.dumps(
                {
                    "type": "subscribe",
                    "product_ids": ["ETH-USD"],
                    "channels": ["matches", {"name": "heartbeat", "product_ids": ["BTC-USD"]}],
                }
            )
        )
        assert await recv_json(ws) == {
            "type": "subscriptions",
            "channels": [
                {"name": "matches", "product_ids": ["ETH-USD"]},
                {"name": "heartbeat", "product_ids": ["BTC-USD"]},
            ],
        }
        last = await recv_json(ws)
        assert last["type"] == "last_match" and last["product_id"] == "ETH-USD"
        matches = [await until(ws, "match") for _ in range(30)]
    ids = [last["trade_id"]] + [m["trade_id"] for m in matches]
    assert ids == list(range(ids[0], ids[0] + len(ids)))
    history = {t.trade_id: t for t in sim.history("ETH-USD")}
    for message in [last, *matches]:
        assert schema_of(message) == COINBASE_MATCH
        made = history[message["trade_id"]]
        assert message["side"] == ("buy" if made.is_buyer_maker else "sell")  # the maker's side
        assert (message["price"], message["size"]) == (made.price, made.quantity)
        assert ISO_MICROS.match(message["time"]) and message["time"].endswith(
            f"{made.time_ms % 1000:03d}000Z"
        )
        assert UUID.match(message["maker_order_id"]) and UUID.match(message["taker_order_id"])
    sequences = [m["sequence"] for m in [last, *matches]]
    assert all(b - a > 1 for a, b in itertools.pairwise(sequences))
    assert len({m["maker_order_id"] for m in matches}) == len(matches)


async def test_channels_as_names_and_unsubscribe(start_venue: StartVenue) -> None:
    sim = await start_venue("coinbase", tps=1000)
    async with ws_connect(f"{sim.ws_url}/") as ws:
        both = {"type": "subscribe", "product_ids": ["BTC-USD", "ETH-USD"], "channels": ["matches"]}
        await ws.send(json.dumps(both))
        answer = await until(ws, "subscriptions")
        assert answer["channels"] == [{"name": "matches", "product_ids": ["BTC-USD", "ETH-USD"]}]
        assert {(await until(ws, "match"))["product_id"] for _ in range(40)} == {"BTC-USD", "ETH-USD"}
        await ws.send(
            json.dumps({"type": "unsubscribe", "product_ids": ["BTC-USD"], "channels": ["matches"]})
        )
        answer = await until(ws, "subscriptions")
        assert answer["channels"] == [{"name": "matches", "product_ids": ["ETH-USD"]}]
        assert {(await until(ws, "match"))["product_id"] for _ in range(40)} == {"ETH-USD"}
        await ws.send(json.dumps({"type": "unsubscribe", "channels": ["matches"]}))
        assert (await until(ws, "subscriptions"))["channels"] == []
        with pytest.raises(TimeoutError):
            while True:  # matches already in flight may still arrive, then nothing
                await recv_json(ws, timeout=0.3)


async def test_heartbeats_every_interval_with_the_last_trade_id(start_venue: StartVenue) -> None:
    sim = await start_venue("coinbase", tps=20, options=VenueOptions(heartbeat_interval=0.2))
    loop = asyncio.get_running_loop()
    async with ws_connect(f"{sim.ws_url}/") as ws:
        channels = ["matches", "heartbeat"]
        await ws.send(json.dumps({"type": "subscribe", "product_ids": ["BTC-USD"], "channels": channels}))
        beats: list[tuple[float, dict[str, Any]]] = []
        last_match = 0
        while len(beats) < 8:
            message = await recv_json(ws)
            if message["type"] in ("match", "last_match"):
                last_match = message["trade_id"]
            elif message["type"] == "heartbeat":
                beats.append((loop.time(), message))
                assert message["last_trade_id"] == last_match  # matches so far were all sent before it
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(beats)]
    assert all(0.12 < gap < 0.35 for gap in gaps), gaps
    for _, beat in beats:
        assert list(beat) == ["type", "sequence", "last_trade_id", "product_id", "time"]
        assert beat["product_id"] == "BTC-USD" and ISO_MICROS.match(beat["time"])
    assert [b["sequence"] for _, b in beats] == sorted(b["sequence"] for _, b in beats)


async def test_refused_requests_answer_an_error_and_change_nothing(start_venue: StartVenue) -> None:
    sim = await start_venue("coinbase", tps=200)
    async with ws_connect(f"{sim.ws_url}/") as ws:
        refusals = {
            json.dumps(
                {**SUBSCRIBE, "product_ids": ["BTC-USD", "DOGE-USD"]}
            ): "DOGE-USD is not a valid product",
            json.dumps({**SUBSCRIBE, "channels": ["level3"]}): "level3 is not a valid channel",
            json.dumps(
                {**SUBSCRIBE, "type": "subscribes"}
            ): "type 'subscribes' is not subscribe or unsubscribe",
            json.dumps({**SUBSCRIBE, "product_ids": []}): "No product ids provided",
            '{"type": "subscribe",': "Malformed JSON",
            "[1, 2]": "Malformed JSON",
            b"\xff\xfe": "Malformed JSON",
        }
        for request, reason in refusals.items():
            await ws.send(request)
            assert await recv_json(ws) == {
                "type": "error",
                "message": "Failed to subscribe",
                "reason": reason,
            }
        await ws.send(json.dumps(SUBSCRIBE))
        answer = await until(ws, "subscriptions")
        assert answer["channels"] == [{"name": "matches", "product_ids": ["BTC-USD"]}]
        assert (await until(ws, "match"))["product_id"] == "BTC-USD"


async def test_a_connection_that_does_not_subscribe_is_closed(start_venue: StartVenue) -> None:
    sim = await start_venue("coinbase", tps=50, options=VenueOptions(subscribe_timeout=0.5))
    loop = asyncio.get_running_loop()
    async with ws_connect(f"{sim.ws_url}/") as idle, ws_connect(f"{sim.ws_url}/") as busy:
        await busy.send(json.dumps(SUBSCRIBE))
        started = loop.time()
        with pytest.raises(websockets.ConnectionClosed):
            await recv_json(idle)
        assert idle.close_code == 1008 and 0.4 < loop.time() - started < 2.0
        await asyncio.sleep(0.3)
        assert (await until(busy, "match"))["product_id"] == "BTC-USD"


async def test_more_than_1000_client_messages_in_100_seconds_close_the_connection(
    start_venue: StartVenue,
) -> None:
    sim = await start_venue("coinbase", tps=5)
    async with ws_connect(f"{sim.ws_url}/", ping_interval=None) as ws:
        for _ in range(1000):
            await ws.send('{"type":"unsubscribe","channels":["matches"]}')
        answers = [await recv_json(ws) for _ in range(1000)]
        assert all(a == {"type": "subscriptions", "channels": []} for a in answers)
        await ws.send('{"type":"unsubscribe","channels":["matches"]}')
        with pytest.raises(websockets.ConnectionClosed):
            await recv_json(ws)
        assert ws.close_code == 1008


FIRST_ID, COUNT, START_MS = 100, 2500, 1_700_000_000_000


@pytest.fixture
async def http(start_venue: StartVenue, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    rows = id_rows("BTC-USD", FIRST_ID, COUNT, start_ms=START_MS, price=60000.5, quantity="0.001")
    sim = await replayed(start_venue, "coinbase", rows, tmp_path)
    async with httpx.AsyncClient(base_url=sim.rest_url) as client:
        yield client


async def page(http: httpx.AsyncClient, **params: object) -> tuple[list[int], httpx.Response]:
    response = await http.get("/products/BTC-USD/trades", params={k: str(v) for k, v in params.items()})
    assert response.status_code == 200, response.text
    return [row["trade_id"] for row in response.json()], response


async def test_trades_page_newest_first_with_cursor_headers(http: httpx.AsyncClient) -> None:
    last = FIRST_ID + COUNT - 1
    ids, response = await page(http)
    assert ids == list(range(last, last - 1000, -1))
    assert (response.headers["CB-BEFORE"], response.headers["CB-AFTER"]) == (str(last), str(last - 999))
    ids, response = await page(http, after=1000, limit=5)
    assert ids == [999, 998, 997, 996, 995] and response.headers["CB-AFTER"] == "995"
    ids, response = await page(http, before=1000, limit=5)
    assert ids == [1005, 1004, 1003, 1002, 1001] and response.headers["CB-BEFORE"] == "1005"
    ids, _ = await page(http, after=1000, before=990, limit=100)
    assert ids == list(range(999, 990, -1))
    ids, _ = await page(http, after=FIRST_ID + 2, limit=10)
    assert ids == [FIRST_ID + 1, FIRST_ID]
    ids, response = await page(http, after=FIRST_ID)
    assert ids == [] and "CB-AFTER" not in response.headers
    ids, _ = await page(http, limit=5000)
    assert len(ids) == 1000


async def test_trade_rows_and_products(http: httpx.AsyncClient) -> None:
    rows = (await http.get("/products/BTC-USD/trades", params={"after": "111", "limit": "1"})).json()
    assert rows == [  # 110 is a row with is_buyer_maker false: the maker sold
        {
            "time": "2023-11-14T22:13:20.010000Z",
            "trade_id": 110,
            "price": "60010.5",
            "size": "0.001",
            "side": "sell",
        }
    ]
    products = (await http.get("/products")).json()
    assert [(p["id"], p["base_currency"], p["quote_currency"], p["status"]) for p in products] == [
        ("BTC-USD", "BTC", "USD", "online")
    ]
    assert (await http.get("/products/BTC-USD")).json()["id"] == "BTC-USD"


async def test_rest_errors(http: httpx.AsyncClient) -> None:
    for path in ("/products/DOGE-USD/trades", "/products/DOGE-USD"):
        missing = await http.get(path)
        assert missing.status_code == 404 and missing.json() == {"message": "NotFound"}
    for params in ({"limit": "0"}, {"limit": "ten"}, {"after": "-5"}, {"before": "1.5"}):
        bad = await http.get("/products/BTC-USD/trades", params=params)
        assert bad.status_code == 400 and set(bad.json()) == {"message"}, params
