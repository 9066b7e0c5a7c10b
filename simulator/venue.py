"""The seam between the shared simulated exchange and one venue's protocol.

The shared core (exchange.py, connection.py, rest.py) owns sockets, clocks, the market, history, faults and
fan-out; it never names a venue or builds a venue's JSON. A venue is a `VenueProtocol` (what it serves and
how it spells things) that opens one `VenueSession` per websocket (subscriptions and the control
conversation: pure, no sockets, no sleeps). Adding a venue is one module and one line in
`simulator.venues.VENUES`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal, Protocol

import msgspec
from aiohttp import web
from aiohttp.typedefs import Middleware as Middleware  # re-exported: a venue's REST middleware type

from simulator.history import SymbolHistory
from simulator.malformed import TradeFields
from simulator.symbols import split_pair, symbol_form
from simulator.trades import MarketTrade

Render = Callable[[MarketTrade], bytes]
Route = tuple[Render | None, bytes | None, bytes]
"""How one subscription turns a recorded trade into a websocket payload: (render, prefix, suffix).
render None sends the venue's pre-encoded payload (`encode_trade`), else render(trade); a prefix that is
not None wraps the body as prefix + body + suffix. A plain tuple: the sender unpacks one per trade."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
RestRoute = tuple[str, Handler]
"""(path, handler) of one GET endpoint, the path in aiohttp's syntax (`/items/{item_id}/trades`)."""


@dataclass(frozen=True)
class VenueOptions:
    """Tunable times and limits, from the settings; each venue uses those that apply to it.

    Seconds: ping_interval/ping_timeout (venues whose server sends ping frames), heartbeat_interval
    (venues with a heartbeat channel), idle_timeout (venues that close silent connections),
    subscribe_timeout (venues that close connections that have not subscribed). weight_limit: REST
    weight per minute for venues that meter it (None = unlimited).
    """

    ping_interval: float = 20.0
    ping_timeout: float = 60.0
    heartbeat_interval: float = 1.0
    idle_timeout: float = 30.0
    subscribe_timeout: float = 5.0
    weight_limit: int | None = None


@dataclass(frozen=True)
class IdleRule:
    """Close a connection with (`code`, `reason`) after `timeout` seconds of: `until="subscribed"`, never
    having subscribed since it opened; `until="traffic"`, no frame sent or received."""

    timeout: float
    code: int
    reason: str
    until: Literal["subscribed", "traffic"]


@dataclass(frozen=True)
class KeepAlive:
    """How a venue keeps websockets alive and limits them. Seconds; None = the venue does not do it.

    ping_interval: the server sends a protocol ping frame this often, and drops a connection whose pong
    has not come within ping_timeout. heartbeat_interval: `VenueSession.heartbeat` is sent this often.
    idle: when the server closes a quiet connection. incoming: at most `count` client frames in any
    `window` seconds, else close 1008 (pongs answering the server's own pings are not counted).
    """

    ping_interval: float | None = None
    ping_timeout: float = 60.0
    heartbeat_interval: float | None = None
    idle: IdleRule | None = None
    incoming: tuple[int, float] | None = None


