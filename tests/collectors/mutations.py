"""Random damage to frames and bodies for the contract's fuzz tests (seeded, so a failure reproduces)."""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Callable

_DIGITS = re.compile(rb"\d+")
_STRING = re.compile(rb'"[^"\\]*"')
_HUGE = (
    b"9223372036854775807",
    b"9223372036854775808",
    b"18446744073709551616",
    b"1" + b"0" * 40,
    b"9" * 400,
    b"-1",
    b"0",
    b"1e999",
    b"-0.0",
    b"1.5e-400",
)
_VALUES = (b"null", b"[]", b"{}", b"true", b"1e400", b'"\\ud800"', b'""', b'"' + b"9" * 70 + b'"', b'"pong"')
_BAD_UTF8 = (b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80", b"\xe2\x82")


def _flip(rng: random.Random, data: bytes) -> bytes:
    if not data:
        return b"\x00"
    at = rng.randrange(len(data))
    return data[:at] + bytes([data[at] ^ rng.randint(1, 255)]) + data[at + 1 :]


def _truncate(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randrange(len(data) + 1)]


def _replace_match(
    rng: random.Random, data: bytes, pattern: re.Pattern[bytes], options: tuple[bytes, ...]
) -> bytes:
    found = list(itertools.islice(pattern.finditer(data), 256))  # a frame repeated 700 times has many
    if not found:
        return data + rng.choice(options)
    match = rng.choice(found)
    return data[: match.start()] + rng.choice(options) + data[match.end() :]


def _huge_number(rng: random.Random, data: bytes) -> bytes:
    return _replace_match(rng, data, _DIGITS, _HUGE)


def _other_value(rng: random.Random, data: bytes) -> bytes:
    return _replace_match(rng, data, _STRING, _VALUES)


def _deep_nesting(rng: random.Random, data: bytes) -> bytes:
    depth = rng.choice((10, 900, 5000))
    if rng.random() < 0.5:
        return b"[" * depth + data + b"]" * depth
    at = rng.randrange(len(data) + 1)
    return data[:at] + b'{"a":' * depth + b"1" + b"}" * depth + data[at:]


def _invalid_utf8(rng: random.Random, data: bytes) -> bytes:
    at = rng.randrange(len(data) + 1)
    return data[:at] + rng.choice(_BAD_UTF8) + data[at:]


def _repeat(rng: random.Random, data: bytes) -> bytes:
    """Frames twice or thrice over (concatenated JSON), or one far over any frame limit (bounded)."""
    return data * rng.choice((2, 3, 700)) if len(data) < 10_000 else data


MUTATIONS: tuple[Callable[[random.Random, bytes], bytes], ...] = (
    _flip,
    _truncate,
    _huge_number,
    _other_value,
    _deep_nesting,
    _invalid_utf8,
    _repeat,
)


def mutate(rng: random.Random, data: bytes) -> bytes:
    """`data` after one (most often) to three random mutations."""
    for _ in range(rng.choice((1, 1, 2, 3))):
        data = rng.choice(MUTATIONS)(rng, data)
    return data
