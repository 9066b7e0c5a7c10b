"""Malformed frames for the `malformed` fault, made by breaking a good trade message in named ways.

A venue names the fields of its trade message (`TradeFields`) and the kinds it sends; the message itself is
the one a connection would receive for a real trade (the symbol's latest visible one, so a collector that
wrongly accepted a broken frame would see a duplicate id rather than invent a gap). Kinds:

- invalid_json, truncated_json: not JSON at all (a corrupted tail; the first half of the message).
- price_as_number (a string price sent as a number), price_as_string (a number price sent as a string:
  venues whose prices are JSON numbers use this one instead), id_wrong_type (an int id sent as a string,
  a string id as a number), nan_price ("NaN"),
  negative_quantity, unknown_symbol, unknown_event (the type or channel field renamed), missing_field (no
  price): valid JSON with wrong content.
- oversized: the trade padded to more than 2 MiB.
- binary_garbage: 64 random bytes in a binary frame.
- invalid_utf8: bytes that are not UTF-8 inside the symbol string of a TEXT frame (a client that validates
  UTF-8 closes with 1007; one that hands bytes to its JSON decoder gets a decoding error).
- deeply_nested: the price nested 10,000 arrays deep (recursive decoders hit their recursion limit).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import msgspec

from simulator.framing import OP_BINARY, OP_TEXT

OVERSIZED_BYTES = 2 * 1024 * 1024
NESTING_DEPTH = 10_000
_UTF8_SENTINEL = "INVALID-UTF8-SENTINEL"

COMMON_KINDS: tuple[str, ...] = (
    "invalid_json",
    "truncated_json",
    "price_as_number",
    "id_wrong_type",
    "nan_price",
    "negative_quantity",
    "unknown_symbol",
    "unknown_event",
    "missing_field",
    "oversized",
    "binary_garbage",
    "invalid_utf8",
    "deeply_nested",
)
NUMERIC_PRICE_KINDS: tuple[str, ...] = tuple(
    "price_as_string" if kind == "price_as_number" else kind for kind in COMMON_KINDS
)
"""The kinds of a venue whose prices and sizes are JSON numbers."""
UNDECODABLE_KINDS = frozenset(("invalid_json", "truncated_json", "invalid_utf8", "deeply_nested"))


@dataclass(frozen=True)
class TradeFields:
    """Field names of a venue's trade message. `kind` names the message type or channel, wherever it is
    in the message; the others are found in the object that holds `price`. `unknown_symbol` is what the
    unknown_symbol kind puts in the symbol field."""

    kind: str
    price: str
    size: str
    trade_id: str
    symbol: str
    unknown_symbol: str = "NOSUCHCOIN"


def malformed_frame(kind: str, good: bytes, fields: TradeFields, rng: random.Random) -> tuple[bytes, int]:
    """The payload and opcode of one broken frame of `kind`, made from the good message `good`."""
    if kind == "invalid_json":
        return good[: max(1, len(good) // 3)] + b",,}}{not json", OP_TEXT
    if kind == "truncated_json":
        return good[: len(good) // 2], OP_TEXT
    if kind == "binary_garbage":
        return rng.randbytes(64), OP_BINARY
    message = msgspec.json.decode(good)
    head, row = holder_of(message, fields.kind), holder_of(message, fields.price)
    if row is None:
        raise ValueError(f"the message has no {fields.price!r} field to break")
    if kind == "unknown_event":
        (head if head is not None else row)[fields.kind] = "mysteryEvent"
    elif kind == "invalid_utf8":
        row[fields.symbol] = _UTF8_SENTINEL
        encoded = msgspec.json.encode(message)
        return encoded.replace(_UTF8_SENTINEL.encode(), b"BTC\xc3\x28USD", 1), OP_TEXT
    else:
        _break_row(kind, row, fields)
    return msgspec.json.encode(message), OP_TEXT


def _break_row(kind: str, row: dict[str, Any], fields: TradeFields) -> None:
    price, size, trade_id = fields.price, fields.size, fields.trade_id
    if kind == "price_as_number":
        row[price] = msgspec.Raw(str(row[price]).encode())
    elif kind == "price_as_string":
        row[price] = str(row[price])
    elif kind == "id_wrong_type":
        value = row[trade_id]
        row[trade_id] = str(value) if isinstance(value, int) else msgspec.Raw(_digits(value))
    elif kind == "nan_price":
        row[price] = "NaN"
    elif kind == "negative_quantity":
        value = row[size]
        negative = f"-{value}"
        row[size] = negative if isinstance(value, str) else msgspec.Raw(negative.encode())
    elif kind == "unknown_symbol":
        row[fields.symbol] = fields.unknown_symbol
    elif kind == "missing_field":
        del row[price]
    elif kind == "oversized":
        row["pad"] = "x" * OVERSIZED_BYTES
    elif kind == "deeply_nested":
        row[price] = msgspec.Raw(b"[" * NESTING_DEPTH + b"1" + b"]" * NESTING_DEPTH)
    else:
        raise ValueError(f"unknown malformed kind {kind!r}")


def _digits(value: object) -> bytes:
    text = str(value)
    return text.encode() if text.isdigit() else b"0"


def holder_of(node: object, key: str) -> dict[str, Any] | None:
    """The first object (depth first) in decoded JSON `node` that has `key` (tests inspect frames with it)."""
    if isinstance(node, dict):
        if key in node:
            return node
        children: list[Any] = list(node.values())
    elif isinstance(node, list):
        children = node
    else:
        return None
    for child in children:
        found = holder_of(child, key)
        if found is not None:
            return found
    return None