class HandshakeRefused(Exception):
    """Raised by `VenueProtocol.open` to answer the upgrade request with `response` instead."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


class ExchangeView(Protocol):
    """What a venue may read of the shared exchange."""

    @property
    def symbols(self) -> frozenset[str]:
        """The raw symbols the exchange lists."""
        ...

    def history_of(self, symbol: str) -> SymbolHistory: ...

    def latest_before(self, symbol: str, cursor: int, *, visible: bool) -> MarketTrade | None:
        """The symbol's latest trade recorded before TradeLog position `cursor` (a connection's next read);
        visible: skipping trades the skip fault withheld from websockets."""
        ...

    def recent_before(self, symbol: str, cursor: int, count: int, *, visible: bool) -> list[MarketTrade]:
        """The symbol's latest `count` trades recorded before TradeLog position `cursor`, oldest first
        (visible: as for `latest_before`): what a venue replays to a new subscription."""
        ...


class VenueSession(ABC):
    """One websocket's subscriptions and control conversation. Payloads returned are text frames.

    `cursor` arguments are the connection's next TradeLog position: trades before it were sent (or
    withheld), trades from it on will be. `errors` counts client frames answered with the venue's error.
    """

    _version = 0
    errors = 0

    @property
    def version(self) -> int:
        """Changes whenever `routes()` would answer differently, so the sender rebuilds its table."""
        return self._version

    @property
    @abstractmethod
    def subscribed(self) -> bool:
        """At least one subscription: the connection tails trades, and on-demand markets produce for it."""

    @abstractmethod
    def streams(self) -> list[str]:
        """The subscriptions in the venue's words, for GET /admin/state."""

    @abstractmethod
    def routes(self) -> dict[str, list[Route]]:
        """Raw symbol -> how each of its subscriptions renders a trade."""

    @abstractmethod
    def on_message(self, data: str | bytes, cursor: int) -> list[bytes]:
        """Answer one client text/binary frame; never raises for bad input (answers the venue's error)."""

    def greeting(self, now_ns: int) -> list[bytes]:
        """Payloads sent as soon as the connection opens, before any client frame (now_ns: wall clock)."""
        return []

    def heartbeat(self, cursor: int, now_ns: int) -> list[bytes]:
        """Payloads sent every `KeepAlive.heartbeat_interval` (now_ns: wall clock, Unix nanoseconds)."""
        return []

    def farewell(self, time_ms: int) -> list[bytes]:
        """Payloads sent before the server closes the socket with 1001 at shutdown."""
        return []


def client_json(data: str | bytes) -> object:
    """A client frame decoded as JSON; None when it is not JSON (or invalid UTF-8, or nested too deep):
    every venue answers such a frame with its error instead of failing."""
    try:
        return msgspec.json.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None


class VenueProtocol(ABC):
    """One venue: names, websocket paths, keep-alive, trade encoding, sessions and REST.

    Class attributes: `name` (registry key), `default_symbols` (raw), `symbol_separator` (between base and
    quote in a raw symbol), `ws_paths` (aiohttp route paths answered as websockets), `malformed_kinds`
    and `trade_fields` (see simulator/malformed.py), `rate_limited_body` (the JSON body of the venue's
    HTTP 429 for the `rate_limit` fault; the core adds Retry-After). `keepalive` is set per instance
    from the options. One instance serves one exchange.
    """

    name: ClassVar[str]
    default_symbols: ClassVar[tuple[str, ...]]
    symbol_separator: ClassVar[str]
    ws_paths: ClassVar[tuple[str, ...]]
    malformed_kinds: ClassVar[tuple[str, ...]]
    trade_fields: ClassVar[TradeFields]
    rate_limited_body: object

    def __init__(self, options: VenueOptions) -> None:
        self.options = options
        self.keepalive = KeepAlive()

    def raw_symbol(self, text: str) -> str:
        """User input or a replay file's spelling ('btc-usdt', 'BTC/USDT', 'BTCUSDT') as this venue spells
        it; ConfigError if it is not a symbol."""
        return symbol_form(self.symbol_separator)(text)

    def instrument(self, symbol: str) -> tuple[str, str]:
        """(base, quote) of a raw symbol."""
        return split_pair(symbol)

    @abstractmethod
    def encode_trade(self, trade: MarketTrade) -> bytes:
        """The trade's main websocket payload, encoded once when it is recorded (the hot path)."""

    @abstractmethod
    def open(self, request: web.Request, conn_id: int, view: ExchangeView) -> VenueSession:
        """A session for an upgrade request on one of `ws_paths`; HandshakeRefused to refuse it."""

    @abstractmethod
    def rest_routes(self, view: ExchangeView) -> Sequence[RestRoute]:
        """The venue's GET endpoints. Handlers raise `simulator.rest.RestRefusal` for the venue's errors."""

    def rest_middleware(self, view: ExchangeView) -> Middleware | None:
        """Runs around every REST call (inside metrics, outside faults), e.g. to add weight headers."""
        return None
