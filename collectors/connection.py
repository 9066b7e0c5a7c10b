"""The session's websocket connections: connect, subscribe, keep alive, read frames, watch, reconnect.

It reads the adapter's `Capabilities` and never names a venue. Symbols are split over several
connections when they exceed the venue's stream limit. Per connection: connect with the adapter's URL and
subscribe messages (at most `max_subscriptions_per_message` symbols each; every reconnect resubscribes),
send the venue's application ping every `ping_interval_s` where it needs one, read frames in batches
(`recv_many`, up to MAX_FRAMES_PER_READ), parse them with the adapter and hand each read's trades to
`take` (which never waits: admission and the outbox are the session's). A watchdog closes the connection
when no frame arrived for `stale_timeout` seconds, when an application ping went unanswered for
`ping_timeout_s`, or at stop. Before the venue's connection-age cut-off it opens a successor on the same
symbols and closes the old connection only once the successor receives data (make before break: no gap
to backfill; the overlap's duplicates are dropped downstream). Failed connects back off exponentially
with jitter; the backoff resets once data flows.

Every connection loop, successors included, runs in one `TaskScope`; each connection's watchdog runs in
a task group of that connection.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
from collections.abc import Awaitable, Callable, Sequence

from loguru import logger

from collectors.adapter import ExchangeAdapter, HeartbeatKind, ReconnectRequested, chunks
from collectors.backoff import Backoff
from collectors.session_metrics import (
    CONNECT_FAILED,
    CONNECTION_LOST,
    INTERNAL,
    PING_TIMEOUT,
    STALE,
    SessionMetrics,
)
from collectors.session_options import SessionOptions
from collectors.stopping import Stopping, TaskScope
from collectors.transport import WsConnection, WsConnector
from core.clock import Clock, receive_time_ns
from core.errors import ParseError, PlatformError
from core.types import Trade
from monitoring import tracing

MAX_FRAMES_PER_READ = 1000  # frames parsed, gap-checked and published as one batch (at most)
_PREVIEW_CHARS = 200

Take = Callable[[list[Trade]], None]


class ConnectionState:
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


def split_symbols(raw_symbols: Sequence[str], per_connection: int) -> list[list[str]]:
    """The symbols of each connection, in order, at most `per_connection` on one."""
    symbols = list(raw_symbols)
    return [symbols[start : start + per_connection] for start in range(0, len(symbols), per_connection)]


class Connections:
    """The connections carrying `groups` (one list of raw symbols per connection) from `url`, until
    stop(). `reopened(raw_symbols)` is told when a connection (not a successor) opens: an outage of
    those symbols ended. `sleep`, `rng` and `monotonic` are injectable for tests."""

    def __init__(
        self,
        adapter: ExchangeAdapter,
        groups: Sequence[list[str]],
        *,
        url: str,
        connector: WsConnector,
        options: SessionOptions,
        metrics: SessionMetrics,
        take: Take,
        reopened: Callable[[Sequence[str]], None],
        stopping: Stopping,
        clock: Clock,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._adapter = adapter
        self._caps = caps = adapter.capabilities
        self._url = url
        self._connector = connector
        self._options = options
        self._max_age = options.max_connection_age or caps.proactive_reconnect_s
        self._metrics = metrics
        self._take = take
        self._reopened = reopened
        self._stopping = stopping
        self._clock, self._sleep, self._rng, self._monotonic = clock, sleep, rng, monotonic
        self.groups = [list(group) for group in groups]
        self._states = [ConnectionState(i, group) for i, group in enumerate(self.groups)]
        self._alive: list[ConnectionState] = []
        self._scope = TaskScope("connections", grace=options.reader_grace_s)
        self._log = logger.bind(component="collector", exchange=adapter.name)
        self.reads = 0  # reads of frames from any connection

    def connected(self) -> set[str]:
        """The raw symbols on a connection that is open now."""
        return {raw for conn in self._alive for raw in conn.raw_symbols}

    def stop(self) -> None:
        """Stop reading: each connection closes; run() returns once they did (or the grace ran out)."""
        self._stopping.set()
        self._scope.stop()

    async def run(self) -> None:
        await self._scope.run(functools.partial(self._loop, conn) for conn in self._states)

    # -- one connection, reconnected -----------------------------------------------------------------
    async def _loop(self, conn: ConnectionState) -> None:
        backoff = Backoff(self._options.backoff_initial, self._options.backoff_max, rng=self._rng)
        while not self._stopping.is_set():
            reason = await self._attempt(conn, backoff)
            if self._stopping.is_set():
                break
            self._metrics.reconnected()
            if conn.successor_flowing is not None:
                return  # the successor started at the maximum age owns these symbols now
            delay = backoff.next_delay()
            self._log.info("reconnecting connection {} ({}) in {:.2f}s", conn.index, reason, delay)
            await self._stopping.pause(delay, self._sleep)

    async def _attempt(self, conn: ConnectionState, backoff: Backoff) -> str:
        """One connection's life; why it ended."""
        try:
            return await self._connect_and_read(conn, backoff)
        # The top of the supervised connection loop: a bug must not end collection. Counted and logged,
        # then the loop reconnects; CancelledError (not an Exception) goes through.
        except Exception as exc:  # noqa: BLE001
            self._metrics.error(INTERNAL)
            self._log.opt(exception=exc).error("connection {} failed unexpectedly", conn.index)
            return "error"

    async def _connect_and_read(self, conn: ConnectionState, backoff: Backoff) -> str:
        url = self._adapter.ws_url(self._url, conn.raw_symbols)
        try:
            ws = await self._stopping.until(self._connector.connect(url, self._caps))
        except PlatformError as exc:
            self._metrics.error(CONNECT_FAILED)
            self._log.warning("connect {} failed: {}", conn.index, exc)
            return "connect_failed"
        if ws is None:
            return "stop"
        self._opened(conn)
        try:
            async with asyncio.TaskGroup() as group:
                watchdog = group.create_task(self._watchdog(conn, ws))
                await self._subscribe_and_read(conn, ws, backoff)
                watchdog.cancel()  # the reader ended first (connection lost, or stopping)
        finally:
            conn.open = False
            self._alive.remove(conn)
            self._metrics.connection_open(False)
            await _close(ws)
        return conn.reason or "closed"

    def _opened(self, conn: ConnectionState) -> None:
        conn.opened_at = conn.last_rx = self._monotonic()
        conn.data_flowed, conn.reason, conn.ping_sent_at = False, "", 0.0
        conn.open = True
        if conn.announce is None:  # not a successor overlapping a flowing connection: an outage ended
            self._reopened(conn.raw_symbols)
        self._alive.append(conn)
        self._metrics.connection_open(True)
        self._log.info("connection {} open: {} symbols", conn.index, len(conn.raw_symbols))

    async def _subscribe_and_read(self, conn: ConnectionState, ws: WsConnection, backoff: Backoff) -> None:
        """Subscribe, then read until the connection ends; why it ended is left in `conn.reason`."""
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

    # -- reading (the hot path) ----------------------------------------------------------------------
    async def _read(self, conn: ConnectionState, ws: WsConnection, backoff: Backoff) -> None:
        parse, take = self._adapter.parse, self._take
        clock, monotonic, stopping = self._clock, self._monotonic, self._stopping
        while not stopping.is_set():
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
                take(trades)  # the trades before the announcement still count
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
                    take(trades)

    def _take_traced(self, trades: list[Trade], frames: int, ts_recv: int) -> None:
        """A read's batch in a span that starts at its receipt: the outbox carries the span's context on
        to the bus, and the processor continues the trace from there."""
        attributes = {"exchange": self._adapter.name, "frames": frames, "trades": len(trades)}
        with tracing.trace_operation("collector.batch", attributes, start_time_ns=ts_recv) as span:
            self._take(trades)
            if span is not None and span.is_recording():
                symbols = sorted({t.symbol for t in trades})
                span.set_attribute("symbols", symbols[:20])
                self._log.debug("batch of {} trades ({} frames) received", len(trades), frames)

    def _on_parse_error(self, exc: ParseError, frame: bytes | str) -> None:
        self._metrics.error(exc.error_type)
        if self._metrics.should_log(exc.error_type):
            self._log.warning("skipped {} frame: {} | {}", exc.error_type, exc, _preview(exc.raw or frame))

    # -- the watchdog --------------------------------------------------------------------------------
    async def _watchdog(self, conn: ConnectionState, ws: WsConnection) -> None:
        caps = self._caps
        ping_every = caps.ping_interval_s if caps.heartbeat is HeartbeatKind.APP_PING else None
        periods = [p for p in (self._options.stale_timeout, self._max_age, ping_every) if p is not None]
        tick = min(1.0, *(p / 4 for p in periods))
        next_ping = self._monotonic() + (ping_every or 0.0)
        while not await self._stopping.wait(tick):
            now = self._monotonic()
            if self._is_dead(conn, now):
                ws.abort()
                return
            if ping_every is not None and now >= next_ping:
                next_ping = now + ping_every
                await self._send_ping(conn, ws, now)
            if self._max_age is not None and now - conn.opened_at >= self._max_age and self._aged_out(conn):
                await _close(ws)
                return
        conn.reason = "stop"
        await _close(ws)

    def _is_dead(self, conn: ConnectionState, now: float) -> bool:
        """True (reason set, counted, logged) when nothing arrived for stale_timeout, or nothing since an
        application ping that should have been answered within ping_timeout_s."""
        stale_timeout = self._options.stale_timeout
        if now - conn.last_rx > stale_timeout:
            conn.reason = STALE
            self._log.warning(
                "connection {}: no data for {:.1f}s, reconnecting", conn.index, now - conn.last_rx
            )
        elif conn.ping_sent_at and now - conn.ping_sent_at > (self._caps.ping_timeout_s or stale_timeout):
            conn.reason = PING_TIMEOUT
            self._log.warning("connection {}: ping unanswered, reconnecting", conn.index)
        else:
            return False
        self._metrics.error(conn.reason)
        return True

    async def _send_ping(self, conn: ConnectionState, ws: WsConnection, now: float) -> None:
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

    def _aged_out(self, conn: ConnectionState) -> bool:
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

    def _start_successor(self, conn: ConnectionState) -> asyncio.Event:
        """A new connection on `conn`'s symbols; the event is set once data flows on it. Trades that
        arrive on both while they overlap are dropped by the gap tracker as duplicates."""
        flowing = asyncio.Event()
        successor = ConnectionState(conn.index, conn.raw_symbols, announce=flowing)
        self._scope.spawn(self._loop(successor))
        return flowing


async def _close(ws: WsConnection) -> None:
    try:
        await ws.close()
    except (PlatformError, OSError):
        ws.abort()


def _preview(raw: bytes | str) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return text[:_PREVIEW_CHARS]
