"""The ONE websocket loop, for every exchange: connect, subscribe, read, watch, reconnect, repair gaps.

Per connection (symbols are split over several when they exceed the adapter's stream limit):
connect with the adapter's URL and subscribe messages (so every reconnect resubscribes), read frames,
parse them with the adapter, check trade ids with a shared `GapTracker`, repair gaps over REST before
publishing the newer trade, publish to the sink per batch of frames read. A watchdog closes the
connection when no frame arrived for `stale_timeout` seconds, or on stop(). Before the exchange's
connection-age cut-off it opens a successor on the same symbols and closes the old connection only once
the successor receives data (make before break: no gap to backfill; the overlap's duplicates are dropped).
Failed connects back off exponentially with jitter; the backoff resets once data flows.
Gaps that could not be repaired stay pending and are retried in the background with backoff.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

from loguru import logger

from collectors.adapter import ExchangeAdapter, ReconnectRequested
from collectors.backfill import TradeBackfill
from collectors.backoff import Backoff
from collectors.gaps import DUPLICATE, NEW, GapTracker
from collectors.repair import GapRepair
from collectors.session_metrics import SessionMetrics
from collectors.transport import WebsocketsConnector, WsConnection, WsConnector
from core.clock import Clock, SystemClock
from core.errors import ConfigError, ParseError, PlatformError
from core.types import Trade
from monitoring.metrics import METRICS, PlatformMetrics

T = TypeVar("T")
_PREVIEW_CHARS = 200
_STOP_PUBLISH_ATTEMPTS = 3
MAX_FRAMES_PER_READ = 1000  # frames parsed, gap-checked and published as one batch (at most)


class TradeSink(Protocol):
    """Where trades go (core.ports.TradeBus satisfies it). May raise when down; it is retried."""

    async def publish(self, trades: Sequence[Trade]) -> None: ...


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
        self.busy = False  # reader is publishing or backfilling, not waiting on the exchange
        self.data_flowed = False
        self.reason = ""
        self.announce = announce
        self.successor_flowing: asyncio.Event | None = None


class CollectorSession:
    """Collects `raw_symbols` from one exchange into `sink` until `stop()` (or cancellation).

    Times: `stale_timeout`, backoff and `max_connection_age` in seconds (age default: the adapter's
    limit minus its margin). `sleep`, `rng`, `monotonic` and `clock` are injectable for tests.
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
        self._ws_base_url = ws_base_url or adapter.default_ws_url
        self._stale_timeout = stale_timeout
        self._backoff_args = (backoff_initial, backoff_max, rng)
        self._max_age = max_connection_age or adapter.limits.proactive_reconnect_s
        self._gap_retry = (gap_retry_initial, gap_retry_max)
        self._publish_retry_max = publish_retry_max
        self._connector = connector or WebsocketsConnector()
        self._clock = clock or SystemClock()
        self._sleep = sleep
        self._monotonic = monotonic
        self._stop = asyncio.Event()
        self._group: asyncio.TaskGroup | None = None
        self._tracker = GapTracker()
        per_conn = max(adapter.limits.max_streams_per_connection // adapter.streams_per_symbol(), 1)
        self._connections = [
            _Connection(i, symbols[start : start + per_conn])
            for i, start in enumerate(range(0, len(symbols), per_conn))
        ]
        canonical = {s: adapter.symbol_info(s).symbol for s in symbols}  # type: ignore[union-attr]
        self._metrics = SessionMetrics(metrics, adapter.name, canonical, len(self._connections))
        self._log = logger.bind(component="collector", exchange=adapter.name)
        self._repair = GapRepair(
            self._tracker, backfiller, self._metrics, exchange=adapter.name, max_attempts=max_gap_attempts
        )

    @property
    def tracker(self) -> GapTracker:
        return self._tracker

    def stop(self) -> None:
        """Stop reading; run() then flushes what it holds, closes its connections and returns."""
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
                    group.create_task(self._connection_loop(conn))
                group.create_task(self._gap_retry_loop())
                group.create_task(self._metrics_loop())
        finally:
            self._metrics.flush()
            self._metrics.running(False)
            self._log.info("collector stopped")

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
                self._metrics.error("internal")
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
        assert self._group is not None  # run() is running: the watchdog only exists inside it
        self._group.create_task(self._connection_loop(successor), name=f"connection-{conn.index}")
        return flowing

    async def _connect_and_read(self, conn: _Connection, backoff: Backoff) -> str:
        url = self._adapter.ws_url(self._ws_base_url, conn.raw_symbols)
        try:
            ws = await self._until_stopped(self._connector.connect(url, self._adapter.limits))
        except PlatformError as exc:
            self._metrics.error("connect_failed")
            self._log.warning("connect {} failed: {}", conn.index, exc)
            return "connect_failed"
        if ws is None:
            return "stop"
        conn.opened_at = conn.last_rx = self._monotonic()
        conn.data_flowed, conn.busy, conn.reason = False, False, ""
        self._metrics.connection_open(True)
        self._log.info("connection {} open: {} symbols", conn.index, len(conn.raw_symbols))
        watchdog = asyncio.create_task(self._watchdog(conn, ws))
        try:
            for message in self._adapter.subscribe_messages(conn.raw_symbols):
                await ws.send(message)
            await self._read(conn, ws, backoff)
        except ReconnectRequested as exc:
            conn.reason = "server_shutdown"
            self._log.warning("connection {}: {}", conn.index, exc)
        except PlatformError as exc:
            if not conn.reason:
                conn.reason = "connection_lost"
                self._metrics.error("connection_lost")
                self._log.warning("connection {} lost: {}", conn.index, exc)
        finally:
            watchdog.cancel()
            await asyncio.gather(watchdog, return_exceptions=True)
            self._metrics.connection_open(False)
            await self._close(ws)
        return conn.reason or "closed"

    async def _read(self, conn: _Connection, ws: WsConnection, backoff: Backoff) -> None:
        parse = self._adapter.parse
        now_ns = self._clock.now_ns
        monotonic = self._monotonic
        while not self._stop.is_set():
            frames = await ws.recv_many(MAX_FRAMES_PER_READ)
            conn.last_rx = monotonic()
            ts_recv = now_ns()
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
                await self._admit(trades)  # the trades before the announcement still count
                raise
            if parsed and not conn.data_flowed:
                conn.data_flowed = True
                backoff.reset()
            if trades and conn.announce is not None:  # trades, not just an acknowledgement, flow here
                conn.announce.set()
                conn.announce = None
            if trades:
                conn.busy = True
                try:
                    await self._admit(trades)
                finally:
                    conn.busy = False
                    conn.last_rx = monotonic()

    async def _watchdog(self, conn: _Connection, ws: WsConnection) -> None:
        tick = min(1.0, self._stale_timeout / 4, self._max_age / 4)
        while not await self._wait_stop(tick):
            now = self._monotonic()
            if not conn.busy and now - conn.last_rx > self._stale_timeout:
                conn.reason = "stale"
                self._metrics.error("stale")
                self._log.warning(
                    "connection {}: no data for {:.1f}s, reconnecting", conn.index, now - conn.last_rx
                )
                ws.abort()
                return
            if now - conn.opened_at >= self._max_age:
                if conn.successor_flowing is None:
                    self._log.info(
                        "connection {} reached {:.0f}s: opening its successor before closing it",
                        conn.index,
                        self._max_age,
                    )
                    conn.successor_flowing = self._start_successor(conn)
                elif conn.successor_flowing.is_set():  # a tick after the successor's first data
                    conn.reason = "max_age"
                    self._log.info("connection {}: successor receiving, closing this one", conn.index)
                    await self._close(ws)
                    return
        conn.reason = "stop"
        await self._close(ws)

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
    async def _admit(self, trades: list[Trade]) -> None:
        """Gap-check live trades; publish repaired ones first, then the new ones, in one batch."""
        observe = self._tracker.observe
        out: list[Trade] = []
        for trade in trades:
            verdict = observe(trade.raw_symbol, trade.trade_id)
            if verdict is NEW:
                out.append(trade)
            elif verdict is DUPLICATE:
                self._metrics.duplicate(trade.raw_symbol)
            else:
                out.extend(await self._repair.repair(verdict))  # type: ignore[arg-type]
                out.append(trade)
        if out:
            await self._publish(out)

    async def _publish(self, trades: list[Trade]) -> None:
        """Publish until the sink takes the batch: never drop silently; reading waits meanwhile."""
        delay = 0.05
        failures = 0
        while True:
            try:
                await self._sink.publish(trades)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any sink failure is retried: dropping trades is not an option
                failures += 1
                self._metrics.error("publish_failed")
                self._log.warning("publish of {} trades failed ({}x): {}", len(trades), failures, exc)
                if self._stop.is_set() and failures >= _STOP_PUBLISH_ATTEMPTS:
                    self._metrics.error("publish_abandoned")
                    self._log.error("stopping: {} trades could not be published", len(trades))
                    return
                await (self._sleep(0.1) if self._stop.is_set() else self._pause(delay))
                delay = min(delay * 2, self._publish_retry_max)
                continue
            self._metrics.published(trades)
            return

    async def _gap_retry_loop(self) -> None:
        initial, maximum = self._gap_retry
        delay = initial
        while not await self._wait_stop(delay):
            try:
                ok = await self._repair.retry_pending(self._publish)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # supervised loop: keep retrying later
                ok = False
                self._metrics.error("internal")
                self._log.opt(exception=exc).error("gap retry failed unexpectedly")
            delay = initial if ok else min(delay * 2, maximum)
            delay, self._repair.rest_blocked_for = max(delay, self._repair.rest_blocked_for), 0.0

    # -- time ----------------------------------------------------------------------------------------
    async def _metrics_loop(self) -> None:
        while not await self._wait_stop(0.5):
            self._metrics.flush()

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
