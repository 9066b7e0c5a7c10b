"""Every registered adapter replays its exchange's recorded session (cryptofeed captures in ../shared;
skipped when absent): symbols from the recorded REST discovery, frames from the recorded websocket.

Expected trades are computed here from each venue's documented fields, independently of the adapters.
Trade counts are cryptofeed's own playback counts for the same files, except OKX: the capture also
subscribed a future and a swap, whose 5 trades the spot adapter rejects as unknown symbols (74 - 5).

Two captures speak an older protocol than the adapter (OTHER_PROTOCOL): Kraken's websocket v1 frames
carry no trade ids, so only its recorded AssetPairs answer is used (discovery, names, REST names);
Bybit's v2 trade frames are rewritten into v5's field names, which checks real ids (UUIDs), sides,
times and size texts through the v5 parser without pretending the frames are v5.
"""

from __future__ import annotations

import calendar
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from collectors.adapter import UNKNOWN_SYMBOL, ExchangeAdapter, Gap
from collectors.gaps import NEW, GapTracker
from collectors.registry import ADAPTERS, create_adapter
from core.errors import ParseError
from core.types import Side, SymbolInfo
from tests.collectors.captures import http_body, read_records, ws_frames

# raw symbol, trade id text, sequence, price, quantity, taker side, ts_event ns
Expected = tuple[str, str, int, str, str, str, int]


def _binance(message: dict[str, Any]) -> list[Expected] | None:
    data = message["data"]
    if not isinstance(data, dict) or data.get("e") not in ("trade", "aggTrade"):
        return []
    ident = data["t"] if data["e"] == "trade" else data["a"]
    side = "sell" if data["m"] else "buy"  # m: the buyer is the maker
    return [(data["s"], str(ident), ident, data["p"], data["q"], side, data["T"] * 1_000_000)]


def _iso_ns(text: str) -> int:
    match = re.fullmatch(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{6})Z", text)
    assert match is not None, text
    *fields, micros = map(int, match.groups())
    return calendar.timegm((*fields, 0, 0, 0)) * 10**9 + micros * 1000


def _coinbase(message: dict[str, Any]) -> list[Expected] | None:
    if message.get("type") not in ("match", "last_match"):
        return []
    side = "buy" if message["side"] == "sell" else "sell"  # side is the maker's
    ident = message["trade_id"]
    return [
        (
            message["product_id"],
            str(ident),
            ident,
            message["price"],
            message["size"],
            side,
            _iso_ns(message["time"]),
        )
    ]


def _okx(message: dict[str, Any]) -> list[Expected] | None:
    if message.get("arg", {}).get("channel") != "trades" or "data" not in message:
        return []
    if any(d["instId"] != "BTC-USDT" for d in message["data"]):
        return None  # the future and the swap: not spot instruments
    return [
        (d["instId"], d["tradeId"], int(d["tradeId"]), d["px"], d["sz"], d["side"], int(d["ts"]) * 1_000_000)
        for d in message["data"]
    ]


class Capture(NamedTuple):
    prefix: str  # file prefix in the captures directory
    ws_file: str
    trades: int
    symbols: dict[str, str]  # raw -> canonical, every symbol traded in the frames
    expect: Callable[[dict[str, Any]], list[Expected] | None]  # None: the frame's symbol is not listed


_COINBASE_PRODUCTS = ("SKL-USD", "SKL-BTC", "BAND-GBP", "NMR-EUR", "BAND-BTC", "YFI-BTC", "DASH-BTC")
CAPTURES = {
    "binance": Capture(
        "BINANCE", "BINANCE.ws.1.0", 2, {"NKNUSDT": "NKN-USDT", "LRCBTC": "LRC-BTC"}, _binance
    ),
    "binance_futures": Capture(
        "BINANCE_FUTURES",
        "BINANCE_FUTURES.ws.1.0",
        91,
        {k: f"{k[:-4]}-USDT-PERP" for k in ("SUSHIUSDT", "AKROUSDT", "CTKUSDT", "KEEPUSDT")},
        _binance,
    ),
    "binance_delivery": Capture(
        "BINANCE_DELIVERY",
        "BINANCE_DELIVERY.ws.1.0",
        51,
        {
            **{f"{b}USD_PERP": f"{b}-USD-PERP" for b in ("BCH", "EOS", "ETC", "LINK", "XRP")},
            "BTCUSD_211231": "BTC-USD-211231",
            "ETHUSD_210924": "ETH-USD-210924",
        },
        _binance,
    ),
    "coinbase": Capture(
        "COINBASE",
        "COINBASE.ws.28.0",
        107,
        {p: p for p in (*_COINBASE_PRODUCTS, "NU-GBP", "CRV-EUR", "SKL-GBP")},
        _coinbase,
    ),
    "okx": Capture("OKX", "OKX.ws.1.0", 69, {"BTC-USDT": "BTC-USDT"}, _okx),
}


