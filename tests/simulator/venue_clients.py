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
        args = [{"channel": "trades-all", "instId": s} for s in symbols]
        return [json.dumps({"id": "1", "op": "subscribe", "args": args})]

    def trade(self, frame: str | bytes, listed: frozenset[str]) -> Trade | None:
        """The trade in `frame` if it is exactly a good trade message of this venue, else None."""
        try:
            message = json.loads(frame)
        except (ValueError, RecursionError):
            return None
        fields = self.fields
        row, head = holder_of(message, fields.price), holder_of(message, fields.kind)
        if row is None or head is None or schema_of(row) != self.schema or head[fields.kind] != self.kind:
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

    def _taker_buys(self, row: dict[str, Any]) -> bool:
        if self.name == "binance":
            return not row["m"]
        if self.name == "coinbase":
            return bool(row["side"] == "sell")  # the maker sold
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
        params = {"instId": symbol, "before": str(first - 1), "limit": str(count)}
        rows = (await http.get("/api/v5/market/history-trades", params=params)).json()["data"]
        return sorted(int(row["tradeId"]) for row in rows)

    def rest_probe(self, symbol: str) -> tuple[str, dict[str, str]]:
        """A REST call on a trade endpoint: (path, params)."""
        if self.name == "binance":
            return "/api/v3/trades", {"symbol": symbol}
        if self.name == "coinbase":
            return f"/products/{symbol}/trades", {}
        return "/api/v5/market/trades", {"instId": symbol}


CLIENTS = {
    "binance": VenueClient("binance", "/ws", BINANCE_TRADE, "trade", int),
    "coinbase": VenueClient("coinbase", "/", COINBASE_MATCH, "match", int),
    "okx": VenueClient("okx", "/ws/v5/business", OKX_TRADES_ALL, "trades-all", str),
}
RATE_LIMITED_BODY = {
    "binance": lambda body: body["code"] == -1003,
    "coinbase": lambda body: body == {"message": "Public rate limit exceeded"},
    "okx": lambda body: body == {"code": "50011", "msg": "Too Many Requests", "data": []},
}
