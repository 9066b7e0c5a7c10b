"""A frame fuzzer against a running collector: thousands of damaged frames over a real websocket.

Each simulated venue (a real aiohttp websocket server on loopback) sends its live trades while the test
slips damaged frames between them: its latest trade message with random damage (tests/collectors/
mutations.py: flipped bytes, truncation, numbers >= 2^63 and 1e999, wrong types, invalid UTF-8, deep
nesting, repeats), with one field set to a bad value (2^63, NaN, infinity, negative, null, a list), or
broken in the venue's named ways (simulator/malformed.py), and a few over the frame limit. Only frames
the venue's adapter rejects are sent: a damaged frame that still parses is a real trade message again,
and the collector would be right to take it. The collector session must keep its one connection (no
reconnect), count every damaged frame in collector_errors_total (a parse error type), and publish every
live trade exactly once with its exact price and nothing else. The adapters without a simulator (Kraken,
Bybit, Binance futures and delivery) get the same over a plain websocket server on loopback that sends
numbered copies of one of their recorded trade frames between the damaged ones.
"""

from __future__ import annotations

import asyncio
import copy
import random
import time
import zlib
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
import websockets

from collectors.adapter import PARSE_ERROR_TYPES, ExchangeAdapter, SequenceKind
from collectors.backfill import RestBackfiller, discover
from collectors.registry import ADAPTERS
from collectors.session import CollectorSession
from core.errors import ParseError
from monitoring.metrics import PlatformMetrics
from simulator.exchange import SimulatedExchange
from simulator.framing import OP_BINARY, OP_TEXT
from simulator.malformed import holder_of, malformed_frame
from simulator.markets import SyntheticMarket
from simulator.venue import VenueOptions, VenueProtocol
from simulator.venues import VENUES, make_venue
from tests.collectors import venue_fixtures as vf
from tests.collectors.mutations import mutate
from tests.collectors.session_harness import RecordingSink, Sample, assert_complete, eventually

FUZZ_FRAMES = 10_000  # damaged frames per venue
PER_ROUND = 250  # sent together, then the live trades flow again for a moment
LARGE = 64 * 1024  # frames above this are few: they cost the loopback, not the parser
LARGE_BUDGET = 12
OVERSIZED = 4  # frames over the venue's frame limit (2 MiB each), sent in the first round
BAD_VALUES: tuple[Any, ...] = (
    2**63,
    2**64,
    -(2**63) - 1,
    10**400,
    "9223372036854775808",
    "NaN",
    "nan",
    "Infinity",
    "-1",
    "0",
    "1e999",
    "",
    None,
    True,
    [],
    {},
    1.5,
    "x" * 10_000,
    "\u0000",
    "BTC\ud800",
)


def field_damage(rng: random.Random, good: bytes, row_key: str) -> bytes:
    """The message with one field of its trade (the object holding `row_key`) or of its envelope set to a
    bad value."""
    message = msgspec.json.decode(good)
    row = holder_of(message, row_key)
    holder = row if row is not None and rng.random() < 0.8 else message
    if not isinstance(holder, dict) or not holder:
        return good + b"x"
    holder[rng.choice(sorted(holder))] = rng.choice(BAD_VALUES)
    try:
        return msgspec.json.encode(message)
    except (msgspec.EncodeError, OverflowError, UnicodeEncodeError):
        return good[:-1]


def damaged(rng: random.Random, good: bytes, venue: VenueProtocol) -> tuple[bytes, int]:
    roll = rng.random()
    if roll < 0.5:
        return mutate(rng, good), OP_BINARY if rng.random() < 0.05 else OP_TEXT
    if roll < 0.8:
        return field_damage(rng, good, venue.trade_fields.price), OP_TEXT
    kind = rng.choice([k for k in venue.malformed_kinds if k != "oversized"])
    return malformed_frame(kind, good, venue.trade_fields, rng)