# Registered venues whose capture is of another protocol version: what of it is used instead.
OTHER_PROTOCOL = {
    "kraken": "websocket v1 frames carry no trade ids: the recorded AssetPairs answer only",
    "bybit": "v2 trade frames, rewritten into v5 field names: ids, sides, times and sizes",
}


def test_every_registered_adapter_has_a_recorded_session() -> None:
    assert set(ADAPTERS) == set(CAPTURES) | set(OTHER_PROTOCOL)
    assert not set(CAPTURES) & set(OTHER_PROTOCOL)


def _adapter(name: str, captures: Path) -> ExchangeAdapter:
    """The adapter knowing the instruments of the recorded discovery response."""
    bootstrap = create_adapter(name)
    body = http_body(captures / f"{CAPTURES[name].prefix}.0", bootstrap.symbols_request().path)
    return create_adapter(name, bootstrap.parse_symbols(body))


@pytest.mark.parametrize("name", sorted(CAPTURES))
def test_recorded_frames_parse_to_the_expected_trades(name: str, captures_dir: Path) -> None:
    capture = CAPTURES[name]
    adapter = _adapter(name, captures_dir)
    frames = ws_frames(captures_dir / capture.ws_file)
    assert len(frames) > 200
    seen = []
    for index, record in enumerate(frames):
        ts_recv = round(record.ts * 1e9)
        expected = capture.expect(json.loads(record.payload))
        if expected is None:
            with pytest.raises(ParseError) as caught:
                adapter.parse(record.payload.encode(), ts_recv)
            assert caught.value.error_type == UNKNOWN_SYMBOL
            continue
        trades = adapter.parse(record.payload.encode(), ts_recv)
        got = [
            (t.raw_symbol, t.trade_id, t.sequence, t.price, t.quantity, t.side.value, t.ts_event)
            for t in trades
        ]
        assert got == expected, f"frame {index}"
        for trade in trades:
            assert (trade.exchange, trade.symbol) == (adapter.name, capture.symbols[trade.raw_symbol])
            assert (trade.ts_recv, trade.backfilled) == (ts_recv, False)
        seen += trades
    assert len(seen) == capture.trades
    assert {t.raw_symbol for t in seen} == set(capture.symbols)
    assert len({t.side for t in seen}) == 2 or capture.trades < 10


@pytest.mark.parametrize("name", sorted(CAPTURES))
def test_recorded_trade_ids_are_consecutive_per_symbol(name: str, captures_dir: Path) -> None:
    """The gap tracker's premise holds on real data: no gap, no duplicate in a recorded session (for
    Coinbase the `last_match` sent on subscribing is followed by the next trade id)."""
    adapter = _adapter(name, captures_dir)
    tracker = GapTracker()
    observed = 0
    for record in ws_frames(captures_dir / CAPTURES[name].ws_file):
        try:
            trades = adapter.parse(record.payload.encode(), 0)
        except ParseError:
            continue  # the OKX future and swap (checked above)
        for trade in trades:
            assert trade.sequence is not None
            assert tracker.observe(trade.raw_symbol, trade.sequence) is NEW
            observed += 1
    assert observed == CAPTURES[name].trades


@pytest.mark.parametrize(
    ("name", "raws"),
    [
        ("binance", ("NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR")),
        ("coinbase", (*_COINBASE_PRODUCTS, "NU-GBP", "CRV-EUR", "SKL-GBP")),
    ],
)
def test_symbols_match_cryptofeeds_normalisation(
    name: str, raws: tuple[str, ...], captures_dir: Path
) -> None:
    adapter = _adapter(name, captures_dir)
    config = next(r for r in read_records(captures_dir / f"{CAPTURES[name].prefix}.0") if r.kind == "config")
    expected = set(json.loads(config.payload)["trades"])
    assert {info.symbol for raw in raws if (info := adapter.symbol_info(raw)) is not None} == expected


def test_okx_spot_discovery_lists_every_live_spot_instrument(captures_dir: Path) -> None:
    body = http_body(captures_dir / "OKX.0", "instType=SPOT")
    rows = json.loads(body)["data"]
    infos = create_adapter("okx").parse_symbols(body)
    assert len(infos) == len(rows) > 500  # all were live in the recording
    assert all(i.symbol == i.raw_symbol == f"{i.base}-{i.quote}" for i in infos)
    assert create_adapter("okx", infos).resolve_symbol("btc/usdt") is not None


_KRAKEN_V2_ASSETS = {"XBT": "BTC", "XDG": "DOGE"}


def _kraken_v2(wsname: str) -> str:
    """A Kraken wsname as the v2 websocket spells it (XBT/CHF -> BTC/CHF), per exchange-protocols.md §3.6."""
    return "/".join(_KRAKEN_V2_ASSETS.get(asset, asset) for asset in wsname.split("/"))


