"""uvicorn's HTTP/1.1 protocol with the limits uvicorn has no setting for.

uvicorn closes a kept-alive connection that stays idle (`timeout_keep_alive`), but a connection whose
request headers never finish, a body that never ends, or a client that never reads its response hold
their connection (and a file descriptor) for ever: a few hundred of them starve the process. Each
connection here has at most one timer running:

- header: from the connection opening (or from the first byte of a later request on a kept-alive
  connection) until its request head is complete; a trickle of bytes does not reset it;
- body: from the head until the request body is complete;
- send: while the transport's write buffer stays full (the client does not read).

and the server keeps at most `max_connections` open: at the limit, the connection that has been idle or
sending its headers the longest is closed to make room (a new one is refused only when every open
connection is busy with a request). Every closing is counted in `http_shed_total{reason}`.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import h11
from prometheus_client import Counter
from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT = "header_timeout"
BODY_TIMEOUT = "body_timeout"
SEND_TIMEOUT = "send_timeout"
BODY_TOO_LARGE = "body_too_large"
CONNECTION_LIMIT = "connection_limit"


@dataclass(frozen=True)
class ConnectionLimits:
    """Seconds and counts; see the module docstring."""

    header_timeout: float
    body_timeout: float
    send_timeout: float
    max_connections: int
    max_body_bytes: int


class ConnectionGuard:
    """What the connections of one server share: their limits, the shed counter and the connections that
    wait for a request (idle, or still sending headers), oldest first. One event loop, no locking."""

    def __init__(self, limits: ConnectionLimits, shed: Counter) -> None:
        self.limits = limits
        self._shed = shed
        self._waiting: OrderedDict[GuardedH11Protocol, None] = OrderedDict()

    def waiting(self, connection: GuardedH11Protocol) -> None:
        self._waiting[connection] = None
        self._waiting.move_to_end(connection)

    def busy(self, connection: GuardedH11Protocol) -> None:
        self._waiting.pop(connection, None)

    def admit(self, newcomer: GuardedH11Protocol, open_connections: int) -> bool:
        """Make room for `newcomer` (already counted in `open_connections`); False: refuse it."""
        if open_connections <= self.limits.max_connections:
            return True
        victim = next((c for c in self._waiting if c is not newcomer), None)
        if victim is None:
            self.count(CONNECTION_LIMIT)
            return False
        victim.drop(CONNECTION_LIMIT)
        return True

    def count(self, reason: str) -> None:
        self._shed.labels(reason).inc()


class GuardedH11Protocol(H11Protocol):
    """One connection. `guard` is set on the subclass `guarded_protocol` makes for each server."""

    guard: ConnectionGuard

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None
        self._timing: str | None = None
        self._body_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.guard.waiting(self)
        if not self.guard.admit(self, len(self.connections)):
            transport.close()
            return
        self._start(HEADER_TIMEOUT)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop()
        self.guard.busy(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE and self._timing is None:
            self._start(HEADER_TIMEOUT)  # the first byte of a request on a kept-alive connection
        elif self.conn.their_state is h11.SEND_BODY:
            self._body_bytes += len(data)
        super().data_received(data)
        self._follow_request()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow_request()

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._timing != SEND_TIMEOUT:
            self._start(SEND_TIMEOUT)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._timing == SEND_TIMEOUT:
            self._stop()
            self._follow_request()

    def drop(self, reason: str) -> None:
        """Close the connection for `reason` and count it."""
        self._stop()
        self.guard.busy(self)
        if self.transport.is_closing():
            return
        self.guard.count(reason)
        if reason == SEND_TIMEOUT:
            self.transport.abort()  # its buffer would never drain: close() would wait for it
        else:
            self.transport.close()

    def _follow_request(self) -> None:
        """Keep the timer and the waiting list in step with where the request is."""
        if self.transport.is_closing() or self._timing == SEND_TIMEOUT:
            return
        state = self.conn.their_state
        if state is h11.IDLE and (self.cycle is None or self.cycle.response_complete):
            self.guard.waiting(self)  # idle: uvicorn's keep-alive timeout or the header timer runs
            return
        self.guard.busy(self)
        if state is not h11.SEND_BODY:
            self._body_bytes = 0
            self._stop()
        elif self._body_bytes > self.guard.limits.max_body_bytes * 9 // 8:  # 1/8 for chunk framing
            self.drop(BODY_TOO_LARGE)
        elif self._timing != BODY_TIMEOUT:
            self._start(BODY_TIMEOUT)

    def _start(self, what: str) -> None:
        self._stop()
        limits = self.guard.limits
        seconds = {HEADER_TIMEOUT: limits.header_timeout, BODY_TIMEOUT: limits.body_timeout}.get(
            what, limits.send_timeout
        )
        self._timing = what
        self._timer = self.loop.call_later(seconds, self.drop, what)

    def _stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timing = None


def guarded_protocol(limits: ConnectionLimits, shed: Counter) -> type[GuardedH11Protocol]:
    """The protocol class for one server (uvicorn instantiates it per connection)."""
    guard = ConnectionGuard(limits, shed)
    return type("ServerH11Protocol", (GuardedH11Protocol,), {"guard": guard})
