"""Venues without a contiguous sequence: an outage (a dropped connection) is looked back at over REST when
the connection returns. What REST still serves from it is published before the newer trades; when REST
does not reach back to where the outage began, the interval is recorded as unverified, never filled.

The mechanism is shared by every such venue; here it runs against the Binance simulator with an adapter
that forgets Binance's sequence and reads only its latest-trades endpoint (`/api/v3/trades`), so that the
test needs no particular venue."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

from collectors.adapter import RepairKind, RestRequest, SequenceKind
from collectors.backfill import RestBackfiller, discover
from collectors.exchanges.binance import BinanceAdapter
from collectors.registry import create_adapter
from collectors.session import CollectorSession
from collectors.session_options import SessionOptions
from core.types import CoverageKind, SymbolInfo, Trade
from monitoring.metrics import PlatformMetrics
from simulator.binance import BinanceSimulator
from simulator.exchange import SimulatedExchange
from simulator.markets import SyntheticMarket
from simulator.venues import VENUES, make_venue
from tests.collectors.session_harness import RecordingSink, eventually

SYMBOLS = ["BTCUSDT"]
RECENT = 60


class LatestOnly(BinanceAdapter):
    """Binance as a venue without a sequence whose REST serves only the latest RECENT trades."""

    capabilities = msgspec.structs.replace(
        BinanceAdapter.capabilities,
        sequence=SequenceKind.NONE,
        repair=RepairKind.RECENT_ONLY,
        repair_page_size=RECENT,
    )

    def parse(self, frame: bytes | str, ts_recv: int) -> list[Trade]:
        return [msgspec.structs.replace(t, sequence=None) for t in super().parse(frame, ts_recv)]

    def recent_request(self, raw_symbol: str) -> RestRequest | None:
        return RestRequest("/api/v3/trades", (("symbol", raw_symbol), ("limit", str(RECENT))))

    def parse_recent(self, raw_symbol: str, body: bytes, ts_recv: int) -> list[Trade]:
        rows = self._repair_rows(body, raw_symbol, ts_recv)
        return [msgspec.structs.replace(t, sequence=None) for t in rows]


@pytest.fixture
async def sim(metrics: PlatformMetrics) -> AsyncIterator[BinanceSimulator]:
    simulator = BinanceSimulator(SyntheticMarket(SYMBOLS, tps=200, seed=5), metrics=metrics)
    await simulator.start()
    yield simulator
    await simulator.stop()


def ids(sink: RecordingSink) -> list[int]:
    return [int(t.trade_id) for t in sink.trades]


async def collect_across_a_drop(
    sim: BinanceSimulator, metrics: PlatformMetrics, away_s: float
) -> RecordingSink:
    adapter = LatestOnly([SymbolInfo("binance", "BTC-USDT", "BTCUSDT", "BTC", "USDT")])
    sink = RecordingSink()
    async with RestBackfiller(adapter, sim.rest_url, metrics=metrics) as rest:
        session = CollectorSession(
            adapter, SYMBOLS, publisher=sink, backfiller=rest, metrics=metrics, ws_base_url=sim.ws_url,
            options=SessionOptions(backoff_initial=away_s, backoff_max=away_s), rng=lambda: 0.0,
        )  # fmt: skip
        task = asyncio.create_task(session.run())
        await eventually(lambda: len(sink.trades) > 30)
        sim.drop_connections()
        await eventually(lambda: bool(sink.events), timeout=15)
        seen = len(sink.trades)
        await eventually(lambda: len(sink.trades) > seen + 30)
        session.stop()
        await asyncio.wait_for(task, 5)
    return sink


async def test_a_short_outage_is_filled_from_the_latest_trades(
    sim: BinanceSimulator, metrics: PlatformMetrics
) -> None:
    sink = await collect_across_a_drop(sim, metrics, away_s=0.05)  # ~10 trades missed, well within 60
    [event] = sink.events
    assert event.kind is CoverageKind.REPAIRED and event.trades and event.trades > 0
    got = ids(sink)
    assert sorted(got) == list(range(min(got), max(got) + 1))  # nothing missing, nothing twice
    position = sink.order.index(event)
    assert all(t.backfilled for t in sink.order[position - event.trades : position])  # before the newer


async def test_an_outage_longer_than_rest_reaches_is_recorded_unverified_not_filled(
    sim: BinanceSimulator, metrics: PlatformMetrics
) -> None:
    sink = await collect_across_a_drop(sim, metrics, away_s=1.0)  # ~200 trades missed, REST serves 60
    [event] = sink.events
    assert event.kind is CoverageKind.UNVERIFIED and "reaches back" in event.detail
    got = sorted(ids(sink))
    missing = sorted(set(range(got[0], got[-1] + 1)) - set(got))
    assert missing  # lost for good: recorded, not invented
    lost_times = [t.time_ms * 1_000_000 for t in sim.history("BTCUSDT") if t.trade_id in set(missing)]
    assert event.start_ns <= min(lost_times) and max(lost_times) <= event.end_ns  # the record covers them
    recovered = [t for t in sink.trades if t.backfilled]
    assert len(recovered) <= 60 and all(t.ts_event >= event.end_ns for t in recovered)


# The same over the real adapters and simulators of every venue without a sequence (by capability).
UNSEQUENCED = sorted(v for v in VENUES if create_adapter(v).capabilities.sequence is SequenceKind.NONE)


@pytest.mark.parametrize("venue", UNSEQUENCED)
async def test_a_real_venue_without_a_sequence_over_its_simulator(
    venue: str, metrics: PlatformMetrics
) -> None:
    """A dropped connection is back at once: filled from the latest trades (REPAIRED). An outage during
    which more trades happen than REST serves: recorded UNVERIFIED over the part REST no longer reaches."""
    protocol = make_venue(venue)
    symbol = protocol.default_symbols[0]
    market = SyntheticMarket([symbol], tps=150, seed=9, symbol_form=protocol.raw_symbol)
    sim = SimulatedExchange(market, protocol, metrics=metrics)
    await sim.start()
    sink = RecordingSink()
    try:
        async with await discover(venue, sim.rest_url, metrics=metrics) as rest:
            session = CollectorSession(
                rest.adapter, [symbol], publisher=sink, backfiller=rest, metrics=metrics,
                ws_base_url=sim.ws_url, options=SessionOptions(backoff_initial=0.05, backoff_max=0.2),
                rng=lambda: 0.0,
            )  # fmt: skip
            task = asyncio.create_task(session.run())
            await eventually(lambda: len(sink.trades) > 30)
            sim.drop_connections()
            await eventually(lambda: len(sink.events) == 1, timeout=15)
            sim.outage(1.5)  # ~225 trades: more than the 60 REST serves
            await eventually(lambda: len(sink.events) == 2, timeout=15)
            seen = len(sink.trades)
            await eventually(lambda: len(sink.trades) > seen + 30)
            session.stop()
            await asyncio.wait_for(task, 5)
    finally:
        await sim.stop()
    short, long = sink.events
    assert short.kind is CoverageKind.REPAIRED, short
    assert long.kind is CoverageKind.UNVERIFIED and "reaches back" in long.detail, long
    got = sorted(ids(sink))
    assert len(got) == len(set(got))  # nothing twice
    made = {t.trade_id: t for t in sim.history(symbol)}
    assert all(t.price == made[int(t.trade_id)].price for t in sink.trades)  # nothing invented
    missing = sorted(set(range(got[0], got[-1] + 1)) - set(got))
    assert missing and all(long.start_ns <= made[i].time_ms * 1_000_000 <= long.end_ns for i in missing)


class HangingLookBack(RestBackfiller):
    """REST that never answers a look-back (a venue slow to answer when the collector is told to stop)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.asked = asyncio.Event()

    async def fetch_recent(self, raw_symbol: str) -> list[Trade] | None:
        self.asked.set()
        await asyncio.Event().wait()
        return None


