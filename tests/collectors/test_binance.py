"""The Binance adapter on hand-written frames: trades, control frames, and every kind of bad input."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collectors.adapter import PARSE_ERROR_TYPES, Gap, ReconnectRequested, RestRequest
from collectors.exchanges.binance import BinanceAdapter, BinanceDeliveryAdapter
from collectors.values import is_positive_decimal
from core.errors import ParseError
from core.types import Side, SymbolInfo, Trade

SYMBOLS = [
    SymbolInfo("binance", "BTC-USDT", "BTCUSDT", "BTC", "USDT"),
    SymbolInfo("binance", "ETH-BTC", "ETHBTC", "ETH", "BTC"),
]
TS_RECV = 1_672_515_782_200_000_000


def trade_event(**changes: Any) -> dict[str, Any]:
    event = {
        "e": "trade",
        "E": 1672515782136,
        "s": "BTCUSDT",
        "t": 3123456789,
        "p": "16543.21000000",
        "q": "0.00150000",
        "T": 1672515782135,
        "m": False,
        "M": True,
    }
    event.update(changes)
    return event


def combined(data: Any, stream: str = "btcusdt@trade") -> bytes:
    return json.dumps({"stream": stream, "data": data}).encode()


@pytest.fixture
def adapter() -> BinanceAdapter:
    return BinanceAdapter(SYMBOLS)


def test_combined_trade_frame(adapter: BinanceAdapter) -> None:
    [trade] = adapter.parse(combined(trade_event()), TS_RECV)
    assert trade == Trade(
        "binance",
        "BTC-USDT",
        "BTCUSDT",
        "3123456789",
        3123456789,
        "16543.21000000",
        "0.00150000",
        Side.BUY,
        1672515782135 * 1_000_000,
        TS_RECV,
        False,
    )


def test_raw_trade_frame_as_text_and_buyer_maker_is_a_taker_sell(adapter: BinanceAdapter) -> None:
    [trade] = adapter.parse(json.dumps(trade_event(m=True, s="ETHBTC")), TS_RECV)
    assert trade.side is Side.SELL
    assert trade.symbol == "ETH-BTC"


def test_aggregate_trade_uses_the_aggregate_id(adapter: BinanceAdapter) -> None:
    event = {"e": "aggTrade", "E": 1, "s": "BTCUSDT", "a": 77, "p": "1.5", "q": "2", "f": 100, "l": 105}
    [trade] = adapter.parse(combined({**event, "T": 1000, "m": True}, "btcusdt@aggTrade"), TS_RECV)
    assert (trade.trade_id, trade.sequence, trade.ts_event, trade.side) == (
        "77",
        77,
        1_000_000_000,
        Side.SELL,
    )


def test_old_trade_fields_and_unknown_keys_are_tolerated(adapter: BinanceAdapter) -> None:
    [trade] = adapter.parse(combined(trade_event(b=88, a=50, extra={"x": 1})), TS_RECV)
    assert (trade.trade_id, trade.sequence) == ("3123456789", 3123456789)


@pytest.mark.parametrize(
    "frame",
    [
        b'{"result":null,"id":1}',
        b'{"result":["btcusdt@trade"],"id":"abc"}',
        combined({"e": "depthUpdate", "E": 1, "s": "BTCUSDT", "U": 1, "u": 2, "b": [], "a": []}, "x@depth"),
        combined({"e": "kline", "E": 1, "s": "BTCUSDT", "k": {}}, "btcusdt@kline_1m"),
        combined({"u": 400900217, "s": "BTCUSDT", "b": "1", "B": "2", "a": "3", "A": "4"}, "x@bookTicker"),
        combined({"lastUpdateId": 160, "bids": [], "asks": []}, "btcusdt@depth5"),
        combined([{"e": "24hrMiniTicker", "s": "BTCUSDT"}], "!miniTicker@arr"),
    ],
)
def test_control_frames_and_other_market_events_are_not_trades(adapter: BinanceAdapter, frame: bytes) -> None:
    assert adapter.parse(frame, TS_RECV) == []


@pytest.mark.parametrize(
    "frame",
    [
        b'{"e": "serverShutdown", "E": 1770123456789}',
        combined({"e": "serverShutdown", "E": 1770123456789}, "!serverShutdown"),
    ],
)
def test_server_shutdown_asks_for_a_reconnect(adapter: BinanceAdapter, frame: bytes) -> None:
    with pytest.raises(ReconnectRequested):
        adapter.parse(frame, TS_RECV)


BAD_FRAMES = [
    ("malformed_json", b'{"stream": "btcusdt@trade", "data": {"e": "trade"'),
    ("malformed_json", b"\xff\xfe not json"),
    ("malformed_json", b""),
    ("unexpected_schema", combined(trade_event(t="123"))),
    ("unexpected_schema", combined(trade_event(p=16543.21))),
    ("unexpected_schema", combined(trade_event(m="false"))),
    ("unexpected_schema", combined({k: v for k, v in trade_event().items() if k != "T"})),
    ("unexpected_schema", b"[1, 2, 3]"),
    ("unexpected_schema", b"42"),
    ("invalid_value", combined(trade_event(p="NaN"))),
    ("invalid_value", combined(trade_event(p="inf"))),
    ("invalid_value", combined(trade_event(p="-1.5"))),
    ("invalid_value", combined(trade_event(p="0.00000000"))),
    ("invalid_value", combined(trade_event(q="0"))),
    ("invalid_value", combined(trade_event(q="-0.1"))),
    ("invalid_value", combined(trade_event(p="1e5"))),
    ("invalid_value", combined(trade_event(p=" 1.5"))),
    ("invalid_value", combined(trade_event(p="1_000.5"))),
    ("invalid_value", combined(trade_event(p=""))),
    ("invalid_value", combined(trade_event(p="1.2.3"))),
    ("invalid_value", combined(trade_event(T=0))),
    ("invalid_value", combined(trade_event(t=-5))),
    ("unknown_symbol", combined(trade_event(s="DOGEUSDT"))),
    ("unexpected_event", combined({"e": "mysteryEvent", "E": 1})),
    ("unexpected_event", b'{"hello": "world"}'),
    ("exchange_error", b'{"code": 2, "msg": "Invalid request: unknown property"}'),
    ("oversized", combined(trade_event(pad="x" * 70_000))),
]


@pytest.mark.parametrize(("error_type", "frame"), BAD_FRAMES)
def test_bad_frames_raise_parse_error_with_a_bounded_label(
    adapter: BinanceAdapter, error_type: str, frame: bytes
) -> None:
    with pytest.raises(ParseError) as caught:
        adapter.parse(frame, TS_RECV)
    assert caught.value.error_type == error_type
    assert caught.value.error_type in PARSE_ERROR_TYPES
    assert caught.value.raw or not frame  # kept for the truncated log copy


def test_validated_decimals_are_remembered_but_bad_ones_never(adapter: BinanceAdapter) -> None:
    for _ in range(2):
        with pytest.raises(ParseError):
            adapter.parse(combined(trade_event(p="nan")), TS_RECV)
    assert adapter.parse(combined(trade_event(p="0.1")), TS_RECV)[0].price == "0.1"


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("1", True),
        ("0.1", True),
        ("1.", True),
        (".5", True),
        ("0.00000001", True),
        ("0", False),
        ("0.000", False),
        ("00.", False),
        (".", False),
        ("", False),
        ("٣", False),
        ("+1", False),
        ("-1", False),
        ("1e5", False),
        ("1.2.3", False),
        (" 1", False),
        ("nan", False),
        ("inf", False),
        ("9" * 40, True),
        ("9" * 41, False),
    ],
)
def test_positive_decimal(text: str, ok: bool) -> None:
    assert is_positive_decimal(text) is ok


@given(st.text(alphabet="0123456789.-+eE ", max_size=42))
def test_positive_decimal_agrees_with_decimal(text: str) -> None:
    """The check reads positivity from the digits; Decimal (exact) is the oracle for plain decimals."""
    plain = 0 < len(text) <= 40 and text.count(".") <= 1 and text.replace(".", "").isdigit()
    assert is_positive_decimal(text) is (plain and Decimal(text) > 0)


def test_combined_url_carries_every_stream(adapter: BinanceAdapter) -> None:
    url = adapter.ws_url("ws://127.0.0.1:9000/", ["BTCUSDT", "ETHBTC"])
    assert url == "ws://127.0.0.1:9000/stream?streams=btcusdt@trade/ethbtc@trade"
    assert adapter.ws_url("wss://x/stream", ["BTCUSDT"]) == "wss://x/stream?streams=btcusdt@trade"
    assert adapter.subscribe_messages(["BTCUSDT"]) == []


def test_historical_trades_rows_become_backfilled_trades(adapter: BinanceAdapter) -> None:
    gap = Gap("BTCUSDT", 28457, 28458)
    request = adapter.repair_request(gap)
    assert request is not None
    assert request.path == "/api/v3/historicalTrades"
    assert dict(request.params) == {"symbol": "BTCUSDT", "fromId": "28457", "limit": "1000"}
    body = json.dumps(
        [
            {"id": 28457, "price": "4.00000100", "qty": "12.00000000", "quoteQty": "48.000012",
             "time": 1499865549590, "isBuyerMaker": True, "isBestMatch": True},
            {"id": 28458, "price": "4.00000200", "qty": "1.00000000", "quoteQty": "4.000002",
             "time": 1499865549591, "isBuyerMaker": False, "isBestMatch": True},
        ]
    ).encode()  # fmt: skip
    page = adapter.repair_page(gap, request, body, TS_RECV)
    first, second = page.trades
    assert first == Trade(
        "binance", "BTC-USDT", "BTCUSDT", "28457", 28457, "4.00000100", "12.00000000", Side.SELL,
        1499865549590 * 1_000_000, TS_RECV, True,
    )  # fmt: skip
    assert (second.side, second.backfilled) == (Side.BUY, True)
    assert page.next is None  # the page reached the gap's last id


@pytest.mark.parametrize(
    ("body", "error_type"),
    [
        (b'{"code": -1121, "msg": "Invalid symbol."}', "unexpected_schema"),
        (b"[{", "unexpected_schema"),
        (b'[{"id": 1, "price": "NaN", "qty": "1", "time": 1, "isBuyerMaker": true}]', "invalid_value"),
    ],
)
def test_bad_backfill_bodies(adapter: BinanceAdapter, body: bytes, error_type: str) -> None:
    with pytest.raises(ParseError) as caught:
        gap = Gap("BTCUSDT", 1, 5)
        adapter.repair_page(gap, RestRequest("/api/v3/historicalTrades"), body, TS_RECV)
    assert caught.value.error_type == error_type


def test_delivery_agg_trades_backfill_and_symbols() -> None:
    info = json.dumps(
        {
            "symbols": [
                {"symbol": "BTCUSD_PERP", "baseAsset": "BTC", "quoteAsset": "USD",
                 "contractType": "PERPETUAL", "deliveryDate": 4133404800000},
                {"symbol": "BTCUSD_211231", "baseAsset": "BTC", "quoteAsset": "USD",
                 "contractType": "CURRENT_QUARTER", "deliveryDate": 1640937600000},
            ]
        }
    ).encode()  # fmt: skip
    symbols = BinanceDeliveryAdapter().parse_symbols(info)
    assert [s.symbol for s in symbols] == ["BTC-USD-PERP", "BTC-USD-211231"]
    adapter = BinanceDeliveryAdapter(symbols)
    gap = Gap("BTCUSD_PERP", 5, 10)
    request = adapter.repair_request(gap)
    assert request is not None and request.path == "/dapi/v1/aggTrades"
    rows = b'[{"a": 5, "p": "40000.1", "q": "3", "f": 9, "l": 9, "T": 1626916403852, "m": false}]'
    [trade] = adapter.repair_page(gap, request, rows, TS_RECV).trades
    assert (trade.trade_id, trade.symbol, trade.side, trade.backfilled) == (
        "5",
        "BTC-USD-PERP",
        Side.BUY,
        True,
    )


def test_spot_symbols_come_from_base_and_quote_assets() -> None:
    body = b'{"symbols": [{"symbol": "BTCFDUSD", "baseAsset": "BTC", "quoteAsset": "FDUSD", "status": "X"}]}'
    [info] = BinanceAdapter().parse_symbols(body)
    assert info == SymbolInfo("binance", "BTC-FDUSD", "BTCFDUSD", "BTC", "FDUSD")
    with pytest.raises(ParseError):
        BinanceAdapter().parse_symbols(b'{"symbols": "nope"}')