def rejected(adapter: ExchangeAdapter, payload: bytes) -> bool:
    """Whether the adapter refuses the frame with a parse error (what the session must count)."""
    try:
        adapter.parse(payload, time.time_ns())
    except ParseError as exc:
        assert exc.error_type in PARSE_ERROR_TYPES
        return True
    except Exception:
        return False  # e.g. ReconnectRequested: a frame the venue uses on purpose
    return False


def _sequenced(name: str) -> bool:
    return getattr(ADAPTERS[name], "capabilities").sequence is SequenceKind.CONTIGUOUS  # noqa: B009


# Completeness against a simulator is checked by sequence; the other venues (no simulator, or ids that are
# no sequence) get recorded frames on a plain server, whose every valid id is checked instead.
SIMULATED = sorted(name for name in VENUES if _sequenced(name))


@pytest.fixture(params=SIMULATED)
async def sim(request: pytest.FixtureRequest, metrics: PlatformMetrics) -> AsyncIterator[SimulatedExchange]:
    protocol = make_venue(str(request.param), VenueOptions())
    market = SyntheticMarket(protocol.default_symbols, tps=1000, seed=7, symbol_form=protocol.raw_symbol)
    simulator = SimulatedExchange(market, protocol, metrics=metrics)
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
async def backfiller(sim: SimulatedExchange, metrics: PlatformMetrics) -> AsyncIterator[RestBackfiller]:
    async with await discover(sim.venue.name, sim.rest_url, metrics=metrics) as rest:
        yield rest


@pytest.mark.slow
async def test_ten_thousand_damaged_frames_never_break_a_running_collector(
    sim: SimulatedExchange, backfiller: RestBackfiller, metrics: PlatformMetrics
) -> None:
    venue, symbols = sim.venue, sorted(sim.symbols)
    sample = Sample(metrics, venue.name)
    sink = RecordingSink()
    session = CollectorSession(
        backfiller.adapter,
        symbols,
        publisher=sink,
        backfiller=backfiller,
        metrics=metrics,
        ws_base_url=sim.ws_url,
    )
    task = asyncio.create_task(session.run())
    try:
        await eventually(lambda: len(sink.trades) > 20)
        rng = random.Random(zlib.crc32(venue.name.encode()))
        sent = skipped = large = 0
        while sent < FUZZ_FRAMES:
            good = sim.source_message()
            assert good is not None
            batch: list[tuple[bytes, int]] = []
            if sent == 0:
                batch += [
                    malformed_frame("oversized", good, venue.trade_fields, rng) for _ in range(OVERSIZED)
                ]
                assert all(rejected(backfiller.adapter, payload) for payload, _ in batch)
            while len(batch) < min(PER_ROUND, FUZZ_FRAMES - sent):
                payload, opcode = damaged(rng, good, venue)
                if len(payload) > LARGE:
                    if large >= LARGE_BUDGET:
                        continue
                    large += 1
                if rejected(backfiller.adapter, payload):
                    batch.append((payload, opcode))
                else:
                    skipped += 1
            sim.send_frames(batch)
            sent += len(batch)
            await asyncio.sleep(0.02)  # live trades between the rounds

        def parse_errors() -> float:
            return sum(sample("collector_errors_total", error_type=k) for k in PARSE_ERROR_TYPES)

        await eventually(lambda: parse_errors() >= sent, timeout=30)
        seen = len(sink.trades)
        await eventually(lambda: len(sink.trades) > seen + 50)
        assert not task.done(), "the session ended"
    finally:
        session.stop()
        await asyncio.wait_for(task, 5.0)
    assert parse_errors() == sent  # every damaged frame counted, once
    assert sample("collector_errors_total", error_type="oversized") >= OVERSIZED
    assert sample("websocket_reconnections_total") == 0
    assert skipped < sent  # most damage makes a frame unusable; the rest was not sent
    for symbol in symbols:
        assert_complete(sink, sim, symbol)  # every live trade once, exact prices, no invented trade
    history = {(t.symbol, t.trade_id) for s in symbols for t in sim.history(s)}
    assert all((t.raw_symbol, t.sequence) in history for t in sink.trades)


