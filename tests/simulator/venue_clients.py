"""How a test talks to each simulated venue: where to connect, what to send, how to read a trade strictly
(field names, order and JSON types as the real venue sends them), and how to read trade ids over REST.

One `VenueClient` per venue lets behaviour shared by every venue be tested once, parametrized."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

import httpx

from simulator.malformed import TradeFields, holder_of
from simulator.venues import make_venue

Schema = tuple[tuple[str, type], ...]

BINANCE_TRADE: Schema = (
    ("e", str), ("E", int), ("s", str), ("t", int), ("p", str), ("q", str), ("T", int), ("m", bool),
    ("M", bool),
)  # fmt: skip
COINBASE_MATCH: Schema = (
    ("type", str), ("trade_id", int), ("maker_order_id", str), ("taker_order_id", str), ("side", str),
    ("size", str), ("price", str), ("product_id", str), ("sequence", int), ("time", str),
)  # fmt: skip
OKX_TRADES_ALL: Schema = (
    ("instId", str), ("tradeId", str), ("px", str), ("sz", str), ("side", str), ("source", str), ("ts", str),
)  # fmt: skip


class Number(str):
    """The exact text of a JSON number with a fraction or exponent (venues that send prices as numbers)."""


KRAKEN_TRADE: Schema = (
    ("symbol", str), ("side", str), ("price", Number), ("qty", Number), ("ord_type", str), ("trade_id", int),
    ("timestamp", str),
)  # fmt: skip
BYBIT_TRADE: Schema = (
    ("T", int), ("s", str), ("S", str), ("v", str), ("p", str), ("i", str), ("BT", bool), ("RPI", bool),
    ("seq", int),
)  # fmt: skip
OKX_TRADES: Schema = (
    ("instId", str), ("tradeId", str), ("px", str), ("sz", str), ("side", str), ("ts", str), ("count", str),
    ("source", str), ("seqId", int),
)  # fmt: skip


class Trade(NamedTuple):
    symbol: str
    trade_id: int
    price: str
    size: str
    taker_buys: bool


def schema_of(row: dict[str, Any]) -> Schema:
    return tuple((key, type(value)) for key, value in row.items())


def _positive(text: object) -> bool:
    try:
        return isinstance(text, str) and Decimal(text) > 0
    except InvalidOperation:
        return False


@dataclass(frozen=True)
class VenueClient:
    """A test client of one venue. `kind` is the expected value of the venue's type/channel field."""

    name: str
    path: str
    schema: Schema
    kind: str
    id_type: type
    rest_reach: int | None = None  # REST serves only this many latest trades (None: all it keeps)

    @functools.cached_property
    def fields(self) -> TradeFields:
        return make_venue(self.name).trade_fields

    @functools.cached_property
    def symbols(self) -> tuple[str, ...]:
        return make_venue(self.name).default_symbols

    def subscribe(self, symbols: list[str]) -> list[str]:
        if self.name == "binance":
            return [
                json.dumps(
                    {"method": "SUBSCRIBE", "params": [f"{s.lower()}@trade" for s in symbols], "id": 1}
                )
            ]
        if self.name == "coinbase":
            return [json.dumps({"type": "subscribe", "product_ids": symbols, "channels": ["matches"]})]
        if self.name == "kraken":
            params = {"channel": "trade", "symbol": symbols, "snapshot": False}
            return [json.dumps({"method": "subscribe", "params": params, "req_id": 1})]
        if self.name == "bybit":
            return [
                json.dumps({"req_id": "1", "op": "subscribe", "args": [f"publicTrade.{s}" for s in symbols]})
            ]
        args = [{"channel": "trades-all", "instId": s} for s in symbols]
        return [json.dumps({"id": "1", "op": "subscribe", "args": args})]

    def trade(self, frame: str | bytes, listed: frozenset[str]) -> Trade | None:
        """The trade in `frame` if it is exactly a good trade message of this venue, else None."""
        try:
            message = json.loads(frame, parse_float=Number)
        except (ValueError, RecursionError):
            return None
        fields = self.fields
        row, head = holder_of(message, fields.price), holder_of(message, fields.kind)
        if (
            row is None
            or head is None
            or schema_of(row) != self.schema
            or not self._is_kind(head[fields.kind])
        ):
            return None
        if row[fields.symbol] not in listed or not (
            _positive(row[fields.price]) and _positive(row[fields.size])
        ):
            return None
        return Trade(
            row[fields.symbol],
            int(row[fields.trade_id]),
            row[fields.price],
            row[fields.size],
            self._taker_buys(row),
        )

    def _is_kind(self, value: object) -> bool:
        """The type/channel field names this venue's trades (a topic names them before its first dot)."""
        return isinstance(value, str) and value.split(".")[0] == self.kind

    def _taker_buys(self, row: dict[str, Any]) -> bool:
        if self.name == "binance":
            return not row["m"]
        if self.name == "coinbase":
            return bool(row["side"] == "sell")  # the maker sold
        if self.name == "bybit":
            return bool(row["S"] == "Buy")
        return bool(row["side"] == "buy")

    async def rest_ids(self, http: httpx.AsyncClient, symbol: str, first: int, count: int) -> list[int]:
        """Ids of `count` trades from id `first` on, read over REST, ascending."""
        if self.name == "binance":
            params = {"symbol": symbol, "fromId": str(first), "limit": str(count)}
            return [row["id"] for row in (await http.get("/api/v3/historicalTrades", params=params)).json()]
        if self.name == "coinbase":
            params = {"before": str(first - 1), "limit": str(count)}
            rows = (await http.get(f"/products/{symbol}/trades", params=params)).json()
            return sorted(row["trade_id"] for row in rows)
        if self.name == "kraken":  # the latest 1000 (the test's trades are among them)
            result = (await http.get("/0/public/Trades", params={"pair": symbol})).json()["result"]
            [rows] = [value for key, value in result.items() if key != "last"]
            return [row[6] for row in rows if first <= row[6] < first + count]
        if self.name == "bybit":  # the latest 60: all there is
            params = {"category": "spot", "symbol": symbol}
            rows = (await http.get("/v5/market/recent-trade", params=params)).json()["result"]["list"]
            return sorted(int(row["execId"]) for row in rows if first <= int(row["execId"]) < first + count)
        params = {"instId": symbol, "before": str(first - 1), "limit": str(count)}
        rows = (await http.get("/api/v5/market/history-trades", params=params)).json()["data"]
        return sorted(int(row["tradeId"]) for row in rows)

    def rest_probe(self, symbol: str) -> tuple[str, dict[str, str]]:
        """A REST call on a trade endpoint: (path, params)."""
        if self.name == "binance":
            return "/api/v3/trades", {"symbol": symbol}
        if self.name == "coinbase":
            return f"/products/{symbol}/trades", {}
        if self.name == "kraken":
            return "/0/public/Trades", {"pair": symbol}
        if self.name == "bybit":
            return "/v5/market/recent-trade", {"category": "spot", "symbol": symbol}
        return "/api/v5/market/trades", {"instId": symbol}


CLIENTS = {
    "binance": VenueClient("binance", "/ws", BINANCE_TRADE, "trade", int),
    "coinbase": VenueClient("coinbase", "/", COINBASE_MATCH, "match", int),
    "okx": VenueClient("okx", "/ws/v5/business", OKX_TRADES_ALL, "trades-all", str),
    "kraken": VenueClient("kraken", "/v2", KRAKEN_TRADE, "trade", int),
    "bybit": VenueClient("bybit", "/v5/public/spot", BYBIT_TRADE, "publicTrade", str, rest_reach=60),
}
RATE_LIMITED_BODY = {
    "binance": lambda body: body["code"] == -1003,
    "coinbase": lambda body: body == {"message": "Public rate limit exceeded"},
    "okx": lambda body: body == {"code": "50011", "msg": "Too Many Requests", "data": []},
    "kraken": lambda body: body == {"error": ["EAPI:Rate limit exceeded"]},
    "bybit": lambda body: body["retCode"] == 10006,
}