@pytest.mark.parametrize("hold_max_s", [10.0, 0.1], ids=["held-until-stop", "let-go-before-stop"])
async def test_a_look_back_cut_short_at_stop_records_its_outage_unverified(
    sim: BinanceSimulator, metrics: PlatformMetrics, hold_max_s: float
) -> None:
    """The collector stops while REST has not answered an outage's look-back: once the stop's grace has
    passed the look-back is cancelled, every held trade is still published, and the outage's interval is
    recorded UNVERIFIED (counted as look_back_cut), not left out; also when the newer trades went on
    before the stop (the hold's time limit passed) without waiting for the look-back."""
    adapter = LatestOnly([SymbolInfo("binance", "BTC-USDT", "BTCUSDT", "BTC", "USDT")])
    sink = RecordingSink()
    async with HangingLookBack(adapter, sim.rest_url, metrics=metrics) as rest:
        options = SessionOptions(
            backoff_initial=0.3, backoff_max=0.3, reader_grace_s=0.2, hold_max_s=hold_max_s
        )
        session = CollectorSession(
            adapter, SYMBOLS, publisher=sink, backfiller=rest, metrics=metrics, ws_base_url=sim.ws_url,
            options=options, rng=lambda: 0.0,
        )  # fmt: skip
        task = asyncio.create_task(session.run())
        await eventually(lambda: len(sink.trades) > 30)
        sim.drop_connections()
        await asyncio.wait_for(rest.asked.wait(), 15)
        published = len(sink.trades)
        if hold_max_s < 1:
            await eventually(lambda: len(sink.trades) > published + 10, timeout=5)  # went on
        else:
            await asyncio.sleep(0.3)
            assert len(sink.trades) == published  # newer trades held behind the look-back
        session.stop()
        await asyncio.wait_for(task, 5)
        received = session.reads
    assert received > 0
    [event] = sink.events
    assert event.kind is CoverageKind.UNVERIFIED and "cut short" in event.detail, event
    got = sorted(ids(sink))
    assert len(got) == len(set(got))
    made = {t.trade_id: t for t in sim.history("BTCUSDT")}
    missing = sorted(set(range(got[0], got[-1] + 1)) - set(got))
    assert missing and all(event.start_ns <= made[i].time_ms * 1_000_000 <= event.end_ns for i in missing)
    assert max(got) > max(i for i in missing)  # the trades held behind the look-back went on
    cut = metrics.collector_errors.labels("binance", "look_back_cut")._value.get()
    assert cut == 1
