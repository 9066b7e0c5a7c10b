"""Wire encoding of bus entries and cached bars: msgpack through msgspec, typed on decode.

A bus entry is a list[Trade] (Trade is an array-like Struct, so a trade is a compact msgpack array) or a
list[CoverageEvent]; a cached or published bar is one ClosedBar, a feed status one FeedStatus.
Undecodable bytes raise core.errors.ParseError.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from core.errors import ParseError
from core.types import ClosedBar, CoverageEvent, FeedStatus, ResumePoint, Trade

_encoder = msgspec.msgpack.Encoder()
_trades_decoder = msgspec.msgpack.Decoder(list[Trade])
_bar_decoder = msgspec.msgpack.Decoder(ClosedBar)
_feed_decoder = msgspec.msgpack.Decoder(FeedStatus)
_events_decoder = msgspec.msgpack.Decoder(list[CoverageEvent])
_resume_decoder = msgspec.msgpack.Decoder(ResumePoint)


def encode_trades(trades: Sequence[Trade]) -> bytes:
    return _encoder.encode(trades)


def decode_trades(data: bytes) -> list[Trade]:
    try:
        return _trades_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise ParseError(f"bad trades entry: {exc}", error_type="bus_entry", raw=data[:200]) from exc


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


def encode_resume(point: ResumePoint) -> bytes:
    return _encoder.encode(point)


def decode_resume(data: bytes) -> ResumePoint:
    try:
        return _resume_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise ParseError(f"bad resume point: {exc}", error_type="cache_value", raw=data[:200]) from exc
