"""Wire encoding of bus entries and cached bars: msgpack through msgspec, typed on decode.

A bus entry is a list[Trade] (Trade is an array-like Struct, so a trade is a compact msgpack array) or a
list[CoverageEvent]; a cached or published bar is one ClosedBar, a feed status one FeedStatus, an
instrument on the feed board one SymbolInfo.
Undecodable bytes raise core.errors.ParseError.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from core.errors import ParseError
from core.types import (
    ClosedBar,
    CoverageEvent,
    DeadLetter,
    DeadLetterRecord,
    FeedStatus,
    ResumePoint,
    SymbolInfo,
    Trade,
    is_plain_decimal,
)

_encoder = msgspec.msgpack.Encoder()
_trades_decoder = msgspec.msgpack.Decoder(list[Trade])
_trade_decoder = msgspec.msgpack.Decoder(Trade)
_raw_list_decoder = msgspec.msgpack.Decoder(list[msgspec.Raw])
_bar_decoder = msgspec.msgpack.Decoder(ClosedBar)
_feed_decoder = msgspec.msgpack.Decoder(FeedStatus)
_instrument_decoder = msgspec.msgpack.Decoder(SymbolInfo)
_events_decoder = msgspec.msgpack.Decoder(list[CoverageEvent])
_resume_decoder = msgspec.msgpack.Decoder(ResumePoint)
_dead_letter_decoder = msgspec.msgpack.Decoder(DeadLetterRecord)


def encode_trades(trades: Sequence[Trade]) -> bytes:
    return _encoder.encode(trades)


_PLAIN_CACHE_SIZE = 1 << 16
_plain_seen: set[str] = set()  # decimal strings already found plain: prices and sizes repeat


def _plain(text: str) -> bool:
    if text in _plain_seen:
        return True
    if not is_plain_decimal(text):
        return False
    if len(_plain_seen) >= _PLAIN_CACHE_SIZE:
        _plain_seen.clear()
    _plain_seen.add(text)
    return True


def _bad_value(trade: Trade) -> str | None:
    """Why a decoded trade cannot be taken (its price or quantity is not a plain decimal), else None."""
    if _plain(trade.price) and _plain(trade.quantity):
        return None
    return f"price {trade.price[:40]!r} or quantity {trade.quantity[:40]!r} is not a plain decimal"


def decode_trades(data: bytes) -> list[Trade]:
    try:
        trades = _trades_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise ParseError(f"bad trades entry: {exc}", error_type="bus_entry", raw=data[:200]) from exc
    seen = _plain_seen
    for trade in trades:
        if trade.price in seen and trade.quantity in seen:
            continue  # the common case, without a call: values seen before
        why = _bad_value(trade)
        if why is not None:
            raise ParseError(f"bad trades entry: {why}", error_type="bus_entry", raw=data[:200])
    return trades


def decode_trades_apart(data: bytes) -> tuple[list[Trade], list[tuple[bytes, str]]]:
    """An entry that does not decode as a whole, trade by trade: the trades that decode, and the raw
    bytes of each one that does not with why (ParseError when it is not even a list)."""
    try:
        items = _raw_list_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise ParseError(f"bad trades entry: {exc}", error_type="bus_entry", raw=data[:200]) from exc
    good: list[Trade] = []
    bad: list[tuple[bytes, str]] = []
    for item in items:
        try:
            trade = _trade_decoder.decode(item)
        except msgspec.DecodeError as exc:
            bad.append((bytes(item), str(exc)))
            continue
        why = _bad_value(trade)
        if why is None:
            good.append(trade)
        else:
            bad.append((bytes(item), why))
    return good, bad


def encode_events(events: Sequence[CoverageEvent]) -> bytes:
    return _encoder.encode(events)


def decode_events(data: bytes) -> list[CoverageEvent]:
    try:
        return _events_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise ParseError(f"bad coverage entry: {exc}", error_type="bus_entry", raw=data[:200]) from exc


def encode_bar(closed: ClosedBar) -> bytes:
    return _encoder.encode(closed)


def decode_bar(data: bytes) -> ClosedBar:
    try:
        return _bar_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise ParseError(f"bad bar value: {exc}", error_type="cache_value", raw=data[:200]) from exc


def encode_feed(status: FeedStatus) -> bytes:
    return _encoder.encode(status)


def decode_feed(data: bytes) -> FeedStatus:
    try:
        return _feed_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise ParseError(f"bad feed status: {exc}", error_type="cache_value", raw=data[:200]) from exc


def encode_instrument(info: SymbolInfo) -> bytes:
    """The common fields only: a venue's subclass (its aliases, REST name) stays in its adapter."""
    return _encoder.encode(SymbolInfo(info.exchange, info.symbol, info.raw_symbol, info.base, info.quote))


def decode_instrument(data: bytes) -> SymbolInfo:
    try:
        return _instrument_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise ParseError(f"bad instrument: {exc}", error_type="cache_value", raw=data[:200]) from exc


def encode_resume(point: ResumePoint) -> bytes:
    return _encoder.encode(point)


def decode_resume(data: bytes) -> ResumePoint:
    try:
        return _resume_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise ParseError(f"bad resume point: {exc}", error_type="cache_value", raw=data[:200]) from exc


def encode_dead_letter(letter: DeadLetter) -> bytes:
    return _encoder.encode(letter)


def decode_dead_letter(data: bytes) -> DeadLetterRecord:
    return _dead_letter_decoder.decode(data)
