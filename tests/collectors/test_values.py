"""The value readers adapters share (collectors.values): exact JSON-number text, float-seconds text to
ns, and trade ids with or without a sequence."""

from __future__ import annotations

import time

import msgspec
import pytest

from collectors.adapter import INVALID_VALUE, UNEXPECTED_SCHEMA
from collectors.values import TradeFactory, iso_to_ns, json_number_text, seconds_text_to_ns
from core.errors import ParseError
from core.types import Side

_RAW = msgspec.json.Decoder(msgspec.Raw)


def _number(text: str) -> str:
    return json_number_text(_RAW.decode(text), text)


@pytest.mark.parametrize(
    "text",
    ["0.10000000", "30000", "67009.90", "12345678901234.12345678", "0.1234000", "0.30000000000000004441"],
)
def test_json_numbers_keep_the_exact_text_a_float_would_change(text: str) -> None:
    assert _number(text) == text
    assert _number(f" {text} ") == text  # whitespace around the value is not part of it
    assert repr(float(text)) != text  # the proof that a float round trip would have failed here


@pytest.mark.parametrize(
    ("text", "plain"),
    [("1e-8", "0.00000001"), ("1.5E-7", "0.00000015"), ("2E+3", "2000"), ("6.70123e4", "67012.3")],
)
def test_exponent_forms_become_the_same_value_in_plain_digits(text: str, plain: str) -> None:
    assert _number(text) == plain


def test_an_exponent_too_large_to_write_out_is_left_for_the_decimal_check() -> None:
    started = time.monotonic()
    assert _number("1e999999999") == "1e999999999"
    assert time.monotonic() - started < 0.1  # never written out digit by digit


@pytest.mark.parametrize("text", ['"0.5"', "null", "true", "[]", '{"v":1}'])
def test_values_other_than_numbers_are_schema_errors(text: str) -> None:
    with pytest.raises(ParseError) as caught:
        _number(text)
    assert caught.value.error_type == UNEXPECTED_SCHEMA


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("1688669597.8277369", 1_688_669_597_827_737_000),  # a float artefact past the microsecond
        ("1688669602.698379", 1_688_669_602_698_379_000),
        ("1709647645.5000004", 1_709_647_645_500_000_000),
        ("1709647644.5", 1_709_647_644_500_000_000),
        ("1709647646", 1_709_647_646_000_000_000),
        ("1709647646.9999995", 1_709_647_647_000_000_000),  # half a microsecond rounds up
    ],
)
def test_float_seconds_text_is_read_to_the_microsecond(text: str, ns: int) -> None:
    assert seconds_text_to_ns(text) == ns


@pytest.mark.parametrize(
    "text", ["", ".5", "-1.5", "1e9", "1.2.3", " 1", "1_000", "\u0661\u0662", "9223372036.854776", "0", "0.0"]
)
def test_what_is_not_a_time_in_seconds_reads_as_zero(text: str) -> None:
    assert seconds_text_to_ns(text) == 0


def test_a_trade_has_the_same_time_over_rest_and_websocket() -> None:
    """Kraken's REST row time (float seconds, printed with a binary-float digit) and the websocket's
    RFC 3339 timestamp of the same trade give the same ns."""
    assert seconds_text_to_ns("1688669597.8277369") == iso_to_ns("2023-07-06T18:53:17.827737Z")


def test_ids_are_sequences_only_for_sequenced_venues() -> None:
    canonical = {"BTCUSDT": "BTC-USDT"}
    numbered = TradeFactory("x", canonical, sequenced=True)
    text_ids = TradeFactory("x", canonical, sequenced=False)
    args = ("67012.30", "0.001", Side.BUY, 1_709_647_641_118_000_000, 1)
    assert numbered.make("BTCUSDT", "000123", *args).sequence == 123
    assert text_ids.make("BTCUSDT", "000123", *args).sequence is None
    uuid = "20f43950-d8dd-5b31-9112-a178eb6023af"
    kept = text_ids.make("BTCUSDT", uuid, *args)
    assert (kept.trade_id, kept.sequence) == (uuid, None)
    for bad, factory in (("", text_ids), ("7" * 65, text_ids), ("a\x01b", text_ids), (uuid, numbered)):
        with pytest.raises(ParseError) as caught:
            factory.make("BTCUSDT", bad, *args)
        assert caught.value.error_type == INVALID_VALUE
