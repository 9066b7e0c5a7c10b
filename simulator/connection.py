"""One websocket of a simulated venue: client frames in, trades and control answers out.

The venue's `VenueSession` decides what a client frame means and what each subscription receives; this
module does everything else, the same for every venue:
- The sender tails the exchange's global TradeLog from a cursor and writes whole batches of ready-made
  frames straight to the transport (one write per batch), waiting while the socket's write buffer is full.
  A connection with no subscription keeps its cursor at the live end, so a first subscription starts from
  the trades made after it. One that falls behind the log's start is closed 1008 (slow consumer).
- The keeper runs the venue's keep-alive (`KeepAlive`): protocol pings and their pong deadline, heartbeat
  payloads, and the idle rule.
- The reader answers protocol pings, applies the incoming-frame limit and hands text/binary frames to the
  session. Pongs that answer the server's own pings are not counted against the limit: at a ping every
  20 s they never matter, but tests with short ping intervals would trip it by themselves.
Faults: `stall` holds data and heartbeats (not control answers, pings or pongs); `malformed` frames come
from simulator/malformed.py; `abort()` drops the TCP connection without a close frame.
"""

from __future__ import annotations

import asyncio
import collections
import random
import time
from collections.abc import Coroutine
from typing import Any, Protocol

from aiohttp import WSMsgType, web
from loguru import logger

from simulator.faults import FaultState
from simulator.framing import frame, frame_header, frames
from simulator.history import Notifier, Recorded, TradeLog
from simulator.keeper import Keeper
from simulator.malformed import malformed_frame
from simulator.trades import MarketTrade
from simulator.venue import ExchangeView, KeepAlive, Route, VenueProtocol, VenueSession

BATCH = 1024
HIGH_WATER = 1 << 20
LOW_WATER = 256 << 10
CLOSE_TIMEOUT = 2.0
_END_STREAMS = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR)
_RAW: Route = (None, None, b"")


class Hub(ExchangeView, Protocol):
    """What a connection needs from the exchange."""

    log: TradeLog
    faults: FaultState
    wake: Notifier
    drained: Notifier
    venue: VenueProtocol
    trades_sent: int
    malformed_sent: int
    client_errors: int


