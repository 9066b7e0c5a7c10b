"""CollectorSession over real websockets and HTTP against every venue's simulator on loopback.

Each behaviour runs on every simulated venue with a contiguous trade sequence (Binance, Coinbase, OKX,
Kraken), whose protocols differ in how a
connection is kept alive, how trades are framed and how REST pages run. Completeness is checked against the
simulator's own history: for every symbol the published sequence numbers are exactly the venue's between
the first and the last one published, each once, with the same exact price strings.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec
import pytest

from collectors.adapter import PARSE_ERROR_TYPES, SequenceKind
from collectors.backfill import RestBackfiller, discover
from collectors.registry import create_adapter
from collectors.session import CollectorSession
from collectors.session_options import SessionOptions
from collectors.transport import WebsocketsConnector, WsConnector
from collectors.transport_picows import PicowsConnector
from core.types import CoverageEvent, CoverageKind, FeedState, ResumePoint, Trade
from monitoring.metrics import PlatformMetrics
from simulator.exchange import SimulatedExchange
from simulator.markets import SyntheticMarket
from simulator.venue import VenueOptions
from simulator.venues import VENUES, make_venue
from storage.memory_cache import MemoryCache
from tests.collectors.session_harness import (
    RecordingSink,
    Running,
    Sample,
    StallingSink,
    assert_complete,
    eventually,
)
from tests.conftest import free_port

CONNECTORS: dict[str, Callable[[], WsConnector]] = {
    "websockets": WebsocketsConnector,
    "picows": PicowsConnector,
}
both_transports = pytest.mark.parametrize("transport", sorted(CONNECTORS))
Start = Callable[..., Awaitable[Running]]


async def start_venue(
    venue: str, metrics: PlatformMetrics, *, seed: int = 1, port: int = 0, **options: float
) -> SimulatedExchange:
    protocol = make_venue(venue, VenueOptions(**options))
    market = SyntheticMarket(protocol.default_symbols, tps=400, seed=seed, symbol_form=protocol.raw_symbol)
    sim = SimulatedExchange(market, protocol, metrics=metrics, port=port)
    await sim.start()
    return sim


# Every simulated venue whose trades carry a contiguous sequence: these tests prove completeness by id. The
# venues without one (Bybit) are covered by tests/collectors/test_outage.py.
SEQUENCED = sorted(v for v in VENUES if create_adapter(v).capabilities.sequence is SequenceKind.CONTIGUOUS)


@pytest.fixture(params=SEQUENCED)
def venue(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def sim(venue: str, metrics: PlatformMetrics) -> AsyncIterator[SimulatedExchange]:
    simulator = await start_venue(venue, metrics)
    yield simulator
    await simulator.stop()


@pytest.fixture
def symbols(sim: SimulatedExchange) -> list[str]:
    return sorted(sim.symbols)


@pytest.fixture
def sample(metrics: PlatformMetrics, venue: str) -> Sample:
    return Sample(metrics, venue)


@pytest.fixture
async def backfiller(
    venue: str, sim: SimulatedExchange, metrics: PlatformMetrics
) -> AsyncIterator[RestBackfiller]:
    async with await discover(venue, sim.rest_url, metrics=metrics) as rest:
        yield rest


def canonical(backfiller: RestBackfiller, raw_symbol: str) -> str:
    info = backfiller.adapter.symbol_info(raw_symbol)
    assert info is not None
    return info.symbol


@pytest.fixture
async def start(
    sim: SimulatedExchange, backfiller: RestBackfiller, symbols: list[str], metrics: PlatformMetrics
) -> AsyncIterator[Start]:
    running: list[Running] = []

    async def _start(sink: RecordingSink, options: SessionOptions | None = None, **parts: Any) -> Running:
        parts.setdefault("ws_base_url", sim.ws_url)
        session = CollectorSession(
            parts.pop("adapter", backfiller.adapter), symbols, publisher=sink, options=options,
            backfiller=backfiller, metrics=metrics, **parts,
        )  # fmt: skip
        run = Running(session, asyncio.create_task(session.run()))
        running.append(run)
        return run

    yield _start
    for run in running:
        if not run.task.done():
            await run.stop()


@both_transports
async def test_trades_flow_with_metrics_and_stop_is_prompt(
    start: Start, sim: SimulatedExchange, symbols: list[str], backfiller: RestBackfiller, sample: Sample,
    metrics: PlatformMetrics, venue: str, transport: str,
) -> None:  # fmt: skip
    sink = RecordingSink()
    run = await start(sink, connector=CONNECTORS[transport]())
    await eventually(lambda: all(len(sink.ids(s)) > 50 for s in symbols))
    assert sample("collector_status") == 1
    assert sample("exchange_connected") == 1
    # every error type exists from the start at 0, so that rate() sees the first occurrence
    for error_type in ("gap_abandoned", "unknown_symbol", "stale"):
        labels = {"exchange": venue, "error_type": error_type}
        assert metrics.registry.get_sample_value("collector_errors_total", labels) == 0
    assert await run.stop() < 1.0
    assert sample("collector_status") == 0
    assert sample("exchange_connected") == 0
    for symbol in symbols:
        assert_complete(sink, sim, symbol)
        name = canonical(backfiller, symbol)
        assert sample("trades_received_total", symbol=name) == len(sink.ids(symbol))
        newest = max(t.ts_event for t in sink.trades if t.raw_symbol == symbol)
        assert sample("last_trade_timestamp", symbol=name) == pytest.approx(newest / 1e9, abs=1e-3)
    assert not any(t.backfilled for t in sink.trades)
    assert sample("trade_latency_seconds_count") > 0
    assert sample("websocket_reconnections_total") == 0


@both_transports
async def test_dropped_connection_loses_no_trade(
    start: Start, sim: SimulatedExchange, symbols: list[str], sample: Sample, transport: str
) -> None:
    sink = RecordingSink()
    run = await start(sink, connector=CONNECTORS[transport]())
    await eventually(lambda: len(sink.trades) > 50)
    for _ in range(2):
        sim.drop_connections()
        reconnects = sample("websocket_reconnections_total")
        await eventually(lambda r=reconnects: sample("websocket_reconnections_total") > r)
        seen = len(sink.trades)
        await eventually(lambda s=seen: len(sink.trades) > s + 100)
    await run.stop()
    for symbol in symbols:
        assert_complete(sink, sim, symbol)
    assert any(t.backfilled for t in sink.trades)  # what passed while disconnected came over REST
    assert sample("collector_errors_total", error_type="connection_lost") == 2


@both_transports
async def test_stalled_stream_is_reconnected_by_the_watchdog(
    start: Start, sim: SimulatedExchange, symbols: list[str], sample: Sample, transport: str
) -> None:
    sink = RecordingSink()
    run = await start(sink, SessionOptions(stale_timeout=0.4), connector=CONNECTORS[transport]())
    await eventually(lambda: len(sink.trades) > 20)
    sim.stall(1.0)
    await eventually(lambda: sample("collector_errors_total", error_type="stale") >= 1)
    # counted once the aborted connection's reader has noticed, a moment after the watchdog fired
    await eventually(lambda: sample("websocket_reconnections_total") >= 1)
    seen = len(sink.trades)
    await eventually(lambda: len(sink.trades) > seen + 100)
    await run.stop()
    for symbol in symbols:
        assert_complete(sink, sim, symbol)


async def test_skipped_ids_are_backfilled_before_the_newer_trade(
    start: Start, sim: SimulatedExchange, symbols: list[str], backfiller: RestBackfiller, sample: Sample
) -> None:
    first, other = symbols
    name = canonical(backfiller, first)
    sink = RecordingSink()
    run = await start(sink)
    await eventually(lambda: len(sink.ids(first)) > 20)
    sim.skip_ids(7, symbol=first)
    await eventually(lambda: sample("trades_backfilled_total", symbol=name) == 7)
    await run.stop()
    assert_complete(sink, sim, first)
    assert_complete(sink, sim, other)
    trades = [t for t in sink.trades if t.raw_symbol == first]
    assert len([t for t in trades if t.backfilled]) == 7
    ids = [t.sequence for t in trades]
    assert ids == sorted(ids)  # repaired trades were published before the newer live one
    assert sample("trade_gaps_total", symbol=name) == 1
    assert sample("trade_gap_missing_trades_total", symbol=name) == 7
    assert sample("trades_backfilled_total", symbol=canonical(backfiller, other)) == 0
    [event] = sink.events  # repaired at once: recorded after the trades it recovered
    assert (event.kind, event.symbol, event.trades) == (CoverageKind.REPAIRED, name, 7)
    assert event.first_sequence is not None and event.last_sequence is not None
    position = sink.order.index(event)
    assert {t.sequence for t in sink.order[:position] if isinstance(t, Trade) and t.backfilled} == set(
        range(event.first_sequence, event.last_sequence + 1)
    )


async def test_failed_backfill_publishes_live_and_repairs_later(
    start: Start, sim: SimulatedExchange, symbols: list[str], backfiller: RestBackfiller, sample: Sample
) -> None:
    symbol = symbols[-1]
    sink = RecordingSink()
    run = await start(sink, SessionOptions(gap_retry_initial=0.2, hold_max_s=0.3))
    await eventually(lambda: len(sink.ids(symbol)) > 20)
    sim.rate_limit(1, retry_after=1)
    sim.skip_ids(4, symbol=symbol)
    await eventually(lambda: sample("collector_errors_total", error_type="backfill_failed") >= 1)
    await eventually(lambda: sample("trades_backfilled_total", symbol=canonical(backfiller, symbol)) == 4)
    await run.stop()
    assert_complete(sink, sim, symbol)
    ids = sink.ids(symbol)
    assert ids != sorted(ids)  # the repair came after newer live trades, not instead of them
    assert run.session.tracker.missing() == []


@both_transports
async def test_malformed_frames_are_counted_and_survived(
    start: Start, sim: SimulatedExchange, symbols: list[str], sample: Sample, transport: str
) -> None:
    sink = RecordingSink()
    run = await start(sink, connector=CONNECTORS[transport]())
    await eventually(lambda: len(sink.trades) > 20)
    sent = len(sim.venue.malformed_kinds)
    sim.send_malformed(sent)  # one of each kind the venue's simulator knows
    await eventually(
        lambda: sum(sample("collector_errors_total", error_type=k) for k in PARSE_ERROR_TYPES) == sent
    )
    seen = len(sink.trades)
    await eventually(lambda: len(sink.trades) > seen + 50)
    await run.stop()
    assert sample("collector_errors_total", error_type="malformed_json") >= 2  # invalid, truncated at least
    assert sample("collector_errors_total", error_type="oversized") == 1
    assert sample("websocket_reconnections_total") == 0
    for symbol in symbols:
        assert_complete(sink, sim, symbol)


async def test_sink_failures_are_retried_without_loss(
    start: Start, sim: SimulatedExchange, symbols: list[str], sample: Sample
) -> None:
    sink = RecordingSink(fail=4)
    run = await start(sink)
    await eventually(lambda: len(sink.trades) > 100)
    await run.stop()
    assert sample("collector_errors_total", error_type="publish_failed") == 4
    for symbol in symbols:
        assert_complete(sink, sim, symbol)


@both_transports
async def test_proactive_reconnect_before_the_connection_age_limit(
    start: Start, sim: SimulatedExchange, symbols: list[str], backfiller: RestBackfiller, sample: Sample,
    transport: str,
) -> None:  # fmt: skip
    sink = RecordingSink()
    open_at_once: list[int] = []

    async def watch_connections() -> None:
        while True:
            open_at_once.append(sim.connection_count)
            await asyncio.sleep(0.005)

    watcher = asyncio.create_task(watch_connections())
    run = await start(sink, SessionOptions(max_connection_age=0.3), connector=CONNECTORS[transport]())
    await eventually(lambda: sample("websocket_reconnections_total") >= 3)
    seen = len(sink.trades)
    await eventually(lambda: len(sink.trades) > seen + 20)
    await run.stop()
    watcher.cancel()
    assert max(open_at_once) == 2, "the successor opens before the old connection closes"
    assert sample("collector_errors_total", error_type="connection_lost") == 0
    assert sample("collector_errors_total", error_type="stale") == 0
    duplicates = sum(sample("trades_duplicate_total", symbol=canonical(backfiller, s)) for s in symbols)
    assert duplicates > 0  # both connections delivered the overlap, one copy kept
    for symbol in symbols:
        assert_complete(sink, sim, symbol)


async def test_symbols_are_split_over_connections_beyond_the_stream_limit(
    start: Start, sim: SimulatedExchange, symbols: list[str], backfiller: RestBackfiller, sample: Sample
) -> None:
    adapter = type(backfiller.adapter)([i for s in symbols if (i := backfiller.adapter.symbol_info(s))])
    caps = adapter.capabilities
    adapter.capabilities = msgspec.structs.replace(caps, max_streams_per_connection=caps.streams_per_symbol)
    sink = RecordingSink()
    run = await start(sink, adapter=adapter)
    await eventually(lambda: all(len(sink.ids(s)) > 20 for s in symbols))
    assert sim.connection_count == 2
    assert sample("exchange_connected") == 1
    await run.stop()
    for symbol in symbols:
        assert_complete(sink, sim, symbol)


async def test_backoff_grows_while_refused_and_resets_once_data_flows(
    backfiller: RestBackfiller, symbols: list[str], sample: Sample, metrics: PlatformMetrics, venue: str
) -> None:
    port = free_port()
    delays: list[float] = []

    async def quick_sleep(seconds: float) -> None:
        delays.append(seconds)
        await asyncio.sleep(0.01)

    sink = RecordingSink()
    session = CollectorSession(
        backfiller.adapter, symbols, publisher=sink, ws_base_url=f"ws://127.0.0.1:{port}", backfiller=None,
        metrics=metrics, options=SessionOptions(backoff_initial=0.5, backoff_max=4.0), sleep=quick_sleep,
        rng=lambda: 0.0,
    )  # fmt: skip
    task = asyncio.create_task(session.run())
    await eventually(lambda: len(delays) >= 5)
    assert delays[:5] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert sample("collector_errors_total", error_type="connect_failed") >= 5
    late = await start_venue(venue, metrics, seed=2, port=port)
    try:
        await eventually(lambda: len(sink.trades) > 20)
        refused = len(delays)
        late.drop_connections()
        await eventually(lambda: len(delays) > refused)
        assert delays[refused] == 0.5
    finally:
        session.stop()
        await asyncio.wait_for(task, 5.0)
        await late.stop()


async def test_server_shutdown_makes_the_session_reconnect(
    start: Start, sim: SimulatedExchange, sample: Sample
) -> None:
    sink = RecordingSink()
    run = await start(sink)
    await eventually(lambda: len(sink.trades) > 20)
    await sim.stop()  # the venue's own goodbye (an announcement where it has one), then close 1001
    await eventually(lambda: sample("websocket_reconnections_total") >= 1)
    assert sample("exchange_connected") == 0
    await run.stop()
    assert sample("collector_status") == 0


async def test_feed_states_follow_the_stream_a_quiet_market_and_a_repair(
    start: Start, sim: SimulatedExchange, symbols: list[str], backfiller: RestBackfiller, sample: Sample,
    metrics: PlatformMetrics, venue: str,
) -> None:  # fmt: skip
    board = MemoryCache(metrics=metrics)
    sink = RecordingSink()
    symbol = symbols[0]
    name = canonical(backfiller, symbol)

    async def states() -> dict[str, FeedState]:
        return {s.raw_symbol: s.state for s in await board.feeds()}

    async def reaches(state: FeedState) -> None:
        deadline = time.monotonic() + 10
        while (await states()).get(symbol) is not state:
            assert time.monotonic() < deadline, f"{symbol} never {state}: {await states()}"
            await asyncio.sleep(0.05)

    def gauge(state: FeedState) -> float:
        return sample("feed_state", symbol=name, state=state.value)

    run = await start(sink, SessionOptions(quiet_after=0.5, stale_timeout=10.0), feed_board=board)
    await reaches(FeedState.STREAMING)
    assert (gauge(FeedState.STREAMING), gauge(FeedState.QUIET)) == (1, 0)
    sim.stall(3.0)  # connected, nothing traded: quiet, not an outage
    await reaches(FeedState.QUIET)
    assert (gauge(FeedState.STREAMING), gauge(FeedState.QUIET)) == (0, 1)
    await reaches(FeedState.STREAMING)
    sim.rate_limit(1000, retry_after=1)  # the repair cannot fetch what is skipped
    sim.skip_ids(5, symbol=symbol)
    await reaches(FeedState.REPAIRING)
    [status] = [s for s in await board.feeds() if s.raw_symbol == symbol]
    assert (status.gaps, status.missing, status.exchange, status.symbol) == (1, 5, venue, name)
    sim.faults.rate_limited = 0
    await reaches(FeedState.STREAMING)  # repaired by the retry loop
    [status] = [s for s in await board.feeds() if s.raw_symbol == symbol]
    assert (status.missing, status.repaired) == (0, 5)
    gap, repaired = sink.events  # the gap went on the bus before the trade that revealed it
    assert (gap.kind, gap.trades, repaired.kind, repaired.trades) == (
        CoverageKind.GAP, 5, CoverageKind.REPAIRED, 5,
    )  # fmt: skip
    revealing = sink.order[sink.order.index(gap) + 1]
    assert isinstance(revealing, Trade) and revealing.sequence == (gap.last_sequence or 0) + 1
    assert gap.start_ns <= revealing.ts_event == gap.end_ns
    await run.stop()
    assert_complete(sink, sim, symbol)


async def test_a_restarted_session_repairs_the_time_it_was_away(
    start: Start, sim: SimulatedExchange, symbols: list[str], backfiller: RestBackfiller, sample: Sample,
    venue: str,
) -> None:  # fmt: skip
    first = RecordingSink()
    run = await start(first)
    await eventually(lambda: all(len(first.ids(s)) > 20 for s in symbols))
    await run.stop()
    resume = [
        ResumePoint(venue, s, str(max(first.ids(s))), max(first.ids(s)), 0) for s in symbols
    ]  # what the bus or the store would say after this stop
    await asyncio.sleep(0.5)  # the market trades on while the collector is away
    second = RecordingSink()
    run = await start(second, resume=resume)
    await eventually(lambda: all(second.events and len(second.ids(s)) > 100 for s in symbols))
    await run.stop()
    for symbol in symbols:
        together = RecordingSink()
        together.trades = first.trades + second.trades
        assert_complete(together, sim, symbol)  # nothing missing across the restart
        assert min(second.ids(symbol)) == max(first.ids(symbol)) + 1
    assert {e.kind for e in second.events} == {CoverageKind.REPAIRED}
    assert sample("trades_backfilled_total", symbol=canonical(backfiller, symbols[0])) > 0


async def test_a_gap_the_last_run_left_open_is_repaired_by_the_next(
    start: Start, symbols: list[str], backfiller: RestBackfiller, venue: str
) -> None:
    """A gap still missing when a collector stopped (kept by the bus or the store as an open GAP) is
    repaired by its successor over REST, and resolved with a REPAIRED event."""
    first = RecordingSink()
    run = await start(first)
    await eventually(lambda: all(len(first.ids(s)) > 40 for s in symbols))
    await run.stop()
    raw = symbols[0]
    ids = sorted(first.ids(raw))
    lost = ids[10:15]  # as if these had never reached the bus
    ts = {t.sequence: t.ts_event for t in first.trades if t.raw_symbol == raw}
    after_ns, before_ns = ts[ids[9]], ts[ids[15]]  # the trades either side (venues repairing by time)
    left_open = CoverageEvent(
        venue, canonical(backfiller, raw), raw, CoverageKind.GAP, after_ns, before_ns, time.time_ns(),
        lost[0], lost[-1], 5,
    )  # fmt: skip
    resume = [ResumePoint(venue, s, str(max(first.ids(s))), max(first.ids(s)), 0) for s in symbols]
    second = RecordingSink()
    run = await start(second, SessionOptions(gap_retry_initial=0.05), resume=resume, open_gaps=[left_open])
    await eventually(lambda: set(lost) <= set(second.ids(raw)))

    def resolved() -> set[int]:  # by one REPAIRED over REST, or one per sequence a snapshot sent live
        ranges = [
            (e.first_sequence, e.last_sequence) for e in second.events if e.kind is CoverageKind.REPAIRED
        ]
        return {s for lo, hi in ranges if lo is not None and hi is not None for s in range(lo, hi + 1)}

    await eventually(lambda: set(lost) <= resolved())
    await run.stop()
    fetched = {t.sequence: t for t in second.trades if t.raw_symbol == raw and t.sequence in lost}
    before = {t.sequence: t for t in first.trades if t.raw_symbol == raw and t.sequence in lost}
    assert {k: (t.price, t.quantity, t.ts_event) for k, t in fetched.items()} == {
        k: (t.price, t.quantity, t.ts_event) for k, t in before.items()
    }  # the very trades, exactly


async def test_a_stalled_bus_never_stops_reading_and_what_is_shed_is_repaired_after(
    venue: str, metrics: PlatformMetrics, sample: Sample
) -> None:
    """The exchange pings every 0.3 s and drops a connection that does not answer within 1 s (where the
    venue pings at all): reading must go on while the bus takes nothing for 3 s. The outbox holds 300
    trades; the rest is shed, counted, and repaired over REST once the bus takes trades again, so nothing
    is missing in the end."""
    sim = await start_venue(venue, metrics, seed=3, ping_interval=0.3, ping_timeout=1.0)
    symbols = sorted(sim.symbols)
    sink = StallingSink()
    try:
        async with await discover(venue, sim.rest_url, metrics=metrics) as rest:
            session = CollectorSession(
                rest.adapter, symbols, publisher=sink, backfiller=rest, metrics=metrics,
                ws_base_url=sim.ws_url,
                options=SessionOptions(outbox_max_trades=300, gap_retry_initial=0.2, gap_retry_max=0.5),
            )  # fmt: skip
            task = asyncio.create_task(session.run())
            await eventually(lambda: all(len(sink.ids(s)) > 20 for s in symbols))
            sink.open.clear()  # the bus takes nothing from here on
            await asyncio.sleep(3.0)
            assert sample("trades_shed_total") > 0
            assert sample("collector_outbox_trades") == 300
            sink.open.set()
            await eventually(lambda: not session.tracker.missing(), timeout=20)
            await asyncio.sleep(0.5)
            session.stop()
            await asyncio.wait_for(task, 10)
    finally:
        await sim.stop()
    assert sample("websocket_reconnections_total") == 0  # pings were answered throughout
    for symbol in symbols:
        assert_complete(sink, sim, symbol)
    kinds = [e.kind for e in sink.events]
    assert CoverageKind.GAP in kinds and CoverageKind.REPAIRED in kinds  # recorded, then repaired


class HangingBackfill:
    """A REST repair that never answers (a venue hanging mid-repair), so the session holds the trades
    after the gap until it is stopped."""

    def __init__(self, real: RestBackfiller) -> None:
        self.adapter = real.adapter
        self.asked = asyncio.Event()

    async def fetch_gap(self, gap: Any) -> list[Trade]:
        self.asked.set()
        await asyncio.sleep(3600)
        return []

    async def fetch_recent(self, raw_symbol: str) -> list[Trade] | None:
        await asyncio.sleep(3600)
        return None


async def test_cancelled_while_holding_a_repair_its_held_trades_wait_in_unpublished(
    sim: SimulatedExchange, symbols: list[str], backfiller: RestBackfiller, metrics: PlatformMetrics
) -> None:
    """A session whose repair hangs is stopped (cancelled: its graceful stop begins) and cancelled again
    while it waits for the repair (the daemon's deadline): the trades held behind the gap are not lost but
    wait, in order, in `unpublished` (what the daemon spools)."""
    symbol = symbols[0]
    sink = RecordingSink()
    hanging = HangingBackfill(backfiller)
    session = CollectorSession(
        backfiller.adapter, symbols, publisher=sink, ws_base_url=sim.ws_url, backfiller=hanging,  # type: ignore[arg-type]
        metrics=metrics, options=SessionOptions(hold_max_s=3600),
    )  # fmt: skip
    task = asyncio.create_task(session.run())
    await eventually(lambda: len(sink.ids(symbol)) > 20)
    sim.skip_ids(5, symbol=symbol)
    await asyncio.wait_for(hanging.asked.wait(), 10)
    await asyncio.sleep(0.3)  # trades after the gap arrive and are held
    task.cancel()
    await asyncio.sleep(0.3)  # stopping: the repair has the readers' grace to finish
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    published = sink.ids(symbol)
    held = [t.sequence for item in session.unpublished for t in item.trades if t.raw_symbol == symbol]
    assert held, "nothing was held behind the gap"
    # Published up to the gap, held from just after it, nothing missing or twice on either side.
    assert published == list(range(published[0], published[-1] + 1))
    assert held == list(range(published[-1] + 6, published[-1] + 6 + len(held)))
