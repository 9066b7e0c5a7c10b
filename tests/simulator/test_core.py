"""Pure pieces of the shared simulator core: cursor paging over history, the latest trade before a feed
position, derived venue fields, symbol spellings and the malformed-frame breaker."""

from __future__ import annotations

import itertools
import json
import random

import msgspec
import pytest

from core.errors import ConfigError
from simulator.derived_fields import iso_time_ms, iso_time_ns, order_sequence
from simulator.history import Recorded, SymbolHistory, TradeLog
from simulator.malformed import COMMON_KINDS, OVERSIZED_BYTES, TradeFields, malformed_frame
from simulator.symbols import split_pair, symbol_form
from simulator.trades import MarketTrade


def entry(trade_id: int, hidden: bool = False, symbol: str = "BTC-USD") -> Recorded:
    return (MarketTrade(symbol, trade_id, "1", "1", 0, False), b"", hidden)


def ids(entries: list[Recorded]) -> list[int]:
    return [e[0].trade_id for e in entries]


def test_page_is_newest_first_around_a_cursor() -> None:
    history = SymbolHistory("BTC-USD", max_len=100)
    for trade_id in [*range(10, 20), *range(30, 40)]:  # a hole between 19 and 30
        history.append(entry(trade_id))
    assert ids(history.page(after=None, before=None, limit=3)) == [39, 38, 37]
    assert ids(history.page(after=32, before=None, limit=4)) == [31, 30, 19, 18]
    assert ids(history.page(after=None, before=17, limit=4)) == [31, 30, 19, 18]
    assert ids(history.page(after=None, before=36, limit=10)) == [39, 38, 37]
    assert ids(history.page(after=33, before=18, limit=10)) == [32, 31, 30, 19]
    assert ids(history.page(after=10, before=None, limit=10)) == []
    assert ids(history.page(after=None, before=39, limit=10)) == []
    assert history.page(after=None, before=None, limit=0) == []


def test_page_never_reaches_below_the_retained_history() -> None:
    history = SymbolHistory("BTC-USD", max_len=5)
    for trade_id in range(1, 8):
        history.append(entry(trade_id))
    assert ids(history.page(after=None, before=0, limit=10)) == [7, 6, 5, 4, 3]
    assert ids(history.page(after=5, before=None, limit=10)) == [4, 3]


def test_latest_trade_before_a_feed_position_can_skip_withheld_trades() -> None:
    history, log = SymbolHistory("BTC-USD", max_len=100), TradeLog()
    entries = [entry(1), entry(5, symbol="ETH-USD"), entry(2, hidden=True), entry(3)]
    log.extend(entries)
    for recorded in entries:
        if recorded[0].symbol == "BTC-USD":
            history.append(recorded)

    def before(cursor: int, visible: bool) -> int | None:
        pending = log.first_of("BTC-USD", cursor)
        found = history.latest_below(pending.trade_id if pending else None, visible=visible)
        return found[0].trade_id if found else None

    assert [before(c, visible=False) for c in (0, 1, 2, 3, 4)] == [None, 1, 1, 2, 3]
    assert [before(c, visible=True) for c in (0, 1, 2, 3, 4)] == [None, 1, 1, 1, 3]


def test_derived_fields() -> None:
    assert iso_time_ms(1_700_000_000_010) == "2023-11-14T22:13:20.010000Z"
    assert iso_time_ns(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123456Z"
    sequences = [order_sequence(i) for i in range(1, 2000)]
    assert all(4 <= b - a <= 12 for a, b in itertools.pairwise(sequences))


def test_symbol_spellings() -> None:
    assert [split_pair(s) for s in ("btc-usd", "ETH/USDT", "sol_eur", "BTCFDUSD")] == [
        ("BTC", "USD"), ("ETH", "USDT"), ("SOL", "EUR"), ("BTC", "FDUSD"),
    ]  # fmt: skip
    assert symbol_form("-")("btcusdt") == "BTC-USDT" and symbol_form("")("btc-usd") == "BTCUSD"
    for bad in ("BTC-USD-SWAP", "-USD", "BTC USD", "XYZQQQ", ""):
        with pytest.raises(ConfigError):
            split_pair(bad)


FIELDS = TradeFields(kind="type", price="price", size="size", trade_id="id", symbol="product")
GOOD = b'{"channel":"x","data":[{"type":"trade","id":7,"product":"BTC-USD","price":"10.5","size":"2"}]}'


def test_each_malformed_kind_breaks_the_good_message_its_way() -> None:
    rng = random.Random(1)
    frames = {kind: malformed_frame(kind, GOOD, FIELDS, rng) for kind in COMMON_KINDS}
    rows = {
        kind: json.loads(payload)["data"][0]
        for kind, (payload, _) in frames.items()
        if kind not in ("invalid_json", "truncated_json", "binary_garbage", "invalid_utf8", "deeply_nested")
    }
    assert rows["price_as_number"]["price"] == 10.5 and rows["id_wrong_type"]["id"] == "7"
    assert rows["nan_price"]["price"] == "NaN" and rows["negative_quantity"]["size"] == "-2"
    assert (
        rows["unknown_symbol"]["product"] == "NOSUCHCOIN" and rows["unknown_event"]["type"] == "mysteryEvent"
    )
    assert "price" not in rows["missing_field"] and len(frames["oversized"][0]) > OVERSIZED_BYTES
    assert frames["binary_garbage"][1] == 0x2 and all(
        op == 0x1 for k, (_, op) in frames.items() if k != "binary_garbage"
    )
    for kind, error in (("invalid_json", msgspec.DecodeError), ("truncated_json", msgspec.DecodeError),
                        ("invalid_utf8", UnicodeDecodeError), ("deeply_nested", RecursionError)):  # fmt: skip
        with pytest.raises(error):
            msgspec.json.decode(frames[kind][0])
    string_id = GOOD.replace(b'"id":7', b'"id":"7"')
    assert json.loads(malformed_frame("id_wrong_type", string_id, FIELDS, rng)[0])["data"][0]["id"] == 7
