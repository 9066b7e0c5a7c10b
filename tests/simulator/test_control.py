"""Control messages (pure): Binance's documented responses and errors."""

from __future__ import annotations

import json

from simulator.binance.control import Subscriptions, handle_control
from simulator.binance.streams import parse_stream


def reply(message: object, subs: Subscriptions) -> dict[str, object]:
    raw = message if isinstance(message, (str, bytes)) else json.dumps(message)
    return json.loads(handle_control(raw, subs))


def test_subscribe_list_unsubscribe_exact_bytes() -> None:
    subs = Subscriptions()
    sub = '{"method":"SUBSCRIBE","params":["btcusdt@trade","ethusdt@aggTrade"],"id":1}'
    assert handle_control(sub, subs) == b'{"result":null,"id":1}'
    assert handle_control('{"method":"LIST_SUBSCRIPTIONS","id":3}', subs) == (
        b'{"result":["btcusdt@trade","ethusdt@aggTrade"],"id":3}'
    )
    unsub = '{"method":"UNSUBSCRIBE","params":["btcusdt@trade"],"id":312}'
    assert handle_control(unsub, subs) == b'{"result":null,"id":312}'
    assert subs.names == ["ethusdt@aggTrade"]


def test_ids_may_be_strings_or_null() -> None:
    subs = Subscriptions()
    assert reply({"method": "LIST_SUBSCRIPTIONS", "id": "abc-123"}, subs) == {"result": [], "id": "abc-123"}
    assert reply({"method": "LIST_SUBSCRIPTIONS", "id": None}, subs) == {"result": [], "id": None}


def test_invalid_json_is_code_3_with_position() -> None:
    assert reply('{"method": "SUBSCRIBE",', Subscriptions()) == {
        "code": 3,
        "msg": "Invalid JSON: expected value at line 1 column 24",
    }
    assert reply(b"\xff\xfe", Subscriptions())["code"] == 3


def test_request_errors_are_code_2() -> None:
    subs = Subscriptions()
    missing = reply({"params": [], "id": 1}, subs)
    assert missing["code"] == 2 and str(missing["msg"]).startswith("Invalid request: missing field `method`")
    unknown = reply({"method": "SUBSCRIBEE", "params": [], "id": 1}, subs)
    assert unknown["code"] == 2
    assert str(unknown["msg"]).startswith("Invalid request: unknown variant `SUBSCRIBEE`, expected one of")
    assert reply({"method": "LIST_SUBSCRIPTIONS"}, subs) == {
        "code": 2,
        "msg": "Invalid request: request ID must be an unsigned integer",
    }
    assert reply({"method": "LIST_SUBSCRIPTIONS", "id": 1.5}, subs)["code"] == 2
    assert reply({"method": "LIST_SUBSCRIPTIONS", "id": 1, "extra": 1}, subs) == {
        "code": 2,
        "msg": "Invalid request: too many parameters",
    }
    assert reply([1, 2], subs)["code"] == 2


def test_invalid_stream_names_are_refused_without_change() -> None:
    subs = Subscriptions()
    for bad in (["BTCUSDT@trade"], ["btcusdt@nonsense"], ["@@@"], [42]):
        answer = reply({"method": "SUBSCRIBE", "params": bad, "id": 7}, subs)
        assert answer == {"code": 2, "msg": "Invalid request: invalid stream", "id": 7}
    assert len(subs) == 0
    # well-formed names of symbols nobody lists are acknowledged, like Binance does
    assert reply({"method": "SUBSCRIBE", "params": ["nosuchcoin@trade"], "id": 8}, subs) == {
        "result": None,
        "id": 8,
    }


def test_at_most_1024_streams() -> None:
    subs = Subscriptions()
    params = [f"s{i}usdt@trade" for i in range(1024)]
    assert reply({"method": "SUBSCRIBE", "params": params, "id": 1}, subs) == {"result": None, "id": 1}
    answer = reply({"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade"], "id": 2}, subs)
    assert answer["code"] == 2 and answer["id"] == 2
    assert len(subs) == 1024


def test_properties() -> None:
    subs = Subscriptions()
    assert reply({"method": "GET_PROPERTY", "params": ["combined"], "id": 2}, subs) == {
        "result": False,
        "id": 2,
    }
    assert reply({"method": "SET_PROPERTY", "params": ["combined", True], "id": 5}, subs) == {
        "result": None,
        "id": 5,
    }
    assert subs.combined is True
    assert reply({"method": "SET_PROPERTY", "params": ["combined", "yes"], "id": 6}, subs) == {
        "code": 1,
        "msg": "Invalid value type: expected Boolean",
    }
    assert reply({"method": "GET_PROPERTY", "params": ["colour"], "id": 9}, subs) == {
        "code": 0,
        "msg": "Unknown property",
        "id": 9,
    }
    assert reply({"method": "GET_PROPERTY", "params": [1], "id": 9}, subs) == {
        "code": 2,
        "msg": "Invalid request: property name must be a string",
    }


def test_stream_grammar() -> None:
    trade = parse_stream("btcusdt@trade")
    assert trade is not None and (trade.symbol, trade.kind) == ("BTCUSDT", "trade")
    for good in (
        "btcusdt@aggTrade",
        "btcusdt@kline_1m",
        "btcusdt@depth20@100ms",
        "!ticker@arr",
        "bnbbtc@bookTicker",
    ):
        assert parse_stream(good) is not None, good
    for bad in ("BTCUSDT@trade", "btcusdt@kline_7m", "btcusdt", "btcusdt@trade ", ""):
        assert parse_stream(bad) is None, bad
