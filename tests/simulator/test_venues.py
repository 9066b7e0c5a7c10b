"""Behaviour every simulated venue shares, tested once per venue over real websockets and HTTP on loopback:
trade delivery, the faults (skip, malformed, drop, stall, rate limit), on-demand and replayed markets, the
admin state and the symbol spelling checks."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import websockets

from core.errors import ConfigError
from simulator.exchange import SimulatedExchange
from simulator.malformed import OVERSIZED_BYTES, TradeFields, holder_of
from simulator.markets import ReplayMarket, SyntheticMarket
from simulator.venues import make_venue
from tests.simulator.conftest import VENUE_NAMES, StartVenue, write_csv, ws_connect
from tests.simulator.venue_clients import CLIENTS, RATE_LIMITED_BODY, Trade, VenueClient

pytestmark = pytest.mark.parametrize("name", VENUE_NAMES)


async def recv(ws: websockets.ClientConnection, timeout: float = 5.0) -> bytes:
    frame = await asyncio.wait_for(ws.recv(decode=False), timeout)
    return frame if isinstance(frame, bytes) else frame.encode()


async def subscribed(
    sim: SimulatedExchange, client: VenueClient, symbols: list[str], **kwargs: Any
) -> websockets.ClientConnection:
    ws = await ws_connect(f"{sim.ws_url}{client.path}", **{"max_size": None, **kwargs})
    for message in client.subscribe(symbols):
        await ws.send(message)
    return ws


async def next_trade(ws: websockets.ClientConnection, client: VenueClient, sim: SimulatedExchange) -> Trade:
    while (trade := client.trade(await recv(ws), sim.symbols)) is None:
        pass
    return trade


async def test_trades_arrive_with_consecutive_ids_as_recorded(name: str, start_venue: StartVenue) -> None:
    sim = await start_venue(name, tps=2000)
    client = CLIENTS[name]
    ws = await subscribed(sim, client, list(client.symbols))
    async with ws:
        trades = [await next_trade(ws, client, sim) for _ in range(300)]
    for symbol in client.symbols:
        ids = [t.trade_id for t in trades if t.symbol == symbol]
        assert len(ids) > 20 and ids == list(range(ids[0], ids[0] + len(ids)))
        history = {t.trade_id: t for t in sim.history(symbol)}
        for trade in (t for t in trades if t.symbol == symbol):
            made = history[trade.trade_id]
            assert (trade.price, trade.size) == (made.price, made.quantity)
            assert trade.taker_buys is not made.is_buyer_maker
    assert {t.taker_buys for t in trades} == {True, False}


async def test_skipped_ids_never_reach_a_websocket_but_rest_serves_them(
    name: str, start_venue: StartVenue
) -> None:
    client = CLIENTS[name]
    # a venue whose REST reaches back only so many trades is asked soon enough, at a pace it can serve
    sim = await start_venue(name, tps=100 if client.rest_reach else 400)
    first, other = client.symbols
    ws = await subscribed(sim, client, [first, other])
    seen: dict[str, list[int]] = {first: [], other: []}
    async with ws:
        while not seen[first]:
            trade = await next_trade(ws, client, sim)
            seen[trade.symbol].append(trade.trade_id)
        sim.skip_ids(3, symbol=first.lower())
        while len(seen[first]) < (10 if client.rest_reach else 30):
            trade = await next_trade(ws, client, sim)
            seen[trade.symbol].append(trade.trade_id)
    gaps = [(a, b) for a, b in itertools.pairwise(seen[first]) if b != a + 1]
    assert len(gaps) == 1 and gaps[0][1] - gaps[0][0] == 4
    assert seen[other] == list(range(seen[other][0], seen[other][0] + len(seen[other])))
    missing = gaps[0][0] + 1
    async with httpx.AsyncClient(base_url=sim.rest_url) as http:
        assert await client.rest_ids(http, first, missing, 3) == [missing, missing + 1, missing + 2]
    assert sim.state()["faults"]["trades_skipped"] == 3


def _broken_as(kind: str, frame: bytes, fields: TradeFields, client: VenueClient) -> bool:
    """Whether `frame` is a malformed frame of `kind` (see simulator/malformed.py)."""
    try:
        message = msgspec.json.decode(frame)
    except msgspec.DecodeError:
        return kind in ("invalid_json", "truncated_json") or (kind == "binary_garbage" and len(frame) == 64)
    except UnicodeDecodeError:
        return kind in ("invalid_utf8", "binary_garbage")
    except RecursionError:
        return kind == "deeply_nested"
    row, head = holder_of(message, fields.size), holder_of(message, fields.kind)
    if row is None or head is None:
        return False
    checks = {
        "price_as_number": lambda: isinstance(row.get(fields.price), int | float),
        "price_as_string": lambda: isinstance(row.get(fields.price), str),
        "id_wrong_type": lambda: not isinstance(row[fields.trade_id], client.id_type),
        "nan_price": lambda: row.get(fields.price) == "NaN",
        "negative_quantity": lambda: str(row[fields.size]).startswith("-"),
        "unknown_symbol": lambda: row[fields.symbol] == fields.unknown_symbol,
        "unknown_event": lambda: head[fields.kind] == "mysteryEvent",
        "missing_field": lambda: fields.price not in row,
        "oversized": lambda: len(frame) > OVERSIZED_BYTES,
    }
    return kind in checks and checks[kind]()


async def test_malformed_frames_of_every_kind_then_trades_resume(name: str, start_venue: StartVenue) -> None:
    sim = await start_venue(name, tps=300)
    client, kinds = CLIENTS[name], sim.venue.malformed_kinds
    ws = await subscribed(sim, client, [client.symbols[0]])
    async with ws:
        last = (await next_trade(ws, client, sim)).trade_id
        sim.send_malformed(len(kinds))
        bad: list[bytes] = []
        while len(bad) < len(kinds):
            frame = await recv(ws)
            trade = client.trade(frame, sim.symbols) if len(frame) < OVERSIZED_BYTES else None
            if trade is None:
                bad.append(frame)
            else:  # every broken kind fails the strict reading; good trades go on in order
                assert trade.trade_id == last + 1
                last = trade.trade_id
        assert (await next_trade(ws, client, sim)).trade_id == last + 1
    for kind, frame in zip(kinds, bad, strict=True):
        assert _broken_as(kind, frame, sim.venue.trade_fields, client), (kind, frame[:200])
    assert sim.malformed_sent == len(kinds) and len(set(kinds)) == len(kinds)


async def test_bad_client_frames_are_answered_counted_and_survived(
    name: str, start_venue: StartVenue
) -> None:
    sim = await start_venue(name, tps=300)
    client = CLIENTS[name]
    async with ws_connect(f"{sim.ws_url}{client.path}", max_size=None) as ws:
        for garbage in ("{", b"\xff\xfe\x00", "[" * 5000 + "]" * 5000):
            await ws.send(garbage)
            answer = await recv(ws)
            assert client.trade(answer, sim.symbols) is None and len(answer) < 1000
        for message in client.subscribe([client.symbols[0]]):
            await ws.send(message)
        await next_trade(ws, client, sim)
    assert sim.state()["client_errors"] == 3


async def test_drop_aborts_every_websocket_without_a_close_frame(name: str, start_venue: StartVenue) -> None:
    sim = await start_venue(name, tps=500)
    client = CLIENTS[name]
    first, second = await subscribed(sim, client, [client.symbols[0]]), await subscribed(sim, client, [])
    async with first, second:
        await next_trade(ws=first, client=client, sim=sim)
        assert sim.connection_count == 2
        sim.drop_connections()
        for ws in (first, second):
            with pytest.raises(websockets.ConnectionClosedError):
                while True:
                    await recv(ws)
            assert ws.close_code == 1006
    await asyncio.sleep(0.05)
    assert sim.connection_count == 0
    again = await subscribed(sim, client, [client.symbols[0]])
    async with again:
        await next_trade(again, client, sim)


async def test_stall_delays_trades_without_losing_any(name: str, start_venue: StartVenue) -> None:
    sim = await start_venue(name, tps=500)
    client = CLIENTS[name]
    loop = asyncio.get_running_loop()
    ws = await subscribed(sim, client, [client.symbols[0]])
    async with ws:
        last = (await next_trade(ws, client, sim)).trade_id
        sim.stall(1.0)
        stalled_at = loop.time()
        while True:  # frames already in flight may still arrive, then nothing
            try:
                trade = client.trade(await recv(ws, timeout=0.3), sim.symbols)
            except TimeoutError:
                break
            last = trade.trade_id if trade is not None else last
        assert loop.time() - stalled_at < 0.8
        after = await next_trade(ws, client, sim)
        assert loop.time() - stalled_at >= 0.9 and after.trade_id == last + 1


async def test_rate_limit_answers_the_venues_429(name: str, start_venue: StartVenue) -> None:
    sim = await start_venue(name, tps=20)
    client = CLIENTS[name]
    path, params = client.rest_probe(client.symbols[0])
    sim.rate_limit(2, retry_after=3)
    async with httpx.AsyncClient(base_url=sim.rest_url) as http:
        for _ in range(2):
            refused = await http.get(path, params=params)
            assert refused.status_code == 429 and refused.headers["Retry-After"] == "3"
            assert RATE_LIMITED_BODY[name](refused.json())
        assert (await http.get(path, params=params)).status_code == 200
        assert (await http.get("/admin/state")).json()["faults"]["rate_limited_answered"] == 2


async def test_on_demand_market_produces_only_for_subscribers(name: str, start_venue: StartVenue) -> None:
    sim = await start_venue(name, tps=0)
    client = CLIENTS[name]
    await asyncio.sleep(0.1)
    assert all(sim.history(s) == [] for s in client.symbols)
    # a bounded client queue: a client that buffers without limit never slows an on-demand market
    ws = await subscribed(sim, client, list(client.symbols), max_queue=64)
    async with ws:
        trades = [await next_trade(ws, client, sim) for _ in range(2000)]
        # not reading: once the socket buffers fill, production stops a lookahead ahead of the client
        await asyncio.sleep(0.5)
        produced = sum(len(sim.history(s)) for s in client.symbols)
        await asyncio.sleep(0.3)
        assert sum(len(sim.history(s)) for s in client.symbols) == produced < 200_000
    for symbol in client.symbols:
        ids = [t.trade_id for t in trades if t.symbol == symbol]
        assert ids == list(range(1_000_000, 1_000_000 + len(ids)))


async def test_replay_at_speed_0_delivers_the_files_rows(
    name: str, start_venue: StartVenue, tmp_path: Path
) -> None:
    venue = make_venue(name)
    spellings = ["btc-usdt", "BTC/USDT", "BTCUSDT", "eth_usdt"]
    rows = [
        [
            1_700_000_000_000 + i,
            spellings[i % 4],
            500 + i,
            f"{100 + i}.25",
            "0.5",
            "true" if i % 3 else "false",
        ]
        for i in range(400)
    ]
    market = ReplayMarket(write_csv(tmp_path / "r.csv", rows), speed=0, symbol_form=venue.raw_symbol)
    sim = await start_venue(name, market)
    client = CLIENTS[name]
    btc, eth = venue.raw_symbol("BTC-USDT"), venue.raw_symbol("ETH-USDT")
    assert sim.symbols == {btc, eth}
    ws = await subscribed(sim, client, [btc, eth])
    async with ws:
        trades = [await next_trade(ws, client, sim) for _ in rows]
    for row, trade in zip(rows, trades, strict=True):
        expected = eth if row[1] == "eth_usdt" else btc
        assert trade == Trade(expected, row[2], row[3], row[4], row[5] == "false")


async def test_admin_state_names_the_exchange_and_its_subscriptions(
    name: str, start_venue: StartVenue
) -> None:
    sim = await start_venue(name, tps=200)
    client = CLIENTS[name]
    ws = await subscribed(sim, client, [client.symbols[1]])
    async with ws, httpx.AsyncClient(base_url=sim.rest_url) as http:
        await next_trade(ws, client, sim)
        state: dict[str, Any] = (await http.get("/admin/state")).json()
        bad = await http.post("/admin/faults", json={"skip": 1, "skip_symbol": "NOPE-NOPE"})
    assert state["exchange"] == name and set(state["symbols"]) == set(client.symbols)
    assert state["connections"] == 1 and state["trades_sent"] >= 1
    [details] = state["connection_details"]
    [stream] = details["streams"]
    assert client.symbols[1] in stream or client.symbols[1].lower() in stream
    assert bad.status_code == 400


def test_a_market_spelled_for_another_venue_is_refused(name: str) -> None:
    venue = make_venue(name)
    foreign = "BTCUSDT" if venue.symbol_separator else "BTC-USDT"
    with pytest.raises(ConfigError, match="symbol_form"):
        SimulatedExchange(SyntheticMarket([foreign], symbol_form=lambda s: s), venue)
    spelled = SyntheticMarket(["btc/usdt"], symbol_form=venue.raw_symbol)
    assert SimulatedExchange(spelled, venue).symbols == {venue.raw_symbol("BTC-USDT")}


async def test_outage_drops_and_refuses_websockets_while_the_market_trades_on(
    name: str, start_venue: StartVenue
) -> None:
    sim = await start_venue(name, tps=400)
    client = CLIENTS[name]
    symbol = client.symbols[0]
    ws = await subscribed(sim, client, [symbol])
    async with ws:
        last = (await next_trade(ws, client, sim)).trade_id
        sim.outage(3.0)  # long enough for a loaded machine to reconnect within it
        with pytest.raises(websockets.ConnectionClosedError):
            while True:
                await recv(ws)
    with pytest.raises(websockets.InvalidStatus) as refused:
        await ws_connect(f"{sim.ws_url}{client.path}")
    assert refused.value.response.status_code == 503
    async with httpx.AsyncClient(base_url=sim.rest_url) as http:  # REST keeps serving
        path, params = client.rest_probe(symbol)
        assert (await http.get(path, params=params)).status_code == 200
    await asyncio.sleep(3.1)
    again = await subscribed(sim, client, [symbol])
    async with again:
        after = (await next_trade(again, client, sim)).trade_id
    assert after - last > 100  # what happened meanwhile is only in history
    assert [t.trade_id for t in sim.history(symbol) if last <= t.trade_id <= after] == list(
        range(last, after + 1)
    )
    assert sim.state()["faults"]["outage_remaining_s"] == 0
