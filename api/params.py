"""Parsing and checking of query parameters, shared by the HTTP routes and the WebSocket endpoint.

Each function raises `InvalidParameter` naming the parameter and saying why. Times come in as ISO-8601
(timezone-less means UTC) or epoch milliseconds and leave as integer nanoseconds UTC, within what the
stores hold: 64-bit nanoseconds since 1970, so 1970-01-01T00:00:00Z to 2262-04-11T23:47:16.854Z.

The `*_PATTERN`s are what the OpenAPI document declares: every value matching one is accepted here
syntactically (the server may accept more, e.g. any case or surrounding blanks), so a client that
validates against the document is never refused for the form of a value, only for its meaning (an
unknown symbol, a timeframe that does not divide a day, a time out of range).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from api.errors import InvalidParameter
from core.errors import ConfigError
from core.timeframes import NS_PER_MS, timeframe_ns

EXCHANGE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$"
SYMBOL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9/_.-]{0,31}$"
TIMEFRAME_PATTERN = r"^[1-9][0-9]{0,5}[smhd]$"
TIME_PATTERN = (
    r"^([0-9]{1,13}|[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"(T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}:[0-9]{2})?)?)$"
)
MAX_TIME_NS = 2**63 - 1  # the stores keep times as signed 64-bit nanoseconds
_MAX_MS = MAX_TIME_NS // NS_PER_MS  # 2262-04-11T23:47:16.854Z
_EXCHANGE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,31}$")
_EPOCH_MS = re.compile(r"^-?[0-9]{1,16}$")
# A "+hh:mm" offset typed unencoded into a URL arrives as " hh:mm".
_SPACED_OFFSET = re.compile(r" ([0-9]{2}(:?[0-9]{2})?)$")
_MAX_ECHO = 40
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _echo(value: str) -> str:
    return repr(value if len(value) <= _MAX_ECHO else value[:_MAX_ECHO] + "...")


def parse_exchange(value: str) -> str:
    name = value.strip().lower()
    if not _EXCHANGE.match(name):
        raise InvalidParameter(
            "exchange", f"invalid exchange name {_echo(value)}: expected a lowercase exchange name"
        )
    return name


def parse_timeframe(value: str) -> str:
    try:
        timeframe_ns(value)
    except ConfigError as exc:
        raise InvalidParameter("timeframe", str(exc)) from None
    return value


def parse_limit(value: int | None, *, default: int, maximum: int) -> int:
    if value is None:
        return default
    if not 1 <= value <= maximum:
        raise InvalidParameter("limit", f"must be between 1 and {maximum} (got {value})")
    return value


def parse_time(name: str, value: str | None) -> int | None:
    """ISO-8601 or epoch milliseconds -> ns UTC; None stays None."""
    if value is None:
        return None
    text = value.strip()
    ms = int(text) if _EPOCH_MS.match(text) else _iso_to_ms(name, _SPACED_OFFSET.sub(r"+\1", text))
    if not 0 <= ms <= _MAX_MS:
        raise InvalidParameter(
            name, f"{_echo(value)} is outside {format_time(0)}..{format_time(_MAX_MS * NS_PER_MS)}"
        )
    return ms * NS_PER_MS


def _iso_to_ms(name: str, text: str) -> int:
    try:
        moment = datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        raise InvalidParameter(
            name, f"invalid time {_echo(text)}: expected ISO-8601 (2024-01-01T00:00:00Z) or epoch ms"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _EPOCH
    return (delta.days * 86_400_000) + (delta.seconds * 1000) + delta.microseconds // 1000


def parse_range(start: str | None, end: str | None) -> tuple[int | None, int | None]:
    """[start, end) in ns; start must come before end when both are given."""
    start_ns, end_ns = parse_time("start", start), parse_time("end", end)
    if start_ns is not None and end_ns is not None and start_ns >= end_ns:
        raise InvalidParameter("start", f"must be before end (start={start}, end={end})")
    return start_ns, end_ns


def format_time(ns: int) -> str:
    """Integer ns UTC -> ISO-8601 UTC with millisecond precision, e.g. 2024-01-01T00:00:00.000Z."""
    moment = _EPOCH + timedelta(milliseconds=ns // NS_PER_MS)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
