"""A `WsConnector` on picows (a Cython websocket client, several times cheaper per frame than websockets).

picows is callback-based: the listener copies each complete message into a deque that `recv_many()` drains.
When more than `HIGH_WATER` messages wait, reading from the socket pauses until the reader catches up
(so memory stays bounded and TCP pushes back on the exchange, as with `websockets`). Pings from the
server are answered by picows itself; close frames are echoed, then the socket is closed. A message is
bounded (`message_limit`) after reassembling its fragments too: a larger one closes the connection (1009)
instead of growing the buffer.
"""

from __future__ import annotations

import asyncio
from collections import deque

from picows import WSCloseCode, WSError, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from collectors.adapter import Capabilities
from collectors.transport import TransportClosed, WsConnection, client_ping, message_limit, user_agent
from core.errors import ExchangeError

HIGH_WATER = 4096
LOW_WATER = 1024


class _Listener(WSListener):
    def __init__(self, max_message_bytes: int) -> None:
        super().__init__()
        self.max_message_bytes = max_message_bytes
        self.messages: deque[bytes] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.transport: WSTransport | None = None
        self.partial: bytearray | None = None
        self.paused = False
        self.disconnected = False
        self.close_code: int | None = None
        self.close_reason = ""

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind is WSMsgType.TEXT or kind is WSMsgType.BINARY:
            if frame.fin:
                self._push(frame.get_payload_as_bytes())
            else:
                self.partial = bytearray(frame.get_payload_as_memoryview())
        elif kind is WSMsgType.CONTINUATION and self.partial is not None:
            if len(self.partial) + frame.payload_size > self.max_message_bytes:
                self._refuse(transport)
                return
            self.partial += frame.get_payload_as_memoryview()
            if frame.fin:
                self._push(bytes(self.partial))
                self.partial = None
        elif kind is WSMsgType.CLOSE:
            self.close_code = frame.get_close_code().value
            self.close_reason = frame.get_close_message().decode("utf-8", "replace")
            transport.send_close(WSCloseCode.OK)
            transport.disconnect()

    def _refuse(self, transport: WSTransport) -> None:
        """A fragmented message over the limit: drop what was buffered and close with 1009."""
        self.partial = None
        self.close_code = WSCloseCode.MESSAGE_TOO_BIG.value
        self.close_reason = f"message over {self.max_message_bytes} bytes"
        transport.send_close(WSCloseCode.MESSAGE_TOO_BIG, self.close_reason.encode())
        transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.disconnected = True
        self._wake()

    def _push(self, message: bytes) -> None:
        self.messages.append(message)
        self._wake()
        if not self.paused and len(self.messages) >= HIGH_WATER and self.transport is not None:
            self.transport.underlying_transport.pause_reading()
            self.paused = True

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


class _PicowsConnection:
    def __init__(self, transport: WSTransport, listener: _Listener, close_timeout: float) -> None:
        self._transport = transport
        self._listener = listener
        self._close_timeout = close_timeout

    async def recv_many(self, limit: int) -> list[bytes | str]:
        listener = self._listener
        messages = listener.messages
        while True:
            if messages:
                batch: list[bytes | str]
                if len(messages) <= limit:
                    batch = list(messages)
                    messages.clear()
                else:
                    batch = [messages.popleft() for _ in range(limit)]
                if listener.paused and len(messages) <= LOW_WATER:
                    listener.paused = False
                    self._transport.underlying_transport.resume_reading()
                return batch
            if listener.disconnected:
                code = listener.close_code
                raise TransportClosed(f"websocket closed (code {code})", code, listener.close_reason)
            listener.waiter = asyncio.get_running_loop().create_future()
            try:
                await listener.waiter
            finally:
                listener.waiter = None

    async def send(self, text: str) -> None:
        if self._listener.disconnected:
            raise TransportClosed("websocket closed")
        self._transport.send(WSMsgType.TEXT, text.encode())

    async def close(self) -> None:
        if self._listener.disconnected:
            return
        self._transport.send_close(WSCloseCode.OK)
        self._transport.disconnect()
        try:
            await asyncio.wait_for(self._transport.wait_disconnected(), self._close_timeout)
        except (TimeoutError, WSError, OSError):
            self.abort()

    def abort(self) -> None:
        self._transport.disconnect(graceful=False)


class PicowsConnector:
    """Connects with picows; `open_timeout`/`close_timeout` in seconds."""

    def __init__(self, *, open_timeout: float = 10.0, close_timeout: float = 2.0) -> None:
        self._open_timeout = open_timeout
        self._close_timeout = close_timeout

    async def connect(self, url: str, caps: Capabilities) -> WsConnection:
        ping, ping_timeout = client_ping(caps)
        limit = message_limit(caps)
        try:
            transport, listener = await ws_connect(
                lambda: _Listener(limit),
                url,
                websocket_handshake_timeout=self._open_timeout,
                enable_auto_ping=ping is not None,
                auto_ping_idle_timeout=ping or 20.0,
                auto_ping_reply_timeout=ping_timeout or 20.0,
                max_frame_size=limit,
                extra_headers={"User-Agent": user_agent("picows")},
            )
        except (OSError, TimeoutError, WSError) as exc:
            raise ExchangeError(f"cannot connect to {url}: {type(exc).__name__}: {exc}") from exc
        assert isinstance(listener, _Listener)
        return _PicowsConnection(transport, listener, self._close_timeout)