class Connection:
    """Serves one accepted websocket until it closes. `cursor` is the next TradeLog sequence to send;
    `last_activity` the loop time of the last frame sent or received."""

    def __init__(
        self, conn_id: int, ws: web.WebSocketResponse, request: web.Request, session: VenueSession, hub: Hub
    ) -> None:
        assert request.transport is not None
        self.conn_id = conn_id
        self.path = request.path_qs
        self.user_agent = request.headers.get("User-Agent", "")
        self.session = session
        self.cursor = hub.log.end
        self.sent = 0
        self.malformed_pending = 0
        self.raw_pending: list[tuple[bytes, int]] = []  # (payload, opcode) frames to send as they are
        self.closing = False
        self.ever_subscribed = False
        self._loop = asyncio.get_running_loop()
        self.opened_at = self.last_activity = self._loop.time()
        self._ws, self._transport, self._hub = ws, request.transport, hub
        self._keepalive: KeepAlive = hub.venue.keepalive
        self._keeper = Keeper(self, self._keepalive)
        limit = self._keepalive.incoming
        self._incoming = collections.deque[float](maxlen=limit[0]) if limit else None
        self._routes: dict[str, list[Route]] = {}
        self._routes_version = -1
        self._malformed_index = 0
        self._rng = random.Random(conn_id)
        self.log = logger.bind(component="simulator", exchange=hub.venue.name, connection=conn_id)

    @property
    def subscribed(self) -> bool:
        return self.session.subscribed and not self.closing

    @property
    def writable(self) -> bool:
        return not self.closing and not self._transport.is_closing()

    async def serve(self) -> None:
        sender = asyncio.create_task(self._guard(self._send_loop()), name=f"sim-send-{self.conn_id}")
        keeper = asyncio.create_task(self._guard(self._keeper.run()), name=f"sim-keep-{self.conn_id}")
        self.write(self.session.greeting(time.time_ns()))
        try:
            await self._read_loop()
        except ConnectionError as exc:
            self.log.debug("connection lost: {}", exc)
        except Exception:
            # A bug here must cost one connection, never the server.
            self.log.exception("connection failed; closing it")
            self.abort()
        finally:
            self.closing = True
            for task in (sender, keeper):
                task.cancel()
            await asyncio.gather(sender, keeper, return_exceptions=True)
            self._hub.drained.notify()

    async def _guard(self, loop: Coroutine[Any, Any, None]) -> None:
        """Run the sender or the keeper; if it fails, drop this connection (and only it)."""
        try:
            await loop
        except ConnectionError as exc:
            self.log.debug("connection lost: {}", exc)
            self.abort()
        except Exception:
            self.log.exception("connection task failed; dropping the connection")
            self.abort()

    def abort(self) -> None:
        """Drop the TCP connection without a close frame."""
        self.closing = True
        self._transport.abort()

    async def close(self, code: int, reason: str) -> None:
        """Close with a close frame; abort if the client does not complete the handshake in time."""
        self.closing = True
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self._ws.close(code=code, message=reason.encode())
        except (TimeoutError, ConnectionError):
            self._transport.abort()

    async def shutdown(self, time_ms: int) -> None:
        """The venue's farewell payloads, then close 1001 (going away)."""
        if self.writable:
            self.write(self.session.farewell(time_ms))
        await self.close(1001, "server shutdown")

    def write(self, payloads: list[bytes]) -> None:
        """Text frames, in one transport write (dropped if the connection is closing)."""
        if payloads and self.writable:
            self._transport.write(frames(payloads))
            self.last_activity = self._loop.time()

    async def ping(self, payload: bytes) -> None:
        await self._ws.ping(payload)

    # -- incoming ---------------------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        while True:
            msg = await self._ws.receive()
            if msg.type in _END_STREAMS:
                return
            now = self._loop.time()
            self.last_activity = now
            if msg.type is WSMsgType.PONG and self._keeper.on_pong(msg.data):
                continue
            if self._over_limit(now):
                self.log.info("more than {} incoming frames in {}s: closing", *self._keepalive.incoming or ())
                await self.close(1008, "Too many requests")
                return
            if msg.type is WSMsgType.PING:
                await self._ws.pong(msg.data)
            elif msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                self._on_message(msg.data)

    def _over_limit(self, now: float) -> bool:
        incoming, limit = self._incoming, self._keepalive.incoming
        if incoming is None or limit is None:
            return False
        if len(incoming) == limit[0] and now - incoming[0] < limit[1]:
            return True
        incoming.append(now)
        return False

    def _on_message(self, data: str | bytes) -> None:
        if not self.session.subscribed:
            self.cursor = self._hub.log.end  # a first subscription tails from the live end
        errors = self.session.errors
        self.write(self.session.on_message(data, self.cursor))
        self._hub.client_errors += self.session.errors - errors
        self.ever_subscribed = self.ever_subscribed or self.session.subscribed
        self._hub.wake.notify()
        self._hub.drained.notify()

    # -- outgoing ---------------------------------------------------------------------------------------

    def stalled_for(self) -> float:
        return self._hub.faults.stalled_for(self._loop.time())

    async def _send_loop(self) -> None:
        hub, log = self._hub, self._hub.log
        while self.writable:
            stalled = self.stalled_for()
            if stalled > 0:
                await hub.wake.wait(timeout=stalled)
                continue
            if self.malformed_pending or self.raw_pending:
                self._write_malformed()
            elif not self.session.subscribed:
                self.cursor = log.end
                await hub.wake.wait()
                continue
            elif self.cursor < log.start:
                self.log.warning("slow consumer fell {} trades behind: closing", log.end - self.cursor)
                await self.close(1008, "slow consumer")
                return
            elif self.cursor >= log.end:
                await hub.wake.wait()
                continue
            else:
                entries = log.read(self.cursor, BATCH)
                self.cursor += len(entries)
                self._write_entries(entries)
                hub.drained.notify()
            await self._flow_control()

    def _refresh_routes(self) -> dict[str, list[Route]]:
        if self._routes_version != self.session.version:
            self._routes, self._routes_version = self.session.routes(), self.session.version
        return self._routes

    def _write_entries(self, entries: list[Recorded]) -> None:
        routes = self._refresh_routes()
        parts: list[bytes] = []
        for trade, payload, hidden in entries:
            if hidden:
                continue
            targets = routes.get(trade.symbol)
            if targets is None:
                continue
            for render, prefix, suffix in targets:
                body = payload if render is None else render(trade)
                if prefix is not None:
                    body = prefix + body + suffix
                parts.append(frame_header(len(body)))
                parts.append(body)
        if parts:
            self._transport.write(b"".join(parts))
            self.last_activity = self._loop.time()
            count = len(parts) // 2
            self.sent += count
            self._hub.trades_sent += count

    def _write_malformed(self) -> None:
        venue, good = self._hub.venue, self.source_message()
        parts = [frame(payload, opcode) for payload, opcode in self.raw_pending]
        self._hub.malformed_sent += len(self.raw_pending)
        self.raw_pending = []
        while self.malformed_pending > 0:
            kind = venue.malformed_kinds[self._malformed_index % len(venue.malformed_kinds)]
            payload, opcode = malformed_frame(kind, good, venue.trade_fields, self._rng)
            parts.append(frame(payload, opcode))
            self._malformed_index += 1
            self.malformed_pending -= 1
            self._hub.malformed_sent += 1
        self._transport.write(b"".join(parts))
        self.last_activity = self._loop.time()

    def source_message(self) -> bytes:
        """The good message broken frames are made from: the first subscription's rendering of its symbol's
        latest visible trade (or the main payload of the first listed symbol, if nothing is subscribed)."""
        symbol, targets = next(iter(self._refresh_routes().items()), (min(self._hub.symbols), [_RAW]))
        render, prefix, suffix = targets[0] if targets else _RAW
        trade = self._hub.latest_before(symbol, self.cursor, visible=True)
        trade = trade or MarketTrade(symbol, 0, "1.00000000", "1.00000000", 0, False)
        body = self._hub.venue.encode_trade(trade) if render is None else render(trade)
        return body if prefix is None else prefix + body + suffix

    async def _flow_control(self) -> None:
        transport = self._transport
        if transport.get_write_buffer_size() <= HIGH_WATER:
            await asyncio.sleep(0)
            return
        # aiohttp exposes no public drain for a raw transport write: poll the buffer (1 ms is far shorter
        # than the time a client needs to read LOW_WATER bytes of frames).
        while not transport.is_closing() and transport.get_write_buffer_size() > LOW_WATER:
            await asyncio.sleep(0.001)
