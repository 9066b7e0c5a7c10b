"""What a trade's values may be, checked at the edge by every adapter (pure), and how untrusted bytes
become values there.

The limits are the stores' own: sequences and times are 64-bit integers (times in ns UTC, so event times
must lie before 2262-04-11), prices and sizes are exact decimal strings that PostgreSQL's numeric and the
API serve unchanged, trade ids are short text. A value outside them is rejected where it enters, as
`ParseError(error_type=INVALID_VALUE)`, so that it can neither crash nor wedge a later stage.
`TradeFactory` makes every adapter's `Trade`s through those checks; `decode_json`, `decode_typed` and
`convert_typed` turn any decoding failure into the `ParseError` the frame contract names.

Venues that send prices as JSON numbers (Kraken) are decoded into `msgspec.Raw` and read with
`json_number_text`: the digits exactly as sent, never through a binary float.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Final, TypeVar

import msgspec

from collectors.adapter import INVALID_VALUE, MALFORMED_JSON, OVERSIZED, UNEXPECTED_SCHEMA, UNKNOWN_SYMBOL
from core.errors import ParseError
from core.types import INT64_MAX, MAX_DECIMAL_CHARS, MAX_TRADE_ID_CHARS, Side, Trade

T = TypeVar("T")

NS_PER_MS: Final = 1_000_000
NS_PER_US: Final = 1_000
MAX_TIME_NS: Final = INT64_MAX  # the latest ns timestamp a 64-bit store column holds (2262-04-11)
MAX_TIME_MS: Final = MAX_TIME_NS // NS_PER_MS
DECIMAL_CACHE_SIZE: Final = 1 << 16

# What decoding untrusted bytes can raise besides msgspec.DecodeError: invalid UTF-8 inside a string and
# nesting deeper than the decoder's recursion limit. Every adapter treats them as malformed frames.
DECODE_ERRORS: Final = (msgspec.DecodeError, UnicodeError, RecursionError)

# ASCII digits only and nothing after the zone (`\Z`: `$` would also accept a trailing newline).
_ISO_TIME: Final = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]00:?00)?\Z", re.ASCII
)
_ANY: Final = msgspec.json.Decoder()
_NUMBER_START: Final = frozenset(b"-0123456789")


def is_positive_decimal(text: str) -> bool:
    """True for a plain positive decimal string such as '0.00150000' (digits and at most one point; no
    sign, exponent, NaN or inf; at most MAX_DECIMAL_CHARS characters). Positive: a digit other than 0
    (read from the text: a float conversion costs more than the rest of the check together)."""
    if len(text) > MAX_DECIMAL_CHARS:
        return False
    digits = text.replace(".", "", 1)
    return digits.isascii() and digits.isdigit() and digits.lstrip("0") != ""


def is_sequence(value: int) -> bool:
    """A per-symbol sequence number (or integer trade id) the 64-bit stores can hold."""
    return 0 <= value <= INT64_MAX


def is_trade_id(text: str) -> bool:
    """A venue trade id: non-empty printable ASCII of at most MAX_TRADE_ID_CHARS characters."""
    return 0 < len(text) <= MAX_TRADE_ID_CHARS and text.isascii() and text.isprintable()


def uint_text(text: str) -> int | None:
    """The integer a string of ASCII digits spells ('000123' -> 123; at most MAX_TRADE_ID_CHARS digits),
    None when it is not one or exceeds INT64_MAX. Stricter than int(), which takes signs, spaces,
    underscores and non-ASCII digits."""
    if not (0 < len(text) <= MAX_TRADE_ID_CHARS and text.isdigit() and text.isascii()):
        return None
    value = int(text)
    return value if value <= INT64_MAX else None


def ms_text_to_ns(text: str) -> int:
    """Milliseconds since the epoch written as a decimal string ('1630048897897') -> ns; 0 (not a valid
    event time) when it is not one or lies out of the stores' range."""
    ms = uint_text(text)
    return 0 if ms is None else ms_to_ns(ms)


def ms_to_ns(ms: int) -> int:
    """Milliseconds since the epoch -> ns; 0 (not a valid event time) when out of the stores' range."""
    return ms * NS_PER_MS if 0 < ms <= MAX_TIME_MS else 0


def seconds_text_to_ns(text: str, resolution_ns: int = NS_PER_US) -> int:
    """Seconds since the epoch as decimal text ('1688669597.8277369') -> ns, rounded to the nearest
    `resolution_ns` (half up); 0 when it is not such text or lies out of the stores' range. Read from the
    text, not a float: a venue that keeps microseconds but prints its times as binary floats writes digits
    beyond them (…597.8277369 is the trade of …597.827737), and a float would lose the microseconds."""
    whole, _, fraction = text.partition(".")
    digits = whole + fraction
    if not (whole and len(text) <= MAX_DECIMAL_CHARS and digits.isdigit() and digits.isascii()):
        return 0
    scale = 10 ** len(fraction) * resolution_ns
    ns = (2 * int(digits) * 1_000_000_000 + scale) // (2 * scale) * resolution_ns
    return ns if 0 < ns <= MAX_TIME_NS else 0


