"""The seam between the shared collector code (session, gap tracking, repair) and each venue.

An adapter is pure: it builds URLs, subscribe and ping messages and REST requests, turns frames and REST
bodies into `core.types.Trade`s, and classifies the venue's HTTP answers. It never opens a socket,
sleeps or logs; the session and the backfiller do all I/O. What differs between venues in how a
connection is kept, how gaps are found and how they are repaired is declared in `Capabilities`; shared
code reads those and never names a venue.

Frame contract (`ExchangeAdapter.parse`):
- a frame with trades returns them (ts_event = exchange trade time, ts_recv = the given receipt time,
  both integer ns UTC; price/quantity the exact strings sent; trade_id the venue's id as text; sequence
  the contiguous per-symbol integer where `Capabilities.sequence` is CONTIGUOUS, else None);
- a control frame (subscribe ack, pong, heartbeat) or another market event returns `[]`;
- a frame announcing that the server is going away raises `ReconnectRequested`;
- anything else raises `core.errors.ParseError` whose `error_type` is one of `PARSE_ERROR_TYPES`.
  That includes any decoding error (invalid UTF-8, deep nesting) and values outside what the store
  keeps (`collectors.values`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from enum import StrEnum
from typing import Final, Protocol
from urllib.parse import urlsplit

import msgspec

from core.errors import ExchangeError
from core.types import Candle, SymbolInfo, Trade

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
    """The exchange announced it is closing this connection (e.g. a server-shutdown event)."""


class SequenceKind(StrEnum):
    """Whether a venue's trades carry a sequence that proves completeness."""

    CONTIGUOUS = "contiguous"  # an integer growing by exactly one per trade of a symbol: gaps are provable
    NONE = "none"  # no such sequence: completeness cannot be proven from ids


class RepairKind(StrEnum):
    """How missed trades can be fetched over REST."""

    ID_CURSOR = "id_cursor"  # pages addressed by trade id: a sequence gap is fetched exactly
    TIME_WINDOW = "time_window"  # pages forward from a time: the missing sequence numbers are kept
    RECENT_ONLY = "recent_only"  # only the latest few trades: what is older cannot be repaired
    NONE = "none"  # no REST trade history at all


class HeartbeatKind(StrEnum):
    """How a connection is kept alive and shown to be alive."""

    PROTOCOL_PING = "protocol_ping"  # the server sends websocket ping frames; the client library answers
    CLIENT_PING = "client_ping"  # the client sends websocket ping frames every `ping_interval_s`
    APP_PING = "app_ping"  # the client sends `ping_message()` (a text frame) every `ping_interval_s`
    HEARTBEAT_CHANNEL = "heartbeat_channel"  # the venue pushes heartbeat messages on a subscribed channel


class KlineSupport(msgspec.Struct, frozen=True):
    """Whether a venue serves its own 1m candles over REST, to check stored bars against.

    page_minutes: candles one `klines_request` may cover (0: the venue serves none; `reason` says why).
    reach_s: how far back the venue serves them (seconds; None = no limit known).
    """

    page_minutes: int = 0
    reach_s: float | None = None
    reason: str = ""

    @property
    def available(self) -> bool:
        return self.page_minutes > 0


NO_KLINES: Final = KlineSupport(reason="this venue serves no 1m candles over REST")


