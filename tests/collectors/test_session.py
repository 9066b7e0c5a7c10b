"""CollectorSession over real websockets and HTTP against the Binance simulator on loopback.

Completeness is checked against the simulator's own history: for every symbol the published trade ids
are exactly the simulator's ids between the first and the last one published, each once, with the same
exact price strings.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import msgspec
import pytest

from collectors.adapter import Capabilities
from collectors.backfill import RestBackfiller, discover
from collectors.exchanges.binance import BinanceAdapter
from collectors.session import CollectorSession
from collectors.transport import TransportClosed, WebsocketsConnector, WsConnector
from collectors.transport_picows import PicowsConnector
from core.errors import BusError
from core.types import CoverageEvent, CoverageKind, FeedState, ResumePoint, Trade
from monitoring.metrics import PlatformMetrics
from simulator.binance import BinanceSimulator
from simulator.markets import SyntheticMarket
from storage.memory_cache import MemoryCache
from tests.conftest import free_port

SYMBOLS = ["BTCUSDT", "ETHUSDT"]
CONNECTORS: dict[str, Callable[[], WsConnector]] = {
    "websockets": WebsocketsConnector,
    "picows": PicowsConnector,
}
both_transports = pytest.mark.parametrize("transport", sorted(CONNECTORS))


class RecordingSink:
    """The test's observer: records what the session published; can refuse the first `fail` calls."""

    def __init__(self, fail: int = 0) -> None:
        self.trades: list[Trade] = []
        self.events: list[CoverageEvent] = []
        self.order: list[Trade | CoverageEvent] = []
        self.calls = 0
        self.fail = fail

    async def publish(self, trades: Sequence[Trade]) -> None:
        self.calls += 1
        if self.fail:
            self.fail -= 1
            raise BusError("bus is down")
        self.trades.extend(trades)
        self.order.extend(trades)

    async def publish_events(self, events: Sequence[CoverageEvent]) -> None:
        self.events.extend(events)
        self.order.extend(events)

    def ids(self, symbol: str) -> list[int]:
        return [t.sequence for t in self.trades if t.raw_symbol == symbol]  # type: ignore[misc]


async def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


def assert_complete(sink: RecordingSink, sim: BinanceSimulator, symbol: str) -> None:
    ids = sink.ids(symbol)
    assert ids, f"nothing published for {symbol}"
    assert len(ids) == len(set(ids)), "duplicates published"
    history = {t.trade_id: t for t in sim.history(symbol)}
    expected = [i for i in sorted(history) if min(ids) <= i <= max(ids)]
    assert sorted(ids) == expected, f"missing ids: {sorted(set(expected) - set(ids))[:10]}"
    for trade in sink.trades:
        if trade.raw_symbol == symbol:
            assert trade.price == history[trade.sequence].price  # type: ignore[index]
            assert trade.trade_id == str(trade.sequence)


def sample(metrics: PlatformMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, {"exchange": "binance", **labels}) or 0.0


@pytest.fixture
async def sim(metrics: PlatformMetrics) -> AsyncIterator[BinanceSimulator]:
    simulator = BinanceSimulator(SyntheticMarket(SYMBOLS, tps=400, seed=1), metrics=metrics)
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
async def backfiller(sim: BinanceSimulator, metrics: PlatformMetrics) -> AsyncIterator[RestBackfiller]:
    async with await discover("binance", sim.rest_url, metrics=metrics) as rest:
        yield rest


class Running:
    def __init__(self, session: CollectorSession, task: asyncio.Task[None]) -> None:
        self.session, self.task = session, task

    async def stop(self) -> float:
        started = time.monotonic()
        self.session.stop()
        await asyncio.wait_for(self.task, 5.0)
        return time.monotonic() - started


