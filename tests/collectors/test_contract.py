"""Every registered adapter replays its exchange's recorded frames (cryptofeed captures) through parse().

Expected trade counts are the ones cryptofeed's own playback test asserts for the same files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import pytest

from collectors.adapter import ReconnectRequested
from collectors.gaps import NEW, GapTracker
from collectors.registry import ADAPTERS, create_adapter
from core.types import Side
from tests.collectors.captures import http_body, read_records, ws_frames


class Fixture(NamedTuple):
    capture: str  # file prefix in the captures directory
    trades: int
    symbols: dict[str, str]  # raw -> canonical, for the symbols seen in the frames


FIXTURES = {
    "binance": Fixture("BINANCE", 2, {"NKNUSDT": "NKN-USDT", "LRCBTC": "LRC-BTC"}),
    "binance_futures": Fixture(
        "BINANCE_FUTURES",
        91,
        {
            "SUSHIUSDT": "SUSHI-USDT-PERP",
            "AKROUSDT": "AKRO-USDT-PERP",
            "CTKUSDT": "CTK-USDT-PERP",
            "KEEPUSDT": "KEEP-USDT-PERP",
        },
    ),
    "binance_delivery": Fixture(
        "BINANCE_DELIVERY",
        51,
        {
            "BCHUSD_PERP": "BCH-USD-PERP",
            "BTCUSD_211231": "BTC-USD-211231",
            "EOSUSD_PERP": "EOS-USD-PERP",
            "ETCUSD_PERP": "ETC-USD-PERP",
            "ETHUSD_210924": "ETH-USD-210924",
            "LINKUSD_PERP": "LINK-USD-PERP",
            "XRPUSD_PERP": "XRP-USD-PERP",
        },
    ),
}


def test_every_registered_adapter_has_recorded_fixtures() -> None:
    assert set(ADAPTERS) == set(FIXTURES)


def _adapter(name: str, captures: Path):  # type: ignore[no-untyped-def]
    bootstrap = create_adapter(name)
    body = http_body(captures / f"{FIXTURES[name].capture}.0", bootstrap.symbols_request().path)
    return create_adapter(name, bootstrap.parse_symbols(body))


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_recorded_frames_parse_to_the_expected_trades(name: str, captures_dir: Path) -> None:
    fixture = FIXTURES[name]
    adapter = _adapter(name, captures_dir)
    frames = ws_frames(captures_dir / f"{fixture.capture}.ws.1.0")
    assert len(frames) > 200
    trades = []
    for index, record in enumerate(frames):
        ts_recv = round(record.ts * 1e9)
        try:
            parsed = adapter.parse(record.payload.encode(), ts_recv)
        except ReconnectRequested:  # pragma: no cover - none recorded
            pytest.fail(f"frame {index} asked to reconnect")
        data = json.loads(record.payload)["data"]
        if data.get("e") not in ("trade", "aggTrade"):
            assert parsed == [], f"frame {index} is not a trade"
            continue
        assert len(parsed) == 1
        trade = parsed[0]
        assert trade.exchange == adapter.name
        assert trade.raw_symbol == data["s"]
        assert trade.symbol == fixture.symbols[data["s"]]
        assert (trade.trade_id, trade.sequence) == (str(data["a"]), data["a"])
        assert trade.price == data["p"] and trade.quantity == data["q"]  # exact strings
        assert trade.side is (Side.SELL if data["m"] else Side.BUY)
        assert trade.ts_event == data["T"] * 1_000_000
        assert trade.ts_recv == ts_recv
        assert trade.backfilled is False
        trades.append(trade)
    assert len(trades) == fixture.trades
    assert {t.raw_symbol for t in trades} == set(fixture.symbols)
    assert {Side.BUY, Side.SELL} <= {t.side for t in trades} or fixture.trades < 10


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_recorded_trade_ids_are_consecutive_per_symbol(name: str, captures_dir: Path) -> None:
    """The gap tracker's premise holds on real data: no gap, no duplicate in a recorded session."""
    adapter = _adapter(name, captures_dir)
    tracker = GapTracker()
    for record in ws_frames(captures_dir / f"{FIXTURES[name].capture}.ws.1.0"):
        for trade in adapter.parse(record.payload.encode(), 0):
            assert trade.sequence is not None
            assert tracker.observe(trade.raw_symbol, trade.sequence) is NEW


def test_spot_symbols_match_cryptofeeds_normalisation(captures_dir: Path) -> None:
    adapter = _adapter("binance", captures_dir)
    config = next(r for r in read_records(captures_dir / "BINANCE.0") if r.kind == "config")
    expected = set(json.loads(config.payload)["trades"])
    canonical = {
        info.symbol
        for raw in ("NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR")
        if (info := adapter.symbol_info(raw)) is not None
    }
    assert canonical == expected == {"NKN-USDT", "BLZ-ETH", "LRC-BTC", "RUNE-EUR"}
