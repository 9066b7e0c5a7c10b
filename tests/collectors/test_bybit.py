"""Bybit specifics the fixture folder cannot show: the largest push the venue documents fits the frame
limit (a refused Bybit frame could not be repaired: its trades have no sequence)."""

from __future__ import annotations

import json

from tests.collectors import venue_fixtures as vf


def test_a_full_push_of_1024_long_trades_is_parsed_not_refused() -> None:
    adapter = vf.adapter("bybit")
    trade = {
        "T": 1709647641118, "s": "1000PEPEUSDT", "S": "Sell", "v": "123456789.123456", "p": "0.0000084321",
        "i": "20f43950-d8dd-5b31-9112-a178eb6023af", "BT": False, "RPI": False, "seq": 56131412001,
        "L": "ZeroMinusTick",
    }  # fmt: skip
    push = {
        "topic": "publicTrade.1000PEPEUSDT",
        "type": "snapshot",
        "ts": 1709647641120,
        "data": [trade] * 1024,
    }
    frame = json.dumps(push).encode()  # with the spaces json.dumps puts after separators
    assert len(frame) < adapter.capabilities.max_frame_bytes
    trades = adapter.parse(frame, 1)
    assert len(trades) == 1024 and {(t.trade_id, t.sequence) for t in trades} == {(trade["i"], None)}