@pytest.fixture
async def start(
    sim: BinanceSimulator, backfiller: RestBackfiller, metrics: PlatformMetrics
) -> AsyncIterator[Callable[..., Awaitable[Running]]]:
    running: list[Running] = []

    async def _start(sink: RecordingSink, **options: Any) -> Running:
        options.setdefault("ws_base_url", sim.ws_url)
        session = CollectorSession(
            options.pop("adapter", backfiller.adapter), SYMBOLS, sink=sink, backfiller=backfiller,
            metrics=metrics, **options,
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
    start: Callable[..., Awaitable[Running]], sim: BinanceSimulator, metrics: PlatformMetrics, transport: str
) -> None:
    sink = RecordingSink()
    run = await start(sink, connector=CONNECTORS[transport]())
    await eventually(lambda: all(len(sink.ids(s)) > 50 for s in SYMBOLS))
    assert sample(metrics, "collector_status") == 1
    assert sample(metrics, "exchange_connected") == 1
    # every error type exists from the start at 0, so that rate() sees the first occurrence
    registry = metrics.registry
    for error_type in ("gap_abandoned", "unknown_symbol", "stale"):
        labels = {"exchange": "binance", "error_type": error_type}
        assert registry.get_sample_value("collector_errors_total", labels) == 0
    assert await run.stop() < 1.0
    assert sample(metrics, "collector_status") == 0
    assert sample(metrics, "exchange_connected") == 0
    for symbol, canonical in (("BTCUSDT", "BTC-USDT"), ("ETHUSDT", "ETH-USDT")):
        assert_complete(sink, sim, symbol)
        received = sample(metrics, "trades_received_total", symbol=canonical)
        assert received == len(sink.ids(symbol))
        newest = max(t.ts_event for t in sink.trades if t.raw_symbol == symbol)
        assert sample(metrics, "last_trade_timestamp", symbol=canonical) == pytest.approx(
            newest / 1e9, abs=1e-3
        )
    assert not any(t.backfilled for t in sink.trades)
    assert sample(metrics, "trade_latency_seconds_count") > 0
    assert sample(metrics, "websocket_reconnections_total") == 0


@both_transports
async def test_dropped_connection_loses_no_trade(
    start: Callable[..., Awaitable[Running]], sim: BinanceSimulator, metrics: PlatformMetrics, transport: str
) -> None:
    sink = RecordingSink()
    run = await start(sink, connector=CONNECTORS[transport]())
    await eventually(lambda: len(sink.trades) > 50)
    for _ in range(2):
        sim.drop_connections()
        reconnects = sample(metrics, "websocket_reconnections_total")
        await eventually(lambda r=reconnects: sample(metrics, "websocket_reconnections_total") > r)
        seen = len(sink.trades)
        await eventually(lambda s=seen: len(sink.trades) > s + 100)
    await run.stop()
    for symbol in SYMBOLS:
        assert_complete(sink, sim, symbol)
    assert any(t.backfilled for t in sink.trades)  # what passed while disconnected came over REST
    assert sample(metrics, "collector_errors_total", error_type="connection_lost") == 2


@both_transports
async def test_stalled_stream_is_reconnected_by_the_watchdog(
    start: Callable[..., Awaitable[Running]], sim: BinanceSimulator, metrics: PlatformMetrics, transport: str
) -> None:
    sink = RecordingSink()
    run = await start(sink, stale_timeout=0.4, connector=CONNECTORS[transport]())
    await eventually(lambda: len(sink.trades) > 20)
    sim.stall(1.0)
    await eventually(lambda: sample(metrics, "collector_errors_total", error_type="stale") >= 1)
    # counted once the aborted connection's reader has noticed, a moment after the watchdog fired
    await eventually(lambda: sample(metrics, "websocket_reconnections_total") >= 1)
    seen = len(sink.trades)
    await eventually(lambda: len(sink.trades) > seen + 100)
    await run.stop()
    for symbol in SYMBOLS:
        assert_complete(sink, sim, symbol)