def test_kraken_discovery_of_the_recorded_asset_pairs(captures_dir: Path) -> None:
    body = http_body(captures_dir / "KRAKEN.0", "/0/public/AssetPairs")
    pairs = json.loads(body)["result"]
    named = {key: pair for key, pair in pairs.items() if "wsname" in pair}
    assert all(key.endswith(".d") for key in set(pairs) - set(named))  # only dark-pool pairs lack one
    infos = create_adapter("kraken").parse_symbols(body)
    assert len(infos) == len(named) == 293
    adapter = create_adapter("kraken", infos)
    for key, pair in named.items():
        raw = _kraken_v2(pair["wsname"])
        info = adapter.symbol_info(raw)
        assert info is not None and info.symbol == raw.replace("/", "-"), key
        assert all(adapter.resolve_symbol(name) == info for name in (key, pair["altname"], pair["wsname"]))
        request = adapter.repair_request(Gap(raw, 2, 3, after_ns=1_618_678_142_557_535_000))
        assert request is not None and request.param("pair") == pair["altname"], key
    assert adapter.symbol_info("BTC/USD") is not None and adapter.symbol_info("DOGE/USD") is not None


def test_kraken_rest_names_survive_a_plain_symbol_list(captures_dir: Path) -> None:
    """An adapter built from plain SymbolInfos (as a store keeps them: no alias, no REST name) asks REST
    with the same altnames: every recorded altname is the wsname without its slash."""
    infos = create_adapter("kraken").parse_symbols(
        http_body(captures_dir / "KRAKEN.0", "/0/public/AssetPairs")
    )
    listed = create_adapter("kraken", infos)
    plain = create_adapter(
        "kraken", [SymbolInfo(i.exchange, i.symbol, i.raw_symbol, i.base, i.quote) for i in infos]
    )
    for info in infos:
        gap = Gap(info.raw_symbol, 2, 3, after_ns=1_618_678_142_557_535_000)
        assert plain.repair_request(gap) == listed.repair_request(gap), info.raw_symbol


def test_kraken_symbols_match_cryptofeeds_normalisation(captures_dir: Path) -> None:
    body = http_body(captures_dir / "KRAKEN.0", "/0/public/AssetPairs")
    adapter = create_adapter("kraken", create_adapter("kraken").parse_symbols(body))
    records = read_records(captures_dir / "KRAKEN.0")
    config = next(r for r in records if r.kind == "config")
    subscribe = next(r for r in read_records(captures_dir / "KRAKEN.ws.48.0") if r.kind == "send")
    v1_pairs = json.loads(subscribe.payload)["pair"]  # v1 spellings: KSM/XBT, XBT/CHF
    resolved = {adapter.resolve_symbol(pair) for pair in v1_pairs}
    assert {info.symbol for info in resolved if info is not None} == set(json.loads(config.payload)["trades"])


def _bybit_v5(payload: str) -> tuple[str, list[Expected]] | None:
    """A recorded v2 `trade.*` frame as a v5 `publicTrade` push (T, s, S, v, p, i), and the trades it
    must give; None for other frames. Numbers are read as their text (v2 sends sizes as numbers)."""
    message = json.loads(payload, parse_float=str, parse_int=str)
    if not str(message.get("topic", "")).startswith("trade."):
        return None
    rows = [
        {"T": int(d["trade_time_ms"]), "s": d["symbol"], "S": d["side"], "v": d["size"], "p": d["price"],
         "i": d["trade_id"]}
        for d in message["data"]
    ]  # fmt: skip
    push = {"topic": "publicTrade." + message["data"][0]["symbol"], "type": "snapshot", "data": rows}
    expected = [(r["s"], r["i"], None, r["p"], r["v"], r["S"].lower(), r["T"] * 1_000_000) for r in rows]
    return json.dumps(push), expected  # type: ignore[return-value]


def test_bybit_recorded_v2_trades_through_the_v5_parser(captures_dir: Path) -> None:
    listed = json.loads(http_body(captures_dir / "BYBIT.0", "/v2/public/symbols"))["result"]
    instruments = [
        {
            "symbol": r["name"],
            "baseCoin": r["base_currency"],
            "quoteCoin": r["quote_currency"],
            "status": r["status"],
        }
        for r in listed
    ]
    body = json.dumps({"retCode": 0, "retMsg": "OK", "result": {"category": "spot", "list": instruments}})
    adapter = create_adapter("bybit", create_adapter("bybit").parse_symbols(body.encode()))
    seen = []
    for ws_file in ("BYBIT.ws.25.0", "BYBIT.ws.26.0"):
        for record in ws_frames(captures_dir / ws_file):
            rewritten = _bybit_v5(record.payload)
            if rewritten is None:
                continue
            trades = adapter.parse(rewritten[0], 1)
            got = [
                (t.raw_symbol, t.trade_id, t.sequence, t.price, t.quantity, t.side.value, t.ts_event)
                for t in trades
            ]
            assert got == rewritten[1]
            seen += trades
    assert len(seen) == 251  # cryptofeed's own count for these files
    assert {t.side for t in seen} == {Side.BUY, Side.SELL} and len({t.trade_id for t in seen}) == 251
    canonical = {r["name"]: f"{r['base_currency']}-{r['quote_currency']}" for r in listed}
    assert all(t.symbol == canonical[t.raw_symbol] and t.sequence is None for t in seen)
