"""One market-stream websocket of the simulated Binance: control messages in, events out.

The sender tails the simulator's global TradeLog from a cursor and writes whole batches of ready-made
websocket frames straight to the transport (one write per batch; ~0.1 µs per frame instead of ~1.3 µs
through aiohttp's per-frame send), waiting while the socket's write buffer is full. A connection with no
subscription keeps its cursor at the live end, so a SUBSCRIBE starts from the trades made after it.

Binance's keep-alive and limits: a ping frame every `ping_interval` seconds; a connection that has not
answered a ping (pong echoing its payload) within `ping_timeout` is dropped; more than 5 incoming messages
(text, binary, ping or unsolicited pong frames) within one second closes the connection (1008). Pongs that
answer the server's own pings are not counted, unlike on Binance, where at one ping per 20 s they never
matter but in tests with short ping intervals they would trip the limit by themselves.
"""

from __future__ import annotations

import asyncio
import collections
import random
from collections.abc import Coroutine
from typing import Any, Protocol

from aiohttp import WSMsgType, web
from loguru import logger

from simulator.binance.control import Subscriptions, handle_control
from simulator.binance.frames import (
    MALFORMED_KINDS,
    OP_TEXT,
    agg_trade_payload,
    combined,
    combined_prefix,
    frame,
    frame_header,
    malformed_payload,
    server_shutdown_payload,
    trade_payload,
)
from simulator.binance.streams import DATA_KINDS
from simulator.faults import FaultState
from simulator.history import Notifier, Recorded, TradeLog
from simulator.trades import MarketTrade

BATCH = 1024
HIGH_WATER = 1 << 20
LOW_WATER = 256 << 10
MAX_INCOMING_PER_SECOND = 5
CLOSE_TIMEOUT = 2.0
_END_STREAMS = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR)

Route = tuple[str, bytes | None]  # (stream kind, combined-wrapper prefix or None for raw)


class Hub(Protocol):
    """What a connection needs from the simulator."""

    log: TradeLog
    faults: FaultState
    wake: Notifier
    drained: Notifier
    trades_sent: int
    malformed_sent: int

    def latest_trade(self, symbol: str) -> MarketTrade | None: ...