async def test_skipped_ids_are_backfilled_before_the_newer_trade(
    start: Callable[..., Awaitable[Running]], sim: BinanceSimulator, metrics: PlatformMetrics
) -> None:
    sink = RecordingSink()
    run = await start(sink)
    await eventually(lambda: len(sink.ids("BTCUSDT")) > 20)
    sim.skip_ids(7, symbol="BTCUSDT")
    await eventually(lambda: sample(metrics, "trades_backfilled_total", symbol="BTC-USDT") == 7)
    await run.stop()
    assert_complete(sink, sim, "BTCUSDT")
    assert_complete(sink, sim, "ETHUSDT")
    btc = [t for t in sink.trades if t.raw_symbol == "BTCUSDT"]
    backfilled = [i for i, t in enumerate(btc) if t.backfilled]
    assert len(backfilled) == 7
    ids = [t.sequence for t in btc]
    assert ids == sorted(ids)  # repaired trades were published before the newer live one
    assert sample(metrics, "trade_gaps_total", symbol="BTC-USDT") == 1
    assert sample(metrics, "trade_gap_missing_trades_total", symbol="BTC-USDT") == 7
    assert sample(metrics, "trades_backfilled_total", symbol="ETH-USDT") == 0
    [event] = sink.events  # repaired at once: recorded after the trades it recovered
    assert (event.kind, event.symbol, event.trades) == (CoverageKind.REPAIRED, "BTC-USDT", 7)
    assert event.last_sequence - event.first_sequence + 1 == 7
    position = sink.order.index(event)
    assert {t.sequence for t in sink.order[:position] if isinstance(t, Trade) and t.backfilled} == set(
        range(event.first_sequence, event.last_sequence + 1)
    )


async def test_failed_backfill_publishes_live_and_repairs_later(
    start: Callable[..., Awaitable[Running]], sim: BinanceSimulator, metrics: PlatformMetrics
) -> None:
    sink = RecordingSink()
    run = await start(sink, gap_retry_initial=0.2)
    await eventually(lambda: len(sink.ids("ETHUSDT")) > 20)
    sim.rate_limit(1, retry_after=1)
    sim.skip_ids(4, symbol="ETHUSDT")
    await eventually(lambda: sample(metrics, "collector_errors_total", error_type="backfill_failed") >= 1)
    await eventually(lambda: sample(metrics, "trades_backfilled_total", symbol="ETH-USDT") == 4)
    await run.stop()
    assert_complete(sink, sim, "ETHUSDT")
    eth = sink.ids("ETHUSDT")
    assert eth != sorted(eth)  # the repair came after newer live trades, not instead of them
    assert run.session.tracker.missing() == []


@both_transports
async def test_malformed_frames_are_counted_and_survived(
    start: Callable[..., Awaitable[Running]], sim: BinanceSimulator, metrics: PlatformMetrics, transport: str
) -> None:
    sink = RecordingSink()
    run = await start(sink, connector=CONNECTORS[transport]())
    await eventually(lambda: len(sink.trades) > 20)
    sim.send_malformed(11)  # one of each kind the simulator knows
    expected = {
        "malformed_json": 3,  # invalid, truncated, binary garbage
        "unexpected_schema": 3,  # price as number, id as string, missing field
        "invalid_value": 2,  # NaN price, negative quantity
        "unknown_symbol": 1,
        "unexpected_event": 1,
        "oversized": 1,
    }
    await eventually(
        lambda: sum(sample(metrics, "collector_errors_total", error_type=k) for k in expected) == 11
    )
    seen = len(sink.trades)
    await eventually(lambda: len(sink.trades) > seen + 50)
    await run.stop()
    for error_type, count in expected.items():
        assert sample(metrics, "collector_errors_total", error_type=error_type) == count, error_type
    assert sample(metrics, "websocket_reconnections_total") == 0
    for symbol in SYMBOLS:
        assert_complete(sink, sim, symbol)


async def test_sink_failures_are_retried_without_loss(
    start: Callable[..., Awaitable[Running]], sim: BinanceSimulator, metrics: PlatformMetrics
) -> None:
    sink = RecordingSink(fail=4)
    run = await start(sink)
    await eventually(lambda: len(sink.trades) > 100)
    await run.stop()
    assert sample(metrics, "collector_errors_total", error_type="publish_failed") == 4
    for symbol in SYMBOLS:
        assert_complete(sink, sim, symbol)


