"""Exact decimal arithmetic for bars, on integers (pure).

A venue's decimal string ("0.00150000") is read once into its exact integer `units` at `scale` decimals
(150000 at 8); prices also keep their float value, for comparisons and indicators. Sums of quantities and
of price x quantity are kept as such integers, so a bar's volumes are exact; this costs a fraction of
what Python's Decimal would. Strings repeat (prices on a tick grid, common lot sizes), so reads are
cached, in bounded caches.

Only plain decimals are read: ASCII digits with at most one '.', no sign, exponent, spaces, '_', NaN or
inf (ValueError otherwise), which is what the collectors admit.
"""

from __future__ import annotations

from typing import Final

import msgspec

Price = tuple[float, int, int]
"""(value, units, scale): value == units / 10**scale, the nearest float."""

Size = tuple[int, int]
"""(units, scale)."""

CACHE_SIZE: Final = 1 << 16
# scales: at most 40 characters a value, so a quote volume has fewer than 80 decimals
POW10: Final[tuple[int, ...]] = tuple(10**k for k in range(100))
_EXACT_POWERS: Final = 23  # 10**k is exact as a float for k < 23
_EXACT_FLOAT: Final = 1 << 53
_EXACT_ORDER_DIGITS: Final = 15  # decimals of at most 15 digits: distinct ones are distinct floats, in order
_MAX_WIDTH: Final = 40
_INTS: Final = msgspec.json.Decoder(list[int])


def read_size(text: str) -> Size:
    """'0.00150000' -> (150000, 8); '30000' -> (30000, 0). ValueError for anything but a plain decimal."""
    digits = text.replace(".", "", 1)
    if not (digits.isdigit() and digits.isascii()):
        raise ValueError(f"not a plain decimal: {text!r}")
    dot = text.find(".")
    return int(digits), 0 if dot < 0 else len(text) - dot - 1


def read_price(text: str) -> Price:
    """'30000.50' -> (30000.5, 3000050, 2). ValueError for anything but a plain decimal. The float is
    units / 10**scale, one correctly rounded division of exact values, so it equals float(text)."""
    digits = text.replace(".", "", 1)
    if not (digits.isdigit() and digits.isascii()):
        raise ValueError(f"not a plain decimal: {text!r}")
    dot = text.find(".")
    scale = 0 if dot < 0 else len(text) - dot - 1
    units = int(digits)
    if units < _EXACT_FLOAT and scale < _EXACT_POWERS:
        return units / POW10[scale], units, scale
    return float(text), units, scale


def to_text(units: int, scale: int) -> str:
    """units / 10**scale as exact decimal text with `scale` decimals: (913092000, 8) -> "9.13092000"."""
    if scale == 0:
        return str(units)
    digits = str(units).rjust(scale + 1, "0")
    return f"{digits[:-scale]}.{digits[-scale:]}"


class DecimalReader:
    """read_price and read_size behind bounded caches (a cache is emptied when full). The hot path probes
    the caches itself and calls `price`/`size` only for what is not cached: `prices.get(t) or price(t)`."""

    __slots__ = ("prices", "sizes")

    def __init__(self) -> None:
        self.prices: dict[str, Price] = {}
        self.sizes: dict[str, Size] = {}

    def price(self, text: str) -> Price:
        value = read_price(text)
        if len(self.prices) >= CACHE_SIZE:
            self.prices.clear()
        self.prices[text] = value
        return value

    def size(self, text: str) -> Size:
        value = read_size(text)
        if len(self.sizes) >= CACHE_SIZE:
            self.sizes.clear()
        self.sizes[text] = value
        return value


def ratio(numerator: str, denominator: str) -> float:
    """numerator / denominator of two plain decimals, correctly rounded (no float error before the
    division). ZeroDivisionError for a zero denominator."""
    top, top_scale = read_size(numerator)
    bottom, bottom_scale = read_size(denominator)
    return (top * POW10[bottom_scale]) / (bottom * POW10[top_scale])


Column = tuple[list[int], int, int]
"""(marked, digits, scale) of many decimal strings read at once: see read_column."""


def read_column(texts: list[str]) -> Column | None:
    """(marked, digits, scale) for texts that all have the layout of the first: the same length, the
    point at the same place, at least one digit on each side of it (the common case: a venue writes a
    symbol's prices and sizes with fixed decimals). Each text has `digits` digits, `scale` of them after
    the point; marked[i] = 10**digits + its units (the leading 1 keeps leading zeros, which JSON refuses;
    marked values order as the decimals do). None when the layouts differ or a text is not a plain
    decimal: read them one by one then (read_price, read_size).

    The cost is a few C calls over the joined text and one JSON decode of integers, not Python calls per
    text. The separators and points must stand exactly at the layout's places (so every text has the
    first's length and one point, where the first has it); the rest must be ASCII digits: the decoder
    (strict JSON integers) refuses anything else (a sign, an exponent, '_', a non-ASCII digit) but
    JSON whitespace, refused before it."""
    first = texts[0]
    width = len(first)
    dot = first.find(".")
    if dot < 1 or dot >= width - 1 or width > _MAX_WIDTH:
        return None
    count = len(texts)
    joined = ",1".join(texts)  # the 1 marks the next value
    step = width + 2
    if (
        len(joined) != count * step - 2
        or joined[dot::step] != "." * count
        or joined[width::step] != "," * (count - 1)
        or " " in joined
        or not joined.isprintable()  # tab, newline, carriage return
    ):
        return None
    digits = joined.replace(".", "")
    if len(digits) != len(joined) - count:
        return None  # a point elsewhere too
    try:
        marked = _INTS.decode("[1" + digits + "]")
    except msgspec.DecodeError:
        return None
    if len(marked) != count:
        return None  # a comma elsewhere too
    return marked, width - 1, width - dot - 1


def orders_as_floats(digits: int) -> bool:
    """Whether decimals of `digits` digits compare as their floats do (and tie only when equal)."""
    return digits <= _EXACT_ORDER_DIGITS