NO_SIMULATOR = sorted(set(ADAPTERS) - set(SIMULATED))


class RecordedVenue:
    """A websocket server on loopback for a venue without a simulator: numbered copies of one of its
    recorded single-trade frames (a new id each, contiguous where the venue's ids are), each followed by
    damaged frames the adapter rejects. It answers nothing: the adapters need no acknowledgement."""

    def __init__(self, name: str, frames: int) -> None:
        self.adapter = vf.adapter(name)
        self.template, self.id_key, self.first_id = self._template(name)
        self.rng = random.Random(zlib.crc32(name.encode()))
        self.frames = frames
        self.valid: list[str] = []  # trade ids sent in valid frames, in order
        self.damaged = 0
        self.done = asyncio.Event()

    def _template(self, name: str) -> tuple[dict[str, Any], str, int]:
        for text in vf.load(name).frames:
            trades = self.adapter.parse(text.encode(), 1)
            if len(trades) == 1 and trades[0].trade_id.isdigit():
                message = msgspec.json.decode(text)
                for key in ("trade_id", "i", "tradeId", "id", "a", "t"):
                    row = holder_of(message, key)
                    if row is not None and str(row[key]) == trades[0].trade_id:
                        return message, key, int(trades[0].trade_id)
        raise AssertionError(f"{name}: no recorded frame with one numbered trade")

    def numbered(self, n: int) -> bytes:
        message = copy.deepcopy(self.template)
        row = holder_of(message, self.id_key)
        assert row is not None
        row[self.id_key] = type(row[self.id_key])(self.first_id + n)
        return msgspec.json.encode(message)

    async def serve(self, ws: websockets.ServerConnection) -> None:
        reader = asyncio.create_task(self._drain(ws))
        try:
            n = 0
            while self.damaged < self.frames:
                good = self.numbered(n)
                await ws.send(good.decode())
                self.valid.append(str(self.first_id + n))
                n += 1
                for _ in range(50):
                    payload = mutate(self.rng, good) if self.rng.random() < 0.6 else None
                    payload = payload or field_damage(self.rng, good, self.id_key)
                    if len(payload) > LARGE or not rejected(self.adapter, payload):
                        continue
                    await ws.send(payload)  # bytes: a binary frame, as venues' compressed feeds are
                    self.damaged += 1
                await asyncio.sleep(0)
            self.done.set()
            await ws.wait_closed()
        finally:
            reader.cancel()

    @staticmethod
    async def _drain(ws: websockets.ServerConnection) -> None:
        async for _ in ws:  # subscriptions and pings, unanswered
            pass


@pytest.mark.slow
@pytest.mark.parametrize("name", NO_SIMULATOR)
async def test_damaged_frames_never_break_a_collector_of_a_venue_without_simulator(
    name: str, metrics: PlatformMetrics
) -> None:
    venue = RecordedVenue(name, frames=FUZZ_FRAMES)
    sample = Sample(metrics, name)
    sink = RecordingSink()
    async with websockets.serve(venue.serve, "127.0.0.1", 0, max_size=None) as server:
        port = server.sockets[0].getsockname()[1]
        symbol = venue.adapter.parse(venue.numbered(0), 1)[0].raw_symbol
        session = CollectorSession(
            venue.adapter, [symbol], publisher=sink, metrics=metrics, ws_base_url=f"ws://127.0.0.1:{port}"
        )
        task = asyncio.create_task(session.run())
        try:
            await asyncio.wait_for(venue.done.wait(), 60)
            await eventually(lambda: len(sink.trades) >= len(venue.valid), timeout=30)
            assert not task.done(), "the session ended"
        finally:
            session.stop()
            await asyncio.wait_for(task, 5.0)

    def parse_errors() -> float:
        return sum(sample("collector_errors_total", error_type=k) for k in PARSE_ERROR_TYPES)

    assert parse_errors() == venue.damaged >= FUZZ_FRAMES
    assert sample("websocket_reconnections_total") == 0
    assert [t.trade_id for t in sink.trades] == venue.valid  # every valid trade once, nothing else