@both_transports
async def test_proactive_reconnect_before_the_connection_age_limit(
    start: Callable[..., Awaitable[Running]], sim: BinanceSimulator, metrics: PlatformMetrics, transport: str
) -> None:
    sink = RecordingSink()
    open_at_once: list[int] = []

    async def watch_connections() -> None:
        while True:
            open_at_once.append(sim.connection_count)
            await asyncio.sleep(0.005)

    watcher = asyncio.create_task(watch_connections())
    run = await start(sink, max_connection_age=0.3, connector=CONNECTORS[transport]())
    await eventually(lambda: sample(metrics, "websocket_reconnections_total") >= 3)
    seen = len(sink.trades)
    await eventually(lambda: len(sink.trades) > seen + 20)
    await run.stop()
    watcher.cancel()
    assert max(open_at_once) == 2, "the successor opens before the old connection closes"
    assert sample(metrics, "collector_errors_total", error_type="connection_lost") == 0
    assert sample(metrics, "collector_errors_total", error_type="stale") == 0
    assert sample(metrics, "trades_duplicate_total", symbol="BTC-USDT") > 0  # both delivered, one kept
    for symbol in SYMBOLS:
        assert_complete(sink, sim, symbol)


async def test_symbols_are_split_over_connections_beyond_the_stream_limit(
    start: Callable[..., Awaitable[Running]],
    sim: BinanceSimulator,
    backfiller: RestBackfiller,
    metrics: PlatformMetrics,
) -> None:
    class OneStreamAdapter(BinanceAdapter):
        capabilities = msgspec.structs.replace(BinanceAdapter.capabilities, max_streams_per_connection=1)

    adapter = OneStreamAdapter([i for s in SYMBOLS if (i := backfiller.adapter.symbol_info(s))])
    sink = RecordingSink()
    run = await start(sink, adapter=adapter)
    await eventually(lambda: all(len(sink.ids(s)) > 20 for s in SYMBOLS))
    assert sim.connection_count == 2
    assert sample(metrics, "exchange_connected") == 1
    await run.stop()
    for symbol in SYMBOLS:
        assert_complete(sink, sim, symbol)


async def test_backoff_grows_while_refused_and_resets_once_data_flows(
    backfiller: RestBackfiller, metrics: PlatformMetrics
) -> None:
    port = free_port()
    delays: list[float] = []

    async def quick_sleep(seconds: float) -> None:
        delays.append(seconds)
        await asyncio.sleep(0.01)

    sink = RecordingSink()
    session = CollectorSession(
        backfiller.adapter, SYMBOLS, sink=sink, ws_base_url=f"ws://127.0.0.1:{port}", backfiller=None,
        metrics=metrics, backoff_initial=0.5, backoff_max=4.0, sleep=quick_sleep, rng=lambda: 0.0,
    )  # fmt: skip
    task = asyncio.create_task(session.run())
    await eventually(lambda: len(delays) >= 5)
    assert delays[:5] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert sample(metrics, "collector_errors_total", error_type="connect_failed") >= 5
    late = BinanceSimulator(SyntheticMarket(SYMBOLS, tps=400, seed=2), port=port, metrics=metrics)
    await late.start()
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
    start: Callable[..., Awaitable[Running]], sim: BinanceSimulator, metrics: PlatformMetrics
) -> None:
    sink = RecordingSink()
    run = await start(sink)
    await eventually(lambda: len(sink.trades) > 20)
    await sim.stop()  # announces serverShutdown, then closes every websocket
    await eventually(lambda: sample(metrics, "websocket_reconnections_total") >= 1)
    assert sample(metrics, "collector_errors_total", error_type="connection_lost") == 0
    assert sample(metrics, "exchange_connected") == 0
    await run.stop()
    assert sample(metrics, "collector_status") == 0


class ScriptedConnector:
    """A fake transport, because which frames share one read is up to timing on a real socket: the first
    connection delivers `first_read` as one batch; every connection after that stays silent."""

    def __init__(self, first_read: list[bytes]) -> None:
        self.first_read = first_read
        self.connections = 0

    async def connect(self, url: str, caps: Capabilities) -> Any:
        self.connections += 1
        return _ScriptedConnection(self.first_read if self.connections == 1 else [])


