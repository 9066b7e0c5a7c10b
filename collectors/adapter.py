"""The seam between the one websocket loop (session.py) and each exchange (exchanges/<name>.py).

An adapter is pure: it builds URLs, subscribe messages and REST requests, and turns frames and REST
bodies into `core.types.Trade`s. It never opens a socket, sleeps or logs; the session does all I/O.

Frame contract (`ExchangeAdapter.parse`):
- a frame with trades returns them (ts_event = exchange trade time, ts_recv = the given receipt time,
  both integer ns UTC; price/quantity the exact strings sent);
- a control frame (subscribe ack, pong, heartbeat) or another market event returns `[]`;
- a frame announcing that the server is going away raises `ReconnectRequested`;
- anything else raises `core.errors.ParseError` whose `error_type` is one of `PARSE_ERROR_TYPES`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Protocol

import msgspec

from core.errors import ExchangeError
from core.types import SymbolInfo, Trade

# The bounded label set of collector_errors_total{error_type} that adapters may produce.
MALFORMED_JSON: Final = "malformed_json"
UNEXPECTED_SCHEMA: Final = "unexpected_schema"
INVALID_VALUE: Final = "invalid_value"
UNKNOWN_SYMBOL: Final = "unknown_symbol"
OVERSIZED: Final = "oversized"
UNEXPECTED_EVENT: Final = "unexpected_event"
EXCHANGE_ERROR: Final = "exchange_error"
PARSE_ERROR_TYPES: Final = frozenset(
    {
        MALFORMED_JSON,
        UNEXPECTED_SCHEMA,
        INVALID_VALUE,
        UNKNOWN_SYMBOL,
        OVERSIZED,
        UNEXPECTED_EVENT,
        EXCHANGE_ERROR,
    }
)


class ReconnectRequested(ExchangeError):
    """The exchange announced it is closing this connection (e.g. Binance `serverShutdown`)."""


class RestRequest(msgspec.Struct, frozen=True):
    """One REST call relative to the exchange's REST base URL: `GET {base}{path}?{params}`."""

    path: str
    params: tuple[tuple[str, str], ...] = ()
    method: str = "GET"


class AdapterLimits(msgspec.Struct, frozen=True):
    """What the exchange allows per connection, and how the session keeps a connection alive.

    max_connection_age_s: the exchange cuts a connection after this long (seconds);
    reconnect_margin_s: the session reconnects proactively this much earlier.
    client_ping_interval_s / client_ping_timeout_s: websocket ping frames the client sends itself
    (None: the server pings and the client library answers with pongs automatically).
    max_frame_bytes: larger frames are rejected as `oversized` (the connection survives).
    backfill_page_size: rows per REST backfill page.
    """

    max_streams_per_connection: int
    max_connection_age_s: float
    reconnect_margin_s: float
    max_frame_bytes: int
    client_ping_interval_s: float | None = None
    client_ping_timeout_s: float | None = None
    backfill_page_size: int = 1000

    @property
    def proactive_reconnect_s(self) -> float:
        return max(self.max_connection_age_s - self.reconnect_margin_s, 1.0)


class ExchangeAdapter(Protocol):
    """One exchange's protocol, without I/O. Construct it with the exchange's `SymbolInfo`s.

    `name` labels metrics and `Trade.exchange`. Trade ids must increase by one per trade within a raw
    symbol: the session relies on that for gap detection (`collectors.gaps.GapTracker`).
    """

    name: str
    limits: AdapterLimits
    default_ws_url: str
    default_rest_url: str

    def symbol_info(self, raw_symbol: str) -> SymbolInfo | None:
        """The instrument for an exchange symbol (e.g. BTCUSDT), None when unknown."""
        ...

    def streams_per_symbol(self) -> int:
        """How many streams one symbol uses (for splitting symbols over connections)."""
        ...

    def ws_url(self, base_url: str, raw_symbols: Sequence[str]) -> str:
        """The URL of one connection carrying `raw_symbols` (used on every connect)."""
        ...

    def subscribe_messages(self, raw_symbols: Sequence[str]) -> list[str]:
        """Text frames to send right after every (re)connect; may be empty if the URL subscribes."""
        ...

    def parse(self, frame: bytes | str, ts_recv: int) -> list[Trade]:
        """Trades in one frame (see the module docstring for the control-frame and error contract)."""
        ...

    def backfill_request(self, raw_symbol: str, from_id: int, limit: int) -> RestRequest:
        """REST request for trades with id >= from_id, oldest first, at most `limit`."""
        ...

    def parse_backfill(self, body: bytes, raw_symbol: str, ts_recv: int) -> list[Trade]:
        """Trades of a backfill response, flagged backfilled=True; ParseError when malformed."""
        ...

    def symbols_request(self) -> RestRequest:
        """REST request listing the exchange's instruments."""
        ...

    def parse_symbols(self, body: bytes) -> list[SymbolInfo]:
        """Instruments of a `symbols_request` response, canonical BASE-QUOTE symbols."""
        ...
