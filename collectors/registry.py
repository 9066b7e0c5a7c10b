"""Which exchange adapters exist. Adding an exchange: one module in exchanges/, one entry here."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from collectors.adapter import ExchangeAdapter
from collectors.exchanges.binance import BinanceAdapter, BinanceDeliveryAdapter, BinanceFuturesAdapter
from collectors.exchanges.bybit import BybitAdapter
from collectors.exchanges.coinbase import CoinbaseAdapter
from collectors.exchanges.kraken import KrakenAdapter
from collectors.exchanges.okx import OkxAdapter
from collectors.transport import WebsocketsConnector, WsConnector
from collectors.transport_picows import PicowsConnector
from core.errors import ConfigError
from core.types import SymbolInfo

AdapterFactory = Callable[[Iterable[SymbolInfo]], ExchangeAdapter]
DEFAULT_EXCHANGE = "binance"  # what a command collects from when no exchange is named

ADAPTERS: dict[str, AdapterFactory] = {
    "binance": BinanceAdapter,
    "binance_futures": BinanceFuturesAdapter,
    "binance_delivery": BinanceDeliveryAdapter,
    "coinbase": CoinbaseAdapter,
    "okx": OkxAdapter,
    "kraken": KrakenAdapter,
    "bybit": BybitAdapter,
}


def create_adapter(name: str, symbols: Iterable[SymbolInfo] = ()) -> ExchangeAdapter:
    """The adapter for exchange `name` knowing `symbols` (from its `parse_symbols`); ConfigError if unknown.

    An adapter built without symbols can still make and parse the symbols request (bootstrap).
    """
    factory = ADAPTERS.get(name.strip().lower())
    if factory is None:
        known = ", ".join(sorted(ADAPTERS))
        raise ConfigError(f"unknown exchange {name!r}; known exchanges: {known}")
    return factory(symbols)


CONNECTORS: dict[str, Callable[[], WsConnector]] = {
    "websockets": WebsocketsConnector,
    "picows": PicowsConnector,
}


def create_connector(name: str = "websockets") -> WsConnector:
    """The websocket client for the session: websockets (default) or picows (about half the CPU per frame)."""
    factory = CONNECTORS.get(name.strip().lower())
    if factory is None:
        raise ConfigError(f"unknown websocket client {name!r}; known: {', '.join(sorted(CONNECTORS))}")
    return factory()
