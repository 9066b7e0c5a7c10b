"""Websocket clients behind one small interface, so the session loop does not care which library runs.

`WebsocketsConnector` (the `websockets` library, default) answers server pings automatically and hands
text frames over as undecoded UTF-8 bytes (msgspec decodes bytes directly). Library errors become
`TransportClosed` / `ExchangeError` here.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Protocol

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from collectors.adapter import Capabilities, HeartbeatKind
from core.errors import ExchangeError

# The library takes messages up to this size (bytes) so that a message above the adapter's own limit is
# counted and skipped by the adapter instead of closing the connection (1009); beyond it, memory wins:
# the client refuses the message (fragmented or not) and the connection closes.
LIBRARY_MAX_FRAME_BYTES = 8 * 1024 * 1024


def message_limit(caps: Capabilities) -> int:
    """The largest message (bytes, after reassembling fragments) a websocket client accepts."""
    return max(LIBRARY_MAX_FRAME_BYTES, caps.max_frame_bytes)


def client_ping(caps: Capabilities) -> tuple[float | None, float | None]:
    """(interval, timeout) of websocket ping frames the client sends itself; (None, None) when the venue
    pings (the library answers) or keeps the connection alive otherwise."""
    if caps.heartbeat is HeartbeatKind.CLIENT_PING:
        return caps.ping_interval_s, caps.ping_timeout_s
    return None, None


class TransportClosed(ExchangeError):
    """The websocket closed (by either side); `code`/`reason` as sent in the close frame, if any."""

    def __init__(self, message: str, code: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


class WsConnection(Protocol):
    async def recv_many(self, limit: int) -> list[bytes | str]:
        """The data frames that have arrived, oldest first: at least one (waiting for it) and at most
        `limit`. TransportClosed once the connection is closed and every frame before that was read.
        Reading in batches spreads the per-read cost of the event loop over every frame waiting."""
        ...

    async def send(self, text: str) -> None: ...

    async def close(self) -> None:
        """Close politely (close handshake, bounded by a short timeout)."""
        ...

    def abort(self) -> None:
        """Drop the TCP connection now (a stalled peer would not answer a close handshake)."""
        ...


class WsConnector(Protocol):
    async def connect(self, url: str, caps: Capabilities) -> WsConnection:
        """Open a connection; ExchangeError (or OSError subclasses translated) when it cannot."""
        ...


class _WebsocketsConnection:
    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws

    async def recv_many(self, limit: int) -> list[bytes | str]:
        """One frame per call: websockets does not expose the frames it has already buffered."""
        try:
            return [await self._ws.recv(decode=False)]
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else None
            reason = exc.rcvd.reason if exc.rcvd is not None else ""
            raise TransportClosed(f"websocket closed: {exc}", code, reason) from exc

    async def send(self, text: str) -> None:
        try:
            await self._ws.send(text)
        except ConnectionClosed as exc:
            raise TransportClosed(f"websocket closed: {exc}") from exc

    async def close(self) -> None:
        await self._ws.close()

    def abort(self) -> None:
        self._ws.transport.abort()


def user_agent(client: str) -> str:
    """How the collector introduces itself to an exchange: product, version and websocket client."""
    try:
        release = version("cryptostock")
    except PackageNotFoundError:
        release = "dev"
    return f"cryptostock/{release} ({client})"


class WebsocketsConnector:
    """Connects with the `websockets` library: `close_timeout` and `open_timeout` in seconds."""

    def __init__(self, *, open_timeout: float = 10.0, close_timeout: float = 2.0) -> None:
        self._open_timeout = open_timeout
        self._close_timeout = close_timeout

    async def connect(self, url: str, caps: Capabilities) -> WsConnection:
        ping_interval, ping_timeout = client_ping(caps)
        try:
            ws = await connect(
                url,
                open_timeout=self._open_timeout,
                close_timeout=self._close_timeout,
                ping_interval=ping_interval,
                ping_timeout=ping_timeout,
                max_size=message_limit(caps),
                max_queue=1024,
                proxy=None,
                user_agent_header=user_agent("websockets"),
            )
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            raise ExchangeError(f"cannot connect to {url}: {type(exc).__name__}: {exc}") from exc
        return _WebsocketsConnection(ws)