def iso_to_ns(text: str) -> int:
    """An ISO-8601 / RFC 3339 UTC time ('2014-11-07T08:19:27.028459Z', up to 9 fractional digits) ->
    ns since the epoch; 0 when it is not one or lies outside the stores' range. datetime keeps only
    microseconds, so the fraction is read here."""
    match = _ISO_TIME.match(text)
    if match is None:
        return 0
    year, month, day, hour, minute, second, fraction, _ = match.groups()
    try:
        days = _days_from_civil(int(year), int(month), int(day))
    except ValueError:
        return 0
    if int(hour) > 23 or int(minute) > 59 or int(second) > 60:
        return 0
    seconds = days * 86400 + int(hour) * 3600 + int(minute) * 60 + int(second)
    ns = seconds * 1_000_000_000 + (int(fraction.ljust(9, "0")) if fraction else 0)
    return ns if 0 < ns <= MAX_TIME_NS else 0


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (ValueError for an impossible date)."""
    if not (1 <= month <= 12 and 1 <= day <= _month_days(year, month)):
        raise ValueError("not a date")
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _month_days(year: int, month: int) -> int:
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return 29 if leap else 28
    return 30 if month in (4, 6, 9, 11) else 31


class DecimalCache:
    """Validated decimal strings, remembered: prices and sizes repeat, so most checks are one set lookup.
    Bounded: cleared when it reaches DECIMAL_CACHE_SIZE entries."""

    __slots__ = ("valid",)

    def __init__(self) -> None:
        self.valid: set[str] = set()

    def admit(self, text: str) -> bool:
        """True (and remembered) when `text` is a positive decimal string. Callers look in `valid` first
        (the hot path inlines that lookup), so this validates without looking again."""
        if not is_positive_decimal(text):
            return False
        if len(self.valid) >= DECIMAL_CACHE_SIZE:
            self.valid.clear()
        self.valid.add(text)
        return True


def short_text(value: object, limit: int = 200) -> str:
    """An untrusted decoded value for an error message: a string cut to `limit`, else its type name
    (printing a deeply nested or huge value could itself fail)."""
    return value[:limit] if isinstance(value, str) else type(value).__name__


def reject_oversized(frame: bytes | str, limit: int) -> None:
    """ParseError(OVERSIZED) for a frame longer than `limit` (bytes, or characters of a str frame)."""
    if len(frame) > limit:
        raise ParseError(f"frame of {len(frame)} bytes", error_type=OVERSIZED, raw=frame[:512])


def json_number_text(raw: msgspec.Raw, frame: bytes | str) -> str:
    """The text of a JSON number exactly as sent ('0.10000000', '30000'), from the value decoded as
    `msgspec.Raw`: no float round trip, so no digit is lost or added. An exponent form ('1E-8') is written
    out as the same value in plain digits ('0.00000001'), the form prices are stored in (a value whose
    plain form would be too long is left as sent, for the decimal check to refuse). ParseError
    (UNEXPECTED_SCHEMA) when the value is not a number (a string, null, an object...); whether the number
    is a valid price is the TradeFactory's check (a sign fails it)."""
    text = bytes(raw)
    if not text or text[0] not in _NUMBER_START:
        detail = f"expected a JSON number, got {text[:40]!r}"
        raise ParseError(detail, error_type=UNEXPECTED_SCHEMA, raw=frame)
    number = text.decode("ascii")
    if "e" in number or "E" in number:
        return _plain_decimal(number)
    return number


def _plain_decimal(number: str) -> str:
    """'1.5E-7' -> '0.00000015' exactly (Decimal, not float); unchanged when the plain form would exceed
    MAX_DECIMAL_CHARS (writing out 1e999999999 would take a gigabyte)."""
    value = Decimal(number)
    if not -MAX_DECIMAL_CHARS < value.adjusted() < MAX_DECIMAL_CHARS:
        return number
    return format(value, "f")


def decode_json(frame: bytes | str) -> Any:
    """Any JSON value (the slow path for frames that are not trades); ParseError(MALFORMED_JSON) for
    everything DECODE_ERRORS covers."""
    try:
        return _ANY.decode(frame)
    except DECODE_ERRORS as exc:
        raise ParseError(f"not JSON: {exc}", error_type=MALFORMED_JSON, raw=frame) from None


def decode_object(frame: bytes | str) -> dict[str, Any]:
    """A JSON object (the slow path for frames that are not trades); ParseError MALFORMED_JSON as in
    `decode_json`, UNEXPECTED_SCHEMA for any other JSON value."""
    message = decode_json(frame)
    if not isinstance(message, dict):
        raise ParseError("frame is not a JSON object", error_type=UNEXPECTED_SCHEMA, raw=frame)
    return message


