"""Binance Spot websocket payloads and raw websocket framing (server side: unmasked frames).

Event payloads are built with f-strings rather than a JSON encoder: field order and types are exactly
Binance's, and the price/quantity strings are inserted unchanged.
"""

from __future__ import annotations

import random
import struct

from simulator.trades import MarketTrade

OP_TEXT = 0x1
OP_BINARY = 0x2
_HEADERS_TEXT = [bytes((0x80 | OP_TEXT, n)) for n in range(126)]


def trade_payload(trade: MarketTrade, *, micros: bool = False) -> bytes:
    """The raw `<symbol>@trade` event; E = T = the trade time (ms, or µs with timeUnit=MICROSECOND)."""
    t = trade.time_ms * 1000 if micros else trade.time_ms
    m = "true" if trade.is_buyer_maker else "false"
    return (
        f'{{"e":"trade","E":{t},"s":"{trade.symbol}","t":{trade.trade_id},"p":"{trade.price}",'
        f'"q":"{trade.quantity}","T":{t},"m":{m},"M":true}}'
    ).encode()


def agg_trade_payload(trade: MarketTrade, *, micros: bool = False) -> bytes:
    """The raw `<symbol>@aggTrade` event. Every trade is its own aggregate: a = f = l = trade id."""
    t = trade.time_ms * 1000 if micros else trade.time_ms
    m = "true" if trade.is_buyer_maker else "false"
    tid = trade.trade_id
    return (
        f'{{"e":"aggTrade","E":{t},"s":"{trade.symbol}","a":{tid},"p":"{trade.price}",'
        f'"q":"{trade.quantity}","f":{tid},"l":{tid},"T":{t},"m":{m},"M":true}}'
    ).encode()


def server_shutdown_payload(time_ms: int) -> bytes:
    return f'{{"e":"serverShutdown","E":{time_ms}}}'.encode()


def combined_prefix(stream: str) -> bytes:
    """What precedes a raw payload on /stream connections (a closing brace follows it)."""
    return b'{"stream":"' + stream.encode() + b'","data":'


def combined(stream: str, payload: bytes) -> bytes:
    """Wrap a raw payload the way /stream connections receive it."""
    return combined_prefix(stream) + payload + b"}"


def frame_header(length: int, opcode: int = OP_TEXT) -> bytes:
    """Header of one unfragmented, unmasked websocket frame carrying `length` payload bytes."""
    if length < 126:
        return _HEADERS_TEXT[length] if opcode == OP_TEXT else bytes((0x80 | opcode, length))
    if length < 65536:
        return struct.pack("!BBH", 0x80 | opcode, 126, length)
    return struct.pack("!BBQ", 0x80 | opcode, 127, length)


def frame(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    return frame_header(len(payload), opcode) + payload


MALFORMED_KINDS: tuple[str, ...] = (
    "invalid_json",
    "truncated_json",
    "price_as_number",
    "id_as_string",
    "nan_price",
    "negative_quantity",
    "unknown_symbol",
    "unknown_event",
    "missing_field",
    "oversized",
    "binary_garbage",
)
OVERSIZED_BYTES = 2 * 1024 * 1024


def malformed_payload(kind: str, trade: MarketTrade, rng: random.Random) -> tuple[bytes, int]:
    """A deliberately broken raw payload of `kind` (one of MALFORMED_KINDS) and its opcode.

    Trade-shaped kinds reuse `trade` (the symbol's latest trade), so a collector that wrongly accepted one
    would see a duplicate id rather than invent a gap.
    """
    good = trade_payload(trade)
    p, q, tid = trade.price, trade.quantity, trade.trade_id
    t, s = trade.time_ms, trade.symbol
    head = f'{{"e":"trade","E":{t},"s":"{s}","t":{tid}'
    tail = f'"T":{t},"m":true,"M":true}}'
    variants: dict[str, str] = {
        "price_as_number": f'{head},"p":{p},"q":"{q}",{tail}',
        "id_as_string": f'{{"e":"trade","E":{t},"s":"{s}","t":"{tid}","p":"{p}","q":"{q}",{tail}',
        "nan_price": f'{head},"p":"NaN","q":"{q}",{tail}',
        "negative_quantity": f'{head},"p":"{p}","q":"-{q}",{tail}',
        "unknown_symbol": f'{{"e":"trade","E":{t},"s":"NOSUCHCOIN","t":{tid},"p":"{p}","q":"{q}",{tail}',
        "unknown_event": f'{{"e":"mysteryEvent","E":{t},"s":"{s}","x":{tid}}}',
        "missing_field": f'{head},"q":"{q}",{tail}',
    }
    if kind == "invalid_json":
        return b'{"e":"trade","E":' + bytes(str(t), "ascii") + b",,}}{not json", OP_TEXT
    if kind == "truncated_json":
        return good[: len(good) // 2], OP_TEXT
    if kind == "oversized":
        padding = "x" * OVERSIZED_BYTES
        return f'{head},"p":"{p}","q":"{q}",{tail[:-1]},"pad":"{padding}"}}'.encode(), OP_TEXT
    if kind == "binary_garbage":
        return rng.randbytes(64), OP_BINARY
    if kind in variants:
        return variants[kind].encode(), OP_TEXT
    raise ValueError(f"unknown malformed kind {kind!r}")