class Capabilities(msgspec.Struct, frozen=True):
    """What a venue guarantees and allows; the session, gap tracking and repair act on these.

    sequence: see SequenceKind. repair: see RepairKind; repair_reach_s: how far back REST reaches
    (seconds; None = no limit in time: as far as a collector needs, or for RECENT_ONLY the latest
    repair_page_size trades however old they are). repair_page_size: rows per REST page.
    heartbeat: see HeartbeatKind; ping_interval_s / ping_timeout_s: for CLIENT_PING and APP_PING, how
    often the client pings and how long it waits for the answer (seconds).
    max_connection_age_s: the venue cuts a connection after this long (None = no limit);
    reconnect_margin_s: the session opens the successor connection this much earlier.
    max_streams_per_connection: symbols x streams_per_symbol per connection;
    max_subscriptions_per_message: symbols per subscribe message (None = no limit).
    subscribe_snapshot: subscribing sends recent trades first (duplicates of what may be stored).
    klines: whether and how the venue serves 1m candles over REST (see KlineSupport).
    max_frame_bytes: larger frames are rejected as `oversized`; the websocket client refuses a message
    over MESSAGE_LIMIT_FACTOR times this (and closes the connection) so memory stays bounded.
    """

    sequence: SequenceKind
    repair: RepairKind
    heartbeat: HeartbeatKind
    max_streams_per_connection: int
    max_frame_bytes: int
    repair_reach_s: float | None = None
    repair_page_size: int = 1000
    ping_interval_s: float | None = None
    ping_timeout_s: float | None = None
    max_connection_age_s: float | None = None
    reconnect_margin_s: float = 0.0
    max_subscriptions_per_message: int | None = None
    streams_per_symbol: int = 1
    subscribe_snapshot: bool = False
    klines: KlineSupport = NO_KLINES

    @property
    def proactive_reconnect_s(self) -> float | None:
        """Seconds after which the session replaces a connection (None: never)."""
        if self.max_connection_age_s is None:
            return None
        return max(self.max_connection_age_s - self.reconnect_margin_s, 1.0)

    @property
    def symbols_per_connection(self) -> int:
        return max(self.max_streams_per_connection // self.streams_per_symbol, 1)


class RestRequest(msgspec.Struct, frozen=True):
    """One REST call relative to the exchange's REST base URL: `GET {base}{path}?{params}`."""

    path: str
    params: tuple[tuple[str, str], ...] = ()
    method: str = "GET"

    def param(self, name: str) -> str | None:
        """The value of query parameter `name` (the first one), None when absent."""
        return next((value for key, value in self.params if key == name), None)

    def with_param(self, name: str, value: str) -> RestRequest:
        """The same request with query parameter `name` set to `value` (in place, else appended)."""
        params = [(key, value if key == name else old) for key, old in self.params]
        if self.param(name) is None:
            params.append((name, value))
        return RestRequest(self.path, tuple(params), self.method)


class Gap(msgspec.Struct, frozen=True):
    """Sequence numbers `first`..`last` (inclusive) of `raw_symbol` that the live stream skipped.

    after_ns / before_ns: event times (ns UTC) of the trades on either side of the gap (0 if unknown):
    venues that repair by time start there.
    """

    raw_symbol: str
    first: int
    last: int
    after_ns: int = 0
    before_ns: int = 0

    @property
    def size(self) -> int:
        return self.last - self.first + 1


class RepairPage(msgspec.Struct, frozen=True):
    """One REST page of a repair: the trades in it that belong to the gap (ascending sequence, flagged
    backfilled) and the request for the next page (None: the repair is complete or cannot go on)."""

    trades: list[Trade]
    next: RestRequest | None


class RestVerdict(StrEnum):
    """What a venue's HTTP answer means for the backfiller."""

    OK = "ok"
    RATE_LIMITED = "rate_limited"  # slow down: refuse calls locally until the retry time has passed
    BANNED = "banned"  # the venue blocked this client for a while: same, usually for much longer
    ERROR = "error"  # a failed call (counts toward the circuit breaker)


class RestAnswer(msgspec.Struct, frozen=True):
    """An HTTP response as the adapter classifies it: `retry_after_s` for RATE_LIMITED and BANNED."""

    verdict: RestVerdict
    retry_after_s: float = 0.0
    detail: str = ""


DEFAULT_RETRY_AFTER_S: Final = 60.0


def retry_after_seconds(headers: Mapping[str, str], default: float = DEFAULT_RETRY_AFTER_S) -> float:
    """The Retry-After header in seconds (the default when absent or unreadable)."""
    value = headers.get("Retry-After")
    try:
        seconds = float(value) if value is not None else default
    except ValueError:
        return default
    return seconds if seconds >= 0 else default


def classify_http(
    status: int, headers: Mapping[str, str], body: bytes, default_retry_s: float = DEFAULT_RETRY_AFTER_S
) -> RestAnswer:
    """The plain HTTP reading most venues share: 429 rate limited (Retry-After, else `default_retry_s`
    seconds), 4xx/5xx an error."""
    if status == 429:
        wait = retry_after_seconds(headers, default_retry_s)
        return RestAnswer(RestVerdict.RATE_LIMITED, wait, f"HTTP {status}")
    if status >= 400:
        return RestAnswer(RestVerdict.ERROR, detail=f"HTTP {status}: {body[:200].decode('utf-8', 'replace')}")
    return RestAnswer(RestVerdict.OK)


def classify_coded(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    code: str | None,
    *,
    ok: str,
    slow_down: frozenset[str],
    retry_s: float,
    message: str = "",
) -> RestAnswer:
    """The reading of venues that put a result code in the body, often under HTTP 200 (OKX, Kraken,
    Bybit). `code`: the body's code (None: the body is not the venue's envelope). HTTP 429 or a
    `slow_down` code: rate limited (Retry-After, else `retry_s` seconds); other HTTP errors and bodies
    without a code: classify_http; a code other than `ok`: an error carrying `message`."""
    detail = f"HTTP {status} code {code}: {message[:200]}"
    if status == 429 or code in slow_down:
        return RestAnswer(RestVerdict.RATE_LIMITED, retry_after_seconds(headers, retry_s), detail)
    if status >= 400 or code is None or code == ok:
        return classify_http(status, headers, body, retry_s)
    return RestAnswer(RestVerdict.ERROR, detail=detail)


def with_default_path(base_url: str, path: str) -> str:
    """`base_url` with the venue's endpoint `path` appended when it names no path of its own (a host, or
    a host and '/'); a URL with a path is an endpoint given explicitly and is kept."""
    base = base_url.rstrip("/")
    return base if urlsplit(base).path else base + path


def newest_first_page(
    gap: Gap, request: RestRequest, trades: list[Trade], cursor: str = "after"
) -> RepairPage:
    """One page of a venue whose trade history pages by id NEWEST FIRST (Coinbase, OKX): `request` asked
    for trades with ids below its `cursor` parameter (start it at gap.last + 1). The page keeps the gap's
    trades in ascending sequence; the next request asks below this page's smallest id while that is
    still above gap.first. An empty page, or one whose ids did not go below the cursor, ends the repair."""
    ids = [t.sequence for t in trades if t.sequence is not None]
    wanted = sorted(
        (t for t in trades if t.sequence is not None and gap.first <= t.sequence <= gap.last),
        key=by_sequence,
    )
    oldest = min(ids, default=None)
    below = int(request.param(cursor) or gap.last + 1)
    if oldest is None or oldest <= gap.first or oldest >= below:
        return RepairPage(wanted, None)
    return RepairPage(wanted, request.with_param(cursor, str(oldest)))


def by_sequence(trade: Trade) -> int:
    """Sort key: the trade's sequence (-1 for a trade without one, which keeps its place)."""
    return -1 if trade.sequence is None else trade.sequence


def chunks(items: Sequence[str], size: int | None) -> Iterator[Sequence[str]]:
    """`items` in consecutive pieces of at most `size` (all at once when size is None)."""
    if size is None or size >= len(items):
        yield items
        return
    for start in range(0, len(items), size):
        yield items[start : start + size]


class ExchangeAdapter(Protocol):
    """One venue's protocol, without I/O. Construct it with the venue's `SymbolInfo`s.

    `name` labels metrics and `Trade.exchange`. `default_symbols` are what a collector collects when the
    user names none (raw symbols).
    """

    name: str
    capabilities: Capabilities
    default_ws_url: str
    default_rest_url: str
    default_symbols: tuple[str, ...]

    def symbol_info(self, raw_symbol: str) -> SymbolInfo | None:
        """The instrument for a venue symbol (e.g. BTCUSDT), None when unknown."""
        ...

    def resolve_symbol(self, text: str) -> SymbolInfo | None:
        """The instrument a user means by `text`: the venue's own symbol or the canonical BASE-QUOTE."""
        ...

    def ws_url(self, base_url: str, raw_symbols: Sequence[str]) -> str:
        """The URL of one connection carrying `raw_symbols` (used on every connect)."""
        ...

    def subscribe_messages(self, raw_symbols: Sequence[str]) -> list[str]:
        """Text frames subscribing `raw_symbols` (at most max_subscriptions_per_message of them), sent
        right after every (re)connect; empty if the URL subscribes."""
        ...

    def ping_message(self) -> str | None:
        """The application-level ping text (HeartbeatKind.APP_PING), else None."""
        ...

    def parse(self, frame: bytes | str, ts_recv: int) -> list[Trade]:
        """Trades in one frame (see the module docstring for the control-frame and error contract)."""
        ...

    def repair_request(self, gap: Gap) -> RestRequest | None:
        """The first REST request of a repair of `gap` (None: this venue cannot repair it)."""
        ...

    def repair_page(self, gap: Gap, request: RestRequest, body: bytes, ts_recv: int) -> RepairPage:
        """The trades of `gap` in the answer to `request`, and the next request; ParseError if malformed."""
        ...

    def recent_request(self, raw_symbol: str) -> RestRequest | None:
        """RepairKind.RECENT_ONLY venues: the request for the latest trades REST serves (at most
        repair_page_size of them); None elsewhere. Used after an outage of a venue without a sequence."""
        ...

    def parse_recent(self, raw_symbol: str, body: bytes, ts_recv: int) -> list[Trade]:
        """The trades of a `recent_request` answer, oldest first, flagged backfilled (ParseError when
        malformed)."""
        ...

    def klines_request(self, raw_symbol: str, start_ns: int, end_ns: int) -> RestRequest | None:
        """The request for the venue's 1m candles opening in [start_ns, end_ns) (ns UTC, whole minutes, at
        most `capabilities.klines.page_minutes` of them); None where the venue serves none."""
        ...

    def parse_klines(self, raw_symbol: str, body: bytes) -> list[Candle]:
        """The candles of a `klines_request` answer, oldest first, whatever order the venue sends
        (ParseError when malformed). The caller keeps those of the window it asked for."""
        ...

    def classify_response(self, status: int, headers: Mapping[str, str], body: bytes) -> RestAnswer:
        """What an HTTP answer of this venue means (its own ban and rate-limit codes included)."""
        ...

    def symbols_request(self) -> RestRequest:
        """REST request listing the venue's instruments."""
        ...

    def parse_symbols(self, body: bytes) -> list[SymbolInfo]:
        """Instruments of a `symbols_request` response, canonical BASE-QUOTE symbols."""
        ...
