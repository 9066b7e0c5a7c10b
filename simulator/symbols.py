"""Symbols of the simulated exchange: normalising user input and splitting BASEQUOTE for exchangeInfo.

The simulator is the exchange authority for its own symbols, so it may split them with a table of known
quote assets (longest match first); a client must still read baseAsset/quoteAsset from exchangeInfo.
"""

from __future__ import annotations

import re

from core.errors import ConfigError

KNOWN_QUOTES: tuple[str, ...] = (
    "FDUSD", "USDT", "USDC", "TUSD", "BUSD", "USDP", "DAI", "BTC", "ETH", "BNB", "EUR", "TRY",
    "GBP", "BRL", "AUD", "JPY", "RUB", "UAH", "ZAR", "PLN", "ARS", "MXN", "COP", "IDR", "XRP",
    "DOGE", "TRX", "DOT", "SOL",
)  # fmt: skip
_QUOTES_LONGEST_FIRST = sorted(KNOWN_QUOTES, key=len, reverse=True)
_SYMBOL = re.compile(r"^[A-Z0-9]{2,20}$")


def normalize_symbol(text: str) -> str:
    """'btc-usdt', 'BTC/USDT', 'btcusdt' -> 'BTCUSDT'; ConfigError for anything else."""
    symbol = text.strip().upper().replace("-", "").replace("/", "").replace("_", "")
    if not _SYMBOL.match(symbol):
        raise ConfigError(f"invalid symbol {text!r}: expected letters and digits, e.g. BTCUSDT")
    split_symbol(symbol)
    return symbol


def split_symbol(symbol: str) -> tuple[str, str]:
    """'BTCUSDT' -> ('BTC', 'USDT') by the longest known quote asset that leaves a base."""
    for quote in _QUOTES_LONGEST_FIRST:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    raise ConfigError(f"symbol {symbol!r} does not end with a known quote asset ({', '.join(KNOWN_QUOTES)})")
