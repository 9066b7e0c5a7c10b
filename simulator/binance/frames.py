"""Binance Spot websocket payloads.

Event payloads are built with f-strings rather than a JSON encoder: field order and types are exactly
Binance's, and the price/quantity strings are inserted unchanged.
"""

from __future__ import annotations

from simulator.trades import MarketTrade


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