class _ScriptedConnection:
    def __init__(self, frames: list[bytes]) -> None:
        self.frames = frames
        self.closed = asyncio.Event()

    async def recv_many(self, limit: int) -> list[bytes | str]:
        if self.frames:
            batch, self.frames = list(self.frames), []
            return batch
        await self.closed.wait()
        raise TransportClosed("closed")

    async def send(self, text: str) -> None:
        return None

    async def close(self) -> None:
        self.closed.set()

    def abort(self) -> None:
        self.closed.set()


async def test_trades_read_with_a_server_shutdown_are_published_before_reconnecting(
    start: Callable[..., Awaitable[Running]], metrics: PlatformMetrics
) -> None:
    def trade(trade_id: int) -> bytes:
        event = {"e": "trade", "E": 1, "s": "BTCUSDT", "t": trade_id, "p": "100.5", "q": "0.25",
                 "T": 1_700_000_000_000 + trade_id, "m": False, "M": True}  # fmt: skip
        return json.dumps({"stream": "btcusdt@trade", "data": event}).encode()

    shutdown = json.dumps({"stream": "!serverShutdown", "data": {"e": "serverShutdown", "E": 1}}).encode()
    connector = ScriptedConnector([trade(7), trade(8), shutdown, trade(9)])
    sink = RecordingSink()
    run = await start(sink, connector=connector)
    await eventually(lambda: connector.connections >= 2)
    assert sink.ids("BTCUSDT") == [7, 8]  # 9 came after the announcement: the next connection's business
    assert sample(metrics, "websocket_reconnections_total") >= 1
    await run.stop()


async def test_feed_states_follow_the_stream_a_quiet_market_and_a_repair(
    start: Callable[..., Awaitable[Running]], sim: BinanceSimulator, metrics: PlatformMetrics
) -> None:
    board = MemoryCache(metrics=metrics)
    sink = RecordingSink()

    async def states() -> dict[str, FeedState]:
        return {s.raw_symbol: s.state for s in await board.feeds()}

    async def reaches(symbol: str, state: FeedState) -> None:
        deadline = time.monotonic() + 10
        while (await states()).get(symbol) is not state:
            assert time.monotonic() < deadline, f"{symbol} never {state}: {await states()}"
            await asyncio.sleep(0.05)

    def gauge(state: FeedState) -> float:
        return sample(metrics, "feed_state", symbol="BTC-USDT", state=state.value)

    run = await start(sink, feed_board=board, quiet_after=0.5)
    await reaches("BTCUSDT", FeedState.STREAMING)
    assert (gauge(FeedState.STREAMING), gauge(FeedState.QUIET)) == (1, 0)
    sim.stall(3.0)  # connected, nothing traded: quiet, not an outage
    await reaches("BTCUSDT", FeedState.QUIET)
    assert (gauge(FeedState.STREAMING), gauge(FeedState.QUIET)) == (0, 1)
    await reaches("BTCUSDT", FeedState.STREAMING)
    sim.rate_limit(1000, retry_after=1)  # the repair cannot fetch what is skipped
    sim.skip_ids(5, symbol="BTCUSDT")
    await reaches("BTCUSDT", FeedState.REPAIRING)
    [btc] = [s for s in await board.feeds() if s.raw_symbol == "BTCUSDT"]
    assert (btc.gaps, btc.missing, btc.exchange, btc.symbol) == (1, 5, "binance", "BTC-USDT")
    sim.faults.rate_limited = 0
    await reaches("BTCUSDT", FeedState.STREAMING)  # repaired by the retry loop
    [btc] = [s for s in await board.feeds() if s.raw_symbol == "BTCUSDT"]
    assert (btc.missing, btc.repaired) == (0, 5)
    gap, repaired = sink.events  # the gap went on the bus before the trade that revealed it
    assert (gap.kind, gap.trades, repaired.kind, repaired.trades) == (
        CoverageKind.GAP, 5, CoverageKind.REPAIRED, 5,
    )  # fmt: skip
    revealing = sink.order[sink.order.index(gap) + 1]
    assert isinstance(revealing, Trade) and revealing.sequence == gap.last_sequence + 1
    assert gap.start_ns <= revealing.ts_event == gap.end_ns
    await run.stop()
    assert_complete(sink, sim, "BTCUSDT")


