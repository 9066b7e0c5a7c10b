"""The ONE websocket loop, for every venue: connect, subscribe, keep alive, read, watch, reconnect, repair.

It reads the adapter's `Capabilities` and never names a venue. Per connection (symbols are split over
several when they exceed the venue's stream limit): connect with the adapter's URL and subscribe messages
(at most `max_subscriptions_per_message` symbols each; every reconnect resubscribes), send the venue's
application ping every `ping_interval_s` where it needs one, read frames, parse them with the adapter.
Reading never waits: each batch of frames read goes to `Admission` (gap checks; a gap is repaired in a
task of its own while the symbol's newer trades wait, bounded), then to the `Outbox`, which one task
delivers to the sink, so pings are answered and frames read while the bus is slow or a repair runs. Where
the venue has no contiguous sequence the store de-duplicates by trade id. A watchdog closes the
connection when no frame arrived for
`stale_timeout` seconds, when an application ping went unanswered for `ping_timeout_s`, or on stop().
Before the venue's connection-age cut-off it opens a successor on the same symbols and closes the old
connection only once the successor receives data (make before break: no gap to backfill; the overlap's
duplicates are dropped). Failed connects back off exponentially with jitter; the backoff resets once data
flows. Gaps that could not be repaired stay pending and are retried in the background with backoff.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar

from loguru import logger

from collectors.adapter import (
    ExchangeAdapter,
    Gap,
    HeartbeatKind,
    ReconnectRequested,
    RepairKind,
    SequenceKind,
    chunks,
)
from collectors.admission import Admission
from collectors.backfill import TradeBackfill
from collectors.backoff import Backoff
from collectors.gaps import GapTracker
from collectors.outbox import Outbox, TradeSink
from collectors.repair import GapRepair
from collectors.session_metrics import (
    CONNECT_FAILED,
    CONNECTION_LOST,
    INTERNAL,
    PING_TIMEOUT,
    STALE,
    SessionMetrics,
)
from collectors.transport import WebsocketsConnector, WsConnection, WsConnector
from core.clock import Clock, SystemClock, receive_time_ns
from core.errors import ConfigError, ParseError, PlatformError
from core.ports import FeedBoard
from core.types import BusItem, CoverageEvent, ResumePoint, Trade
from monitoring import tracing
from monitoring.metrics import METRICS, PlatformMetrics

T = TypeVar("T")
_PREVIEW_CHARS = 200
MAX_FRAMES_PER_READ = 1000  # frames parsed, gap-checked and published as one batch (at most)


__all__ = ["MAX_FRAMES_PER_READ", "CollectorSession", "TradeSink"]


class _Connection:
    """Per-connection state shared by its reader and its watchdog (times from `monotonic`, seconds).

    A connection that reaches its maximum age starts a successor on the same symbols and keeps reading
    until the successor receives trades (make before break): `successor_flowing` is the event the
    successor sets then (`announce` on the successor's side)."""

    def __init__(self, index: int, raw_symbols: list[str], announce: asyncio.Event | None = None) -> None:
        self.index = index
        self.raw_symbols = raw_symbols
        self.opened_at = 0.0
        self.last_rx = 0.0
        self.ping_sent_at = 0.0  # when the unanswered application ping went out (0: none outstanding)
        self.open = False
        self.data_flowed = False
        self.reason = ""
        self.announce = announce
        self.successor_flowing: asyncio.Event | None = None


class CollectorSession:
    """Collects `raw_symbols` from one exchange into `sink` until `stop()` (or cancellation).

    Times: `stale_timeout`, backoff and `max_connection_age` in seconds (age default: the venue's limit
    minus its margin; None when the venue has none). `sleep`, `rng`, `monotonic` and `clock` are
    injectable for tests.
    """

    def __init__(
        self,
        adapter: ExchangeAdapter,
        raw_symbols: Sequence[str],
        *,
        sink: TradeSink,
        ws_base_url: str | None = None,
        backfiller: TradeBackfill | None = None,
        metrics: PlatformMetrics = METRICS,
        stale_timeout: float = 30.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        max_connection_age: float | None = None,
        gap_retry_initial: float = 1.0,
        gap_retry_max: float = 60.0,
        max_gap_attempts: int = 20,
        publish_retry_max: float = 5.0,
        outbox_max_trades: int = 200_000,
        hold_max_s: float = 10.0,
        feed_board: FeedBoard | None = None,
        quiet_after: float = 10.0,
        resume: Sequence[ResumePoint] = (),
        open_gaps: Sequence[CoverageEvent] = (),
        connector: WsConnector | None = None,
        clock: Clock | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        symbols = list(dict.fromkeys(raw_symbols))
        if not symbols:
            raise ConfigError("a collector needs at least one symbol")
        unknown = [s for s in symbols if adapter.symbol_info(s) is None]
        if unknown:
            raise ConfigError(f"{adapter.name} does not list symbols {unknown}")
        self._adapter = adapter
        self._sink = sink
        self.reads = 0  # reads of frames from any connection (see `idle`)
        self._ws_base_url = ws_base_url or adapter.default_ws_url
        self._stale_timeout = stale_timeout
        self._backoff_args = (backoff_initial, backoff_max, rng)
        self._caps = caps = adapter.capabilities
        self._max_age = max_connection_age or caps.proactive_reconnect_s
        self._gap_checked = caps.sequence is SequenceKind.CONTIGUOUS
        self._gap_retry = (gap_retry_initial, gap_retry_max)
        self._feed_board = feed_board
        self._quiet_after_ns = int(quiet_after * 1e9)
        self._connections_alive: list[_Connection] = []
        self._connector = connector or WebsocketsConnector()
        self._clock = clock or SystemClock()
        self._sleep = sleep
        self._monotonic = monotonic
        self._stop = asyncio.Event()
        self._group: asyncio.TaskGroup | None = None
        self._tracker = GapTracker()
        per_conn = caps.symbols_per_connection
        self._connections = [
            _Connection(i, symbols[start : start + per_conn])
            for i, start in enumerate(range(0, len(symbols), per_conn))
        ]
        canonical = {s: adapter.symbol_info(s).symbol for s in symbols}  # type: ignore[union-attr]
        self._metrics = SessionMetrics(metrics, adapter.name, canonical, len(self._connections))
        self._log = logger.bind(component="collector", exchange=adapter.name)
        self._repair = GapRepair(
            self._tracker,
            backfiller,
            self._metrics,
            exchange=adapter.name,
            canonical=canonical,
            max_attempts=max_gap_attempts,
            clock=self._clock,
        )
        self._outbox = Outbox(sink, self._metrics, max_trades=outbox_max_trades, retry_max=publish_retry_max)
        self._tasks: set[asyncio.Task[None]] = set()  # repairs and connections, cancelled at the end
        self._admission = Admission(
            tracker=self._tracker,
            repair=self._repair,
            outbox=self._outbox,
            metrics=self._metrics,
            clock=self._clock,
            spawn=self._spawn,
            monotonic=monotonic,
            gap_checked=self._gap_checked,
            hold_max_s=hold_max_s,
            recent_page_size=caps.repair_page_size if caps.repair is RepairKind.RECENT_ONLY else 0,
        )
        self._resume(resume, symbols)
        self._reopen(open_gaps, symbols)

    def _resume(self, points: Sequence[ResumePoint], symbols: Sequence[str]) -> None:
        """Continue each symbol from where it was left off (a restart): its first live trade then reveals
        what was missed meanwhile, repaired like any gap."""
        wanted = set(symbols)
        for point in points:
            if point.raw_symbol not in wanted or point.exchange != self._adapter.name:
                continue
            self._admission.resume_ns[point.raw_symbol] = point.ts_event
            self._admission.seen(point.raw_symbol, point.trade_id)
            if self._gap_checked and point.sequence is not None:
                self._tracker.resume(point.raw_symbol, point.sequence, point.ts_event)
                self._log.info(
                    "{} resumes after sequence {} (trade {}): what came since is repaired over REST",
                    point.raw_symbol,
                    point.sequence,
                    point.trade_id,
                )

    def _reopen(self, gaps: Sequence[CoverageEvent], symbols: Sequence[str]) -> None:
        """Gaps an earlier run left unresolved: missing again, so the background retry repairs them."""
        if not self._gap_checked:
            return
        wanted = set(symbols)
        for event in gaps:
            if event.raw_symbol not in wanted or event.exchange != self._adapter.name:
                continue
            if event.first_sequence is None or event.last_sequence is None:
                continue
            gap = Gap(
                event.raw_symbol, event.first_sequence, event.last_sequence, event.start_ns, event.end_ns
            )
            if self._tracker.reopen(gap):
                self._log.info(
                    "{} sequences {}-{} were still missing when the last run stopped: repaired again",
                    event.raw_symbol,
                    event.first_sequence,
                    event.last_sequence,
                )

    @property
    def tracker(self) -> GapTracker:
        return self._tracker

    @property
    def idle(self) -> bool:
        """Every trade read so far is on the sink: none held for a repair, none waiting to be published,
        no gap still to repair.
        A finite source (a replay) whose last frame was sent has been collected to its end once this
        holds and `reads` stands still."""
        return self._admission.idle and self._outbox.idle and self._tracker.missing_count() == 0

    @property
    def unpublished(self) -> list[BusItem]:
        """What the sink still refused while stopping, in order (for the spool)."""
        return self._outbox.unpublished

    def stop(self) -> None:
        """Stop reading; run() then hands on what it holds, closes its connections and returns."""
        self._stop.set()

    async def run(self) -> None:
        self._metrics.running(True)
        self._log.info(
            "collector starting: {} symbols on {} connection(s)", self._symbol_count(), len(self._connections)
        )
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                for conn in self._connections:
                    self._spawn(self._connection_loop(conn))
                group.create_task(self._gap_retry_loop())
                group.create_task(self._metrics_loop())
                group.create_task(self._outbox.run())
                group.create_task(self._hand_on_at_stop())
        finally:
            self._metrics.flush()
            self._metrics.running(False)
            self._log.info("collector stopped")

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """A task of the session's group, tracked so that the stop can end it (readers, repairs)."""
        assert self._group is not None  # only run() reads and repairs
        task = self._group.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _hand_on_at_stop(self) -> None:
        """At stop: let the readers finish (bounded), end the repairs still running, send every held trade
        on, then let the outbox deliver what it holds and return."""
        await self._stop.wait()
        readers = [t for t in self._tasks if not t.done()]
        if readers:
            await asyncio.wait(readers, timeout=2.0)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._admission.release_all()
        self._outbox.stop()

    def _symbol_count(self) -> int:
        return sum(len(c.raw_symbols) for c in self._connections)

    # -- connections -------------------------------------------------------------------------------
    async def _connection_loop(self, conn: _Connection) -> None:
        initial, maximum, rng = self._backoff_args
        backoff = Backoff(initial, maximum, rng=rng)
        while not self._stop.is_set():
            try:
                reason = await self._connect_and_read(conn, backoff)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # supervised loop: a bug must not end collection
                reason = "error"
                self._metrics.error(INTERNAL)
                self._log.opt(exception=exc).error("connection {} failed unexpectedly", conn.index)
            if self._stop.is_set():
                break
            self._metrics.reconnected()
            if conn.successor_flowing is not None:
                return  # the successor started at the maximum age owns these symbols now
            delay = backoff.next_delay()
            self._log.info("reconnecting connection {} ({}) in {:.2f}s", conn.index, reason, delay)
            await self._pause(delay)

    def _start_successor(self, conn: _Connection) -> asyncio.Event:
        """A new connection on `conn`'s symbols; the event is set once data flows on it. Trades that
        arrive on both while they overlap are dropped by the gap tracker as duplicates."""
        flowing = asyncio.Event()
        successor = _Connection(conn.index, conn.raw_symbols, announce=flowing)
        self._spawn(self._connection_loop(successor))
        return flowing

    async def _connect_and_read(self, conn: _Connection, backoff: Backoff) -> str:
        url = self._adapter.ws_url(self._ws_base_url, conn.raw_symbols)
        try:
            ws = await self._until_stopped(self._connector.connect(url, self._caps))
        except PlatformError as exc:
            self._metrics.error(CONNECT_FAILED)
            self._log.warning("connect {} failed: {}", conn.index, exc)
            return "connect_failed"
        if ws is None:
            return "stop"
        conn.opened_at = conn.last_rx = self._monotonic()
        conn.data_flowed, conn.reason, conn.ping_sent_at = False, "", 0.0
        conn.open = True
        if conn.announce is None:  # not a successor overlapping a flowing connection: an outage ended
            self._admission.reconnected(conn.raw_symbols)
        self._connections_alive.append(conn)
        self._metrics.connection_open(True)
        self._log.info("connection {} open: {} symbols", conn.index, len(conn.raw_symbols))
        watchdog = asyncio.create_task(self._watchdog(conn, ws))
        try:
            for batch in chunks(conn.raw_symbols, self._caps.max_subscriptions_per_message):
                for message in self._adapter.subscribe_messages(batch):
                    await ws.send(message)
            await self._read(conn, ws, backoff)
        except ReconnectRequested as exc:
            conn.reason = "server_shutdown"
            self._log.warning("connection {}: {}", conn.index, exc)
        except PlatformError as exc:
            if not conn.reason:
                conn.reason = "connection_lost"
                self._metrics.error(CONNECTION_LOST)
                self._log.warning("connection {} lost: {}", conn.index, exc)
        finally:
            watchdog.cancel()
            await asyncio.gather(watchdog, return_exceptions=True)
            conn.open = False
            self._connections_alive.remove(conn)
            self._metrics.connection_open(False)
            await self._close(ws)
        return conn.reason or "closed"

    async def _read(self, conn: _Connection, ws: WsConnection, backoff: Backoff) -> None:
        parse = self._adapter.parse
        clock = self._clock
        monotonic = self._monotonic
        while not self._stop.is_set():
            frames = await ws.recv_many(MAX_FRAMES_PER_READ)
            self.reads += 1
            conn.last_rx = monotonic()
            conn.ping_sent_at = 0.0
            ts_recv = receive_time_ns(clock)
            trades: list[Trade] = []
            parsed = False
            try:
                for frame in frames:
                    try:
                        trades += parse(frame, ts_recv)
                    except ParseError as exc:
                        self._on_parse_error(exc, frame)
                        continue
                    parsed = True
            except ReconnectRequested:
                self._admission.take(trades)  # the trades before the announcement still count
                raise
            if parsed and not conn.data_flowed:
                conn.data_flowed = True
                backoff.reset()
            if trades and conn.announce is not None:  # trades, not just an acknowledgement, flow here
                conn.announce.set()
                conn.announce = None
            if trades:
                if tracing.ENABLED:  # one attribute read per read when off: nothing else
                    self._take_traced(trades, len(frames), ts_recv)
                else:
                    self._admission.take(trades)

    def _take_traced(self, trades: list[Trade], frames: int, ts_recv: int) -> None:
        """A read's batch in a span that starts at its receipt: the outbox carries the span's context on
        to the bus, and the processor continues the trace from there."""
        attributes = {"exchange": self._adapter.name, "frames": frames, "trades": len(trades)}
        with tracing.trace_operation("collector.batch", attributes, start_time_ns=ts_recv) as span:
            self._admission.take(trades)
            if span is not None and span.is_recording():
                symbols = sorted({t.symbol for t in trades})
                span.set_attribute("symbols", symbols[:20])
                self._log.debug("batch of {} trades ({} frames) received", len(trades), frames)

    async def _watchdog(self, conn: _Connection, ws: WsConnection) -> None:
        ping_every = self._caps.ping_interval_s if self._caps.heartbeat is HeartbeatKind.APP_PING else None
        periods = [p for p in (self._stale_timeout, self._max_age, ping_every) if p is not None]
        tick = min(1.0, *(p / 4 for p in periods))
        next_ping = self._monotonic() + (ping_every or 0.0)
        while not await self._wait_stop(tick):
            now = self._monotonic()
            if self._is_dead(conn, now):
                ws.abort()
                return
            if ping_every is not None and now >= next_ping:
                next_ping = now + ping_every
                await self._send_ping(conn, ws, now)
            if self._max_age is not None and now - conn.opened_at >= self._max_age and self._aged_out(conn):
                await self._close(ws)
                return
        conn.reason = "stop"
        await self._close(ws)

    def _is_dead(self, conn: _Connection, now: float) -> bool:
        """True (reason set, counted, logged) when nothing arrived for stale_timeout, or nothing since an
        application ping that should have been answered within ping_timeout_s."""
        if now - conn.last_rx > self._stale_timeout:
            conn.reason = STALE
            self._log.warning(
                "connection {}: no data for {:.1f}s, reconnecting", conn.index, now - conn.last_rx
            )
        elif conn.ping_sent_at and now - conn.ping_sent_at > (
            self._caps.ping_timeout_s or self._stale_timeout
        ):
            conn.reason = PING_TIMEOUT
            self._log.warning("connection {}: ping unanswered, reconnecting", conn.index)
        else:
            return False
        self._metrics.error(conn.reason)
        return True

    async def _send_ping(self, conn: _Connection, ws: WsConnection, now: float) -> None:
        message = self._adapter.ping_message()
        if message is None:
            return
        try:
            await ws.send(message)
        except PlatformError as exc:
            self._log.info("connection {}: ping not sent: {}", conn.index, exc)
            return
        if not conn.ping_sent_at:
            conn.ping_sent_at = now

    def _aged_out(self, conn: _Connection) -> bool:
        """At the maximum age: start the successor once; True a tick after it receives data (close now)."""
        if conn.successor_flowing is None:
            self._log.info(
                "connection {} reached {:.0f}s: opening its successor before closing it",
                conn.index,
                self._max_age,
            )
            conn.successor_flowing = self._start_successor(conn)
            return False
        if not conn.successor_flowing.is_set():
            return False
        conn.reason = "max_age"
        self._log.info("connection {}: successor receiving, closing this one", conn.index)
        return True

    async def _close(self, ws: WsConnection) -> None:
        try:
            await ws.close()
        except (PlatformError, OSError):
            ws.abort()

    def _on_parse_error(self, exc: ParseError, frame: bytes | str) -> None:
        self._metrics.error(exc.error_type)
        if self._metrics.should_log(exc.error_type):
            self._log.warning("skipped {} frame: {} | {}", exc.error_type, exc, _preview(exc.raw or frame))

    # -- gaps and publishing -------------------------------------------------------------------------
    async def _queue_late(self, trades: list[Trade]) -> None:
        """Trades the background retry recovered: on to the outbox (shed like any when it is full)."""
        self._admission.take_recovered(trades)

    async def _queue_events(self, events: list[CoverageEvent]) -> None:
        self._outbox.put_events(events)

    async def _gap_retry_loop(self) -> None:
        initial, maximum = self._gap_retry
        delay = initial
        while not await self._wait_stop(delay):
            try:
                ok = await self._repair.retry_pending(
                    self._queue_late, self._queue_events, skip=self._admission.repairing
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # supervised loop: keep retrying later
                ok = False
                self._metrics.error(INTERNAL)
                self._log.opt(exception=exc).error("gap retry failed unexpectedly")
            delay = initial if ok else min(delay * 2, maximum)
            delay, self._repair.rest_blocked_for = max(delay, self._repair.rest_blocked_for), 0.0

    # -- time ----------------------------------------------------------------------------------------
    async def _metrics_loop(self) -> None:
        ticks = 0
        while not await self._wait_stop(0.5):
            ticks += 1
            self._admission.check_holds()
            self._metrics.outbox(self._outbox.waiting)
            if ticks % 2:
                self._metrics.flush()
            else:
                await self._report_feeds()

    async def _report_feeds(self) -> None:
        """Every second: each symbol's FeedStatus to the feed_state gauges and the feed board (best effort:
        the next report replaces a lost one)."""
        connected = {raw: True for conn in self._connections_alive for raw in conn.raw_symbols}
        missing: dict[str, int] = {}
        for gap in self._tracker.missing():
            missing[gap.raw_symbol] = missing.get(gap.raw_symbol, 0) + gap.size
        statuses = self._metrics.feed_statuses(connected, missing, self._clock.now_ns(), self._quiet_after_ns)
        if self._feed_board is None:
            return
        try:
            await self._feed_board.put_feeds(statuses)
        except PlatformError as exc:
            if self._metrics.should_log("feed_board"):
                self._log.warning("feed status not published: {}", exc)

    async def _wait_stop(self, timeout: float) -> bool:
        """True when stop() was called, False after `timeout` seconds."""
        try:
            await asyncio.wait_for(self._stop.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def _pause(self, delay: float) -> None:
        """Sleep `delay` seconds with the injected sleep, or less if stop() comes first."""
        if delay > 0 and not self._stop.is_set():
            await self._until_stopped(self._sleep(delay))

    async def _until_stopped(self, aw: Awaitable[T]) -> T | None:
        """Await `aw` unless stop() comes first (then cancel it and return None)."""
        work = asyncio.ensure_future(aw)
        stopper = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (work, stopper):
                if not task.done():
                    task.cancel()
            await asyncio.gather(work, stopper, return_exceptions=True)
        if work.cancelled() or not work.done():
            return None
        return work.result()


def _preview(raw: bytes | str) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return text[:_PREVIEW_CHARS]