class StreamConnection:
    """Serves one accepted websocket until it closes. `cursor` is the next TradeLog sequence to send."""

    def __init__(
        self,
        conn_id: int,
        ws: web.WebSocketResponse,
        request: web.Request,
        subs: Subscriptions,
        hub: Hub,
        *,
        micros: bool,
        ping_interval: float,
        ping_timeout: float,
    ) -> None:
        assert request.transport is not None
        self.conn_id = conn_id
        self.path = request.path_qs
        self.user_agent = request.headers.get("User-Agent", "")
        self.subs = subs
        self.cursor = hub.log.end
        self.sent = 0
        self.malformed_pending = 0
        self.closing = False
        self._ws, self._transport, self._hub = ws, request.transport, hub
        self._micros = micros
        self._ping_interval, self._ping_timeout = ping_interval, ping_timeout
        self._pings: dict[bytes, float] = {}
        self._incoming: collections.deque[float] = collections.deque(maxlen=MAX_INCOMING_PER_SECOND)
        self._routes: dict[str, list[Route]] = {}
        self._routes_version = -1
        self._malformed_index = 0
        self._rng = random.Random(conn_id)
        self._log = logger.bind(component="simulator", connection=conn_id)

    @property
    def subscribed(self) -> bool:
        return len(self.subs) > 0 and not self.closing

    async def serve(self) -> None:
        sender = asyncio.create_task(self._guard(self._send_loop()), name=f"sim-send-{self.conn_id}")
        pinger = asyncio.create_task(self._guard(self._ping_loop()), name=f"sim-ping-{self.conn_id}")
        try:
            await self._read_loop()
        except ConnectionError as exc:
            self._log.debug("connection lost: {}", exc)
        except Exception:
            # A bug here must cost one connection, never the server.
            self._log.exception("connection failed; closing it")
            self.abort()
        finally:
            self.closing = True
            for task in (sender, pinger):
                task.cancel()
            await asyncio.gather(sender, pinger, return_exceptions=True)
            self._hub.drained.notify()

    async def _guard(self, loop: Coroutine[Any, Any, None]) -> None:
        """Run the sender or the pinger; if it fails, drop this connection (and only it)."""
        try:
            await loop
        except ConnectionError as exc:
            self._log.debug("connection lost: {}", exc)
            self.abort()
        except Exception:
            self._log.exception("connection task failed; dropping the connection")
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
        """Binance's `serverShutdown` event, then close 1001 (going away)."""
        if not self.closing and not self._transport.is_closing():
            payload = server_shutdown_payload(time_ms)
            if self.subs.combined:
                payload = combined("!serverShutdown", payload)
            self._transport.write(frame(payload))
        await self.close(1001, "server shutdown")

    # -- incoming ---------------------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            msg = await self._ws.receive()
            if msg.type in _END_STREAMS:
                return
            if msg.type is WSMsgType.PONG and self._on_pong(msg.data):
                continue  # an answer to our own ping: not counted (short test intervals would trip the limit)
            now = loop.time()
            if len(self._incoming) == MAX_INCOMING_PER_SECOND and now - self._incoming[0] < 1.0:
                self._log.info("more than {} incoming messages per second: closing", MAX_INCOMING_PER_SECOND)
                await self.close(1008, "Too many requests")
                return
            self._incoming.append(now)
            if msg.type is WSMsgType.PING:
                await self._ws.pong(msg.data)
            elif msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                self._on_control(msg.data)

    def _on_control(self, data: str | bytes) -> None:
        was_subscribed = len(self.subs) > 0
        reply = handle_control(data, self.subs)
        if not self.closing and not self._transport.is_closing():
            self._transport.write(frame(reply))
        if not was_subscribed and len(self.subs) > 0:
            self.cursor = self._hub.log.end  # tail from the live end at the first subscription
        self._hub.wake.notify()
        self._hub.drained.notify()

    def _on_pong(self, data: bytes | bytearray) -> bool:
        """True if the pong answers an outstanding ping (which it and all older pings then clear)."""
        payload = bytes(data)
        if payload not in self._pings:
            return False  # unsolicited pongs are allowed but do not keep the connection alive
        for key in list(self._pings):
            del self._pings[key]
            if key == payload:
                break
        return True

    async def _ping_loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_ping = loop.time() + self._ping_interval
        seq = 0
        while not self.closing:
            deadline = min(self._pings.values(), default=None)
            wake_at = next_ping if deadline is None else min(next_ping, deadline + self._ping_timeout)
            await asyncio.sleep(max(0.0, wake_at - loop.time()))
            now = loop.time()
            if deadline is not None and now - deadline >= self._ping_timeout:
                self._log.info("no pong within {}s: dropping", self._ping_timeout)
                self.abort()
                return
            if now >= next_ping and not self._transport.is_closing():
                seq += 1
                payload = str(seq).encode()
                self._pings[payload] = now
                await self._ws.ping(payload)
                next_ping = now + self._ping_interval

    # -- outgoing ---------------------------------------------------------------------------------------

    async def _send_loop(self) -> None:
        loop = asyncio.get_running_loop()
        hub, log = self._hub, self._hub.log
        while not self.closing and not self._transport.is_closing():
            stalled = hub.faults.stalled_for(loop.time())
            if stalled > 0:
                await hub.wake.wait(timeout=stalled)
                continue
            if self.malformed_pending:
                self._write_malformed()
            elif len(self.subs) == 0:
                self.cursor = log.end
                await hub.wake.wait()
                continue
            elif self.cursor < log.start:
                self._log.warning("slow consumer fell {} trades behind: closing", log.end - self.cursor)
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

    def _write_entries(self, entries: list[Recorded]) -> None:
        if self._routes_version != self.subs.version:
            self._rebuild_routes()
        routes, micros = self._routes, self._micros
        parts: list[bytes] = []
        for trade, payload, hidden in entries:
            if hidden:
                continue
            targets = routes.get(trade.symbol)
            if targets is None:
                continue
            for kind, prefix in targets:
                if kind == "trade":
                    body = trade_payload(trade, micros=True) if micros else payload
                else:
                    body = agg_trade_payload(trade, micros=micros)
                if prefix is not None:
                    body = prefix + body + b"}"
                parts.append(frame_header(len(body)))
                parts.append(body)
        if parts:
            self._transport.write(b"".join(parts))
            count = len(parts) // 2
            self.sent += count
            self._hub.trades_sent += count

    def _rebuild_routes(self) -> None:
        routes: dict[str, list[Route]] = {}
        for stream in self.subs.streams:
            if stream.kind in DATA_KINDS:
                prefix = combined_prefix(stream.name) if self.subs.combined else None
                routes.setdefault(stream.symbol, []).append((stream.kind, prefix))
        self._routes, self._routes_version = routes, self.subs.version

    def _write_malformed(self) -> None:
        data_streams = [s for s in self.subs.streams if s.kind in DATA_KINDS]
        symbol = data_streams[0].symbol if data_streams else "BTCUSDT"
        stream_name = data_streams[0].name if data_streams else "btcusdt@trade"
        trade = self._hub.latest_trade(symbol) or MarketTrade(symbol, 0, "1.00000000", "1.00000000", 0, False)
        parts: list[bytes] = []
        while self.malformed_pending > 0:
            kind = MALFORMED_KINDS[self._malformed_index % len(MALFORMED_KINDS)]
            payload, opcode = malformed_payload(kind, trade, self._rng)
            if self.subs.combined and opcode == OP_TEXT and kind != "invalid_json":
                wrapped = combined(stream_name, trade_payload(trade) if kind == "truncated_json" else payload)
                payload = wrapped[: len(wrapped) // 2] if kind == "truncated_json" else wrapped
            parts.append(frame(payload, opcode))
            self._malformed_index += 1
            self.malformed_pending -= 1
            self._hub.malformed_sent += 1
        self._transport.write(b"".join(parts))

    async def _flow_control(self) -> None:
        transport = self._transport
        if transport.get_write_buffer_size() <= HIGH_WATER:
            await asyncio.sleep(0)
            return
        # aiohttp exposes no public drain for a raw transport write: poll the buffer (1 ms is far shorter
        # than the time a client needs to read LOW_WATER bytes of frames).
        while not transport.is_closing() and transport.get_write_buffer_size() > LOW_WATER:
            await asyncio.sleep(0.001)
