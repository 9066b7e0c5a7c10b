"""Binance Spot behind the venue seam: market-stream websockets (`/ws/<streams>`, `/stream?streams=`, `/ws`)
and REST (/api/v3/...).

Keep-alive and limits: a ping frame every `ping_interval` (20 s), a connection that has not answered within
`ping_timeout` (60 s) is dropped; more than 5 incoming frames (text, binary, ping or unsolicited pong)
within one second closes the connection with 1008. `stop()` sends `serverShutdown`, then closes 1001.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from aiohttp import web

from simulator.binance.control import Subscriptions, handle_control
from simulator.binance.frames import (
    agg_trade_payload,
    combined,
    combined_prefix,
    server_shutdown_payload,
    trade_payload,
)
from simulator.binance.rest import RestApi, too_many_requests_body
from simulator.binance.streams import DATA_KINDS, MAX_STREAMS, Stream, parse_stream
from simulator.malformed import COMMON_KINDS, TradeFields
from simulator.rest import json_response
from simulator.venue import (
    ExchangeView,
    HandshakeRefused,
    KeepAlive,
    Middleware,
    Render,
    RestRoute,
    Route,
    VenueOptions,
    VenueProtocol,
    VenueSession,
)

MALFORMED_KINDS = COMMON_KINDS[:11]  # all but invalid_utf8 and deeply_nested, which Binance never sent
MAX_INCOMING_PER_SECOND = 5
_TIME_UNITS = {"MILLISECOND": False, "MICROSECOND": True}
_MICROS_TRADE: Render = partial(trade_payload, micros=True)
_AGG_TRADE: dict[bool, Render] = {False: agg_trade_payload, True: partial(agg_trade_payload, micros=True)}


class BinanceSession(VenueSession):
    """One market-stream connection: its streams, whether payloads are wrapped (combined), time unit."""

    def __init__(self, subs: Subscriptions, *, micros: bool) -> None:
        self.subs, self.micros = subs, micros

    @property
    def version(self) -> int:
        return self.subs.version

    @property
    def subscribed(self) -> bool:
        return len(self.subs) > 0

    def streams(self) -> list[str]:
        return self.subs.names

    def routes(self) -> dict[str, list[Route]]:
        routes: dict[str, list[Route]] = {}
        for stream in self.subs.streams:
            if stream.kind in DATA_KINDS:
                routes.setdefault(stream.symbol, []).append(self._route(stream))
        return routes

    def _route(self, stream: Stream) -> Route:
        prefix = combined_prefix(stream.name) if self.subs.combined else None
        render: Render | None = _MICROS_TRADE if self.micros else None
        if stream.kind == "aggTrade":
            render = _AGG_TRADE[self.micros]
        return render, prefix, b"}"

    def on_message(self, data: str | bytes, cursor: int) -> list[bytes]:
        reply = handle_control(data, self.subs)
        self.errors += reply.startswith(b'{"code"')  # results start with {"result"
        return [reply]

    def farewell(self, time_ms: int) -> list[bytes]:
        payload = server_shutdown_payload(time_ms)
        return [combined("!serverShutdown", payload) if self.subs.combined else payload]


class BinanceProtocol(VenueProtocol):
    """Binance Spot (see the module docstring and simulator/README.md)."""

    name = "binance"
    default_symbols = ("BTCUSDT", "ETHUSDT")
    symbol_separator = ""
    ws_paths = ("/ws", "/ws/{streams:.+}", "/stream")
    malformed_kinds = MALFORMED_KINDS
    trade_fields = TradeFields(kind="e", price="p", size="q", trade_id="t", symbol="s")

    def __init__(self, options: VenueOptions) -> None:
        super().__init__(options)
        self.keepalive = KeepAlive(
            ping_interval=options.ping_interval,
            ping_timeout=options.ping_timeout,
            incoming=(MAX_INCOMING_PER_SECOND, 1.0),
        )
        self.rate_limited_body = too_many_requests_body(options.weight_limit)
        self._rest: RestApi | None = None

    # The plain function, not a method: publish() calls it once per trade.
    encode_trade = staticmethod(trade_payload)

    def open(self, request: web.Request, conn_id: int, view: ExchangeView) -> VenueSession:
        try:
            streams, combined_flag, micros = _handshake_params(request)
        except ValueError as exc:
            refusal = json_response({"code": 2, "msg": f"Invalid request: {exc}"}, status=400)
            raise HandshakeRefused(refusal) from exc
        return BinanceSession(Subscriptions(streams, combined=combined_flag), micros=micros)

    def rest_routes(self, view: ExchangeView) -> Sequence[RestRoute]:
        return self._rest_api(view).routes()

    def rest_middleware(self, view: ExchangeView) -> Middleware | None:
        return self._rest_api(view).weight

    def _rest_api(self, view: ExchangeView) -> RestApi:
        if self._rest is None:
            self._rest = RestApi(view, self.options.weight_limit)
        return self._rest


def _handshake_params(request: web.Request) -> tuple[list[Stream], bool, bool]:
    """(streams named in the URL, combined, micros) of an upgrade request; ValueError to refuse it."""
    if request.path.startswith("/stream"):
        names, combined_flag = request.query.get("streams", "").split("/"), True
    else:
        names, combined_flag = request.match_info.get("streams", "").split("/"), False
    parsed = [parse_stream(n) for n in names if n]
    streams = [s for s in parsed if s is not None]
    if len(streams) != len(parsed):
        raise ValueError("invalid stream")
    if len(streams) > MAX_STREAMS:
        raise ValueError(f"too many streams, at most {MAX_STREAMS} per connection")
    unit = request.query.get("timeUnit", "MILLISECOND").upper()
    if unit not in _TIME_UNITS:
        raise ValueError("invalid timeUnit, expected MILLISECOND or MICROSECOND")
    return streams, combined_flag, _TIME_UNITS[unit]