def decode_or_none(decoder: msgspec.json.Decoder[T], data: bytes | str) -> T | None:
    """`data` as the decoder's type, None when it is not one (anything DECODE_ERRORS covers): the fast
    path of a frame that falls back to a slower reading, or an answer that may not be the venue's."""
    try:
        return decoder.decode(data)
    except DECODE_ERRORS:
        return None


def decode_typed(decoder: msgspec.json.Decoder[T], body: bytes | str, what: str) -> T:
    """A REST body of the decoder's type; ParseError(UNEXPECTED_SCHEMA) when it is not one."""
    try:
        return decoder.decode(body)
    except DECODE_ERRORS as exc:
        raise ParseError(f"bad {what}: {exc}", error_type=UNEXPECTED_SCHEMA, raw=body) from None


def convert_typed(obj: Any, kind: type[T], frame: bytes | str, what: str) -> T:
    """A generically decoded message converted to `kind`; ParseError(UNEXPECTED_SCHEMA) when it does
    not fit (how a trade message that failed the typed hot-path decode is reported)."""
    try:
        return msgspec.convert(obj, kind)
    except msgspec.ValidationError as exc:
        raise ParseError(f"bad {what}: {exc}", error_type=UNEXPECTED_SCHEMA, raw=frame) from None


class TradeFactory:
    """Makes one venue's `Trade`s from its raw fields after checking them: the symbol must be listed
    (else UNKNOWN_SYMBOL); the id, for a `sequenced` venue (SequenceKind.CONTIGUOUS), a sequence the
    stores hold, else a short printable text; prices and sizes positive decimals; the event time (ns)
    non-zero (the converters above return 0 for what is out of range); else INVALID_VALUE. Validated
    decimals are remembered (`DecimalCache`), so the hot path costs a dict lookup and two set lookups.
    `canonical` maps raw -> canonical symbol (SymbolDirectory.canonical)."""

    __slots__ = ("_admit", "_canonical", "_ident", "_valid", "exchange")

    @property
    def admit_decimal(self) -> Callable[[str], bool]:
        """The check that admits a decimal string into valid_decimals (True) or refuses it (False)."""
        return self._admit

    @property
    def valid_decimals(self) -> set[str]:
        """The decimal strings already validated (read-only use: a hot path may skip the factory for
        values in it)."""
        return self._valid

    def __init__(self, exchange: str, canonical: Mapping[str, str], sequenced: bool = True) -> None:
        decimals = DecimalCache()
        self.exchange = exchange
        self._canonical = canonical
        self._valid = decimals.valid
        self._admit = decimals.admit
        self._ident = _numbered_id if sequenced else _text_id

    def make(
        self,
        raw_symbol: str,
        trade_id: int | str,
        price: str,
        quantity: str,
        side: Side,
        ts_event: int,
        ts_recv: int,
        backfilled: bool = False,
    ) -> Trade:
        """A checked trade. A sequenced venue's id is also its sequence: a JSON integer, or a string of
        ASCII digits that stays the trade id exactly as sent ('000123' keeps its zeros, sequence 123).
        Another venue's id is kept as the text sent (a UUID, a numeric string...), sequence None."""
        sequence, text, valid_id = self._ident(trade_id)
        symbol = self._canonical.get(raw_symbol)
        if symbol is None:
            raise ParseError(f"unknown symbol {raw_symbol[:80]!r}", error_type=UNKNOWN_SYMBOL, raw=raw_symbol)
        valid = self._valid
        if (
            not valid_id
            or not ts_event
            or (price not in valid and not self._admit(price))
            or (quantity not in valid and not self._admit(quantity))
        ):
            detail = f"{raw_symbol} id={text[:80]!r} price={price[:80]!r} qty={quantity[:80]!r} ns={ts_event}"
            raise ParseError("invalid trade values", error_type=INVALID_VALUE, raw=detail)
        return Trade(
            self.exchange,
            symbol,
            raw_symbol,
            text,
            sequence,
            price,
            quantity,
            side,
            ts_event,
            ts_recv,
            backfilled,
        )


def _numbered_id(trade_id: int | str) -> tuple[int | None, str, bool]:
    """(sequence, text, valid) of a venue id that is a number; not valid when it is not one the stores
    hold. A string keeps its text as sent; an int is written out only when in range."""
    if isinstance(trade_id, int):
        return (trade_id, str(trade_id), True) if is_sequence(trade_id) else (None, "", False)
    sequence = uint_text(trade_id)
    return sequence, trade_id, sequence is not None


def _text_id(trade_id: int | str) -> tuple[int | None, str, bool]:
    """(None, text, valid) of the id of a venue without a sequence: text as sent (`is_trade_id`)."""
    if isinstance(trade_id, int):
        return (None, str(trade_id), True) if is_sequence(trade_id) else (None, "", False)
    return None, trade_id, is_trade_id(trade_id)
