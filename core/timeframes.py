"""Bar timeframes: parsing '1m'/'4h'/'1d' and bucketing event times (integer ns, UTC-aligned)."""

from __future__ import annotations

import re

from core.errors import ConfigError

NS_PER_MS = 1_000_000
NS_PER_SECOND = 1_000_000_000
NS_PER_MINUTE = 60 * NS_PER_SECOND
_UNIT_NS = {
    "s": NS_PER_SECOND,
    "m": 60 * NS_PER_SECOND,
    "h": 3600 * NS_PER_SECOND,
    "d": 86400 * NS_PER_SECOND,
}
_PATTERN = re.compile(r"^([1-9][0-9]*)([smhd])$")

DEFAULT_TIMEFRAMES: tuple[str, ...] = ("1m", "5m", "15m", "1h", "4h", "1d")


def timeframe_ns(timeframe: str) -> int:
    """Length of a timeframe such as '15m' in nanoseconds; ConfigError for anything else."""
    match = _PATTERN.match(timeframe)
    if match is None:
        raise ConfigError(f"invalid timeframe {timeframe!r}: expected <n><s|m|h|d>, e.g. 1m, 4h, 1d")
    length = int(match.group(1)) * _UNIT_NS[match.group(2)]
    if 86400 * NS_PER_SECOND % length != 0 and length % (86400 * NS_PER_SECOND) != 0:
        raise ConfigError(f"invalid timeframe {timeframe!r}: must divide a day evenly")
    return length


def bucket_start(ts_ns: int, length_ns: int) -> int:
    """Start of the UTC-aligned bucket of `length_ns` that contains `ts_ns`."""
    return ts_ns - ts_ns % length_ns


def parse_timeframes(text: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    items = [t.strip() for t in text.split(",")] if isinstance(text, str) else list(text)
    items = [t for t in items if t]
    if not items:
        raise ConfigError("no timeframes given")
    for item in items:
        timeframe_ns(item)
    return tuple(sorted(set(items), key=timeframe_ns))