async def test_a_restarted_session_repairs_the_time_it_was_away(
    start: Callable[..., Awaitable[Running]], sim: BinanceSimulator, metrics: PlatformMetrics
) -> None:
    first = RecordingSink()
    run = await start(first)
    await eventually(lambda: all(len(first.ids(s)) > 20 for s in SYMBOLS))
    await run.stop()
    resume = [
        ResumePoint("binance", s, str(max(first.ids(s))), max(first.ids(s)), 0) for s in SYMBOLS
    ]  # what the bus or the store would say after this stop
    await asyncio.sleep(0.5)  # the market trades on while the collector is away
    second = RecordingSink()
    run = await start(second, resume=resume)
    await eventually(lambda: all(second.events and len(second.ids(s)) > 100 for s in SYMBOLS))
    await run.stop()
    for symbol in SYMBOLS:
        together = RecordingSink()
        together.trades = first.trades + second.trades
        assert_complete(together, sim, symbol)  # nothing missing across the restart
        assert min(second.ids(symbol)) == max(first.ids(symbol)) + 1
    assert {e.kind for e in second.events} == {CoverageKind.REPAIRED}
    assert sample(metrics, "trades_backfilled_total", symbol="BTC-USDT") > 0


class StallingSink(RecordingSink):
    """A bus that stops taking anything until `resume()` (a Redis outage, an overloaded bus)."""

    def __init__(self) -> None:
        super().__init__()
        self.open = asyncio.Event()
        self.open.set()

    async def publish(self, trades: Sequence[Trade]) -> None:
        await self.open.wait()
        await super().publish(trades)

    async def publish_events(self, events: Sequence[CoverageEvent]) -> None:
        await self.open.wait()
        await super().publish_events(events)


async def test_a_stalled_bus_never_stops_reading_and_what_is_shed_is_repaired_after(
    metrics: PlatformMetrics,
) -> None:
    """The exchange pings every 0.3 s and drops a connection that does not answer within 1 s: reading must
    go on while the bus takes nothing for 3 s. The outbox holds 300 trades; the rest is shed, counted, and
    repaired over REST once the bus takes trades again, so nothing is missing in the end."""
    sim = BinanceSimulator(
        SyntheticMarket(SYMBOLS, tps=400, seed=3), metrics=metrics, ping_interval=0.3, ping_timeout=1.0
    )
    await sim.start()
    sink = StallingSink()
    try:
        async with await discover("binance", sim.rest_url, metrics=metrics) as rest:
            session = CollectorSession(
                rest.adapter, SYMBOLS, sink=sink, backfiller=rest, metrics=metrics, ws_base_url=sim.ws_url,
                outbox_max_trades=300, gap_retry_initial=0.2, gap_retry_max=0.5,
            )  # fmt: skip
            task = asyncio.create_task(session.run())
            await eventually(lambda: all(len(sink.ids(s)) > 20 for s in SYMBOLS))
            sink.open.clear()  # the bus takes nothing from here on
            await asyncio.sleep(3.0)
            assert sample(metrics, "trades_shed_total") > 0
            assert sample(metrics, "collector_outbox_trades") == 300
            sink.open.set()
            await eventually(lambda: not session.tracker.missing(), timeout=20)
            await asyncio.sleep(0.5)
            session.stop()
            await asyncio.wait_for(task, 10)
    finally:
        await sim.stop()
    assert sample(metrics, "websocket_reconnections_total") == 0  # pings were answered throughout
    for symbol in SYMBOLS:
        assert_complete(sink, sim, symbol)
    kinds = [e.kind for e in sink.events]
    assert CoverageKind.GAP in kinds and CoverageKind.REPAIRED in kinds  # recorded, then repaired
