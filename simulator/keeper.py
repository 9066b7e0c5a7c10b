"""The keep-alive timers of one websocket, run as one task per connection (see `KeepAlive`).

- Protocol pings every `ping_interval`; a connection that has not answered a ping (a pong echoing its
  payload) within `ping_timeout` is dropped without a close frame, as a dead peer would be.
- Heartbeat payloads of the session every `heartbeat_interval`, except during a stall (the feed is frozen).
- The idle rule: close with the venue's code and reason when it expires.
Times are event-loop seconds.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any, Protocol

from simulator.venue import KeepAlive, VenueSession


class KeptConnection(Protocol):
    """What the keeper needs of a connection."""

    closing: bool
    cursor: int
    last_activity: float
    opened_at: float
    ever_subscribed: bool
    session: VenueSession
    log: Any

    @property
    def writable(self) -> bool: ...

    def stalled_for(self) -> float: ...

    def write(self, payloads: list[bytes]) -> None: ...

    def abort(self) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...

    async def ping(self, payload: bytes) -> None: ...


class Keeper:
    """Keep-alive of one connection: outstanding pings (payload -> loop time sent) and the timers."""

    def __init__(self, conn: KeptConnection, keepalive: KeepAlive) -> None:
        self._conn, self._ka = conn, keepalive
        self._pings: dict[bytes, float] = {}
        self._ping_seq = 0

    def on_pong(self, data: bytes | bytearray) -> bool:
        """True if the pong answers an outstanding ping (which it and all older pings then clear)."""
        payload = bytes(data)
        if payload not in self._pings:
            return False  # unsolicited pongs are allowed but do not keep the connection alive
        for key in list(self._pings):
            del self._pings[key]
            if key == payload:
                break
        return True

    async def run(self) -> None:
        loop, conn, ka = asyncio.get_running_loop(), self._conn, self._ka
        start = loop.time()
        next_ping = start + ka.ping_interval if ka.ping_interval else math.inf
        next_beat = start + ka.heartbeat_interval if ka.heartbeat_interval else math.inf
        while not conn.closing:
            due = min(next_ping, next_beat, self._pong_deadline(), self._idle_deadline())
            await asyncio.sleep(max(0.0, due - loop.time()))
            now = loop.time()
            if now >= self._pong_deadline():
                conn.log.info("no pong within {}s: dropping", ka.ping_timeout)
                conn.abort()
                return
            if now >= self._idle_deadline() and ka.idle is not None:
                conn.log.info("idle for {}s: closing {} {!r}", ka.idle.timeout, ka.idle.code, ka.idle.reason)
                await conn.close(ka.idle.code, ka.idle.reason)
                return
            if now >= next_ping and ka.ping_interval:
                await self._ping(now)
                next_ping = now + ka.ping_interval
            if now >= next_beat and ka.heartbeat_interval:
                if conn.stalled_for() <= 0:
                    conn.write(conn.session.heartbeat(conn.cursor, time.time_ns()))
                next_beat = max(next_beat + ka.heartbeat_interval, now)

    async def _ping(self, now: float) -> None:
        if self._conn.writable:
            self._ping_seq += 1
            payload = str(self._ping_seq).encode()
            self._pings[payload] = now
            await self._conn.ping(payload)

    def _pong_deadline(self) -> float:
        oldest = min(self._pings.values(), default=None)
        return math.inf if oldest is None else oldest + self._ka.ping_timeout

    def _idle_deadline(self) -> float:
        rule, conn = self._ka.idle, self._conn
        if rule is None:
            return math.inf
        if rule.until == "subscribed":
            return math.inf if conn.ever_subscribed else conn.opened_at + rule.timeout
        return conn.last_activity + rule.timeout
