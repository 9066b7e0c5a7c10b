"""Symbols of the simulated exchanges: reading user input as a (base, quote) pair, and spelling a pair the
way one venue does (`BTCUSDT` without a separator, `BTC-USDT` with a dash, ...).

The simulator is the exchange authority for its own symbols, so it may split a symbol written without a
separator (`BTCUSDT`) with a table of known quote assets (longest match first); a client must still read
base and quote from the venue's instrument list.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from core.errors import ConfigError

KNOWN_QUOTES: tuple[str, ...] = (
    "FDUSD", "USDT", "USDC", "TUSD", "BUSD", "USDP", "DAI", "BTC", "ETH", "BNB", "EUR", "TRY",
    "GBP", "BRL", "AUD", "JPY", "RUB", "UAH", "ZAR", "PLN", "ARS", "MXN", "COP", "IDR", "XRP",
    "DOGE", "TRX", "DOT", "SOL", "USD",
)  # fmt: skip
_QUOTES_LONGEST_FIRST = sorted(KNOWN_QUOTES, key=len, reverse=True)
_SYMBOL = re.compile(r"^[A-Z0-9]{2,20}$")
_ASSET = re.compile(r"^[A-Z0-9]{1,15}$")
_SEPARATORS = ("-", "/", "_")

SymbolForm = Callable[[str], str]
"""User input ('btc-usdt', 'BTC/USDT', 'BTCUSDT') -> one venue's raw symbol; ConfigError if invalid."""


def split_pair(text: str) -> tuple[str, str]:
    """'btc-usdt', 'BTC/USDT', 'btc_usdt' or 'BTCUSDT' -> ('BTC', 'USDT'); ConfigError for anything else."""
    upper = text.strip().upper()
    for separator in _SEPARATORS:
        if separator in upper:
            parts = upper.split(separator)
            if len(parts) != 2 or not all(_ASSET.match(p) for p in parts):
                raise ConfigError(f"invalid symbol {text!r}: expected BASE{separator}QUOTE, e.g. BTC-USDT")
            return parts[0], parts[1]
    if not _SYMBOL.match(upper):
        raise ConfigError(f"invalid symbol {text!r}: expected letters and digits, e.g. BTCUSDT")
    return split_symbol(upper)


def split_symbol(symbol: str) -> tuple[str, str]:
    """'BTCUSDT' -> ('BTC', 'USDT') by the longest known quote asset that leaves a base."""
    for quote in _QUOTES_LONGEST_FIRST:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    raise ConfigError(f"symbol {symbol!r} does not end with a known quote asset ({', '.join(KNOWN_QUOTES)})")


def symbol_form(separator: str) -> SymbolForm:
    """The SymbolForm of a venue that writes BASE + separator + QUOTE."""

    def form(text: str) -> str:
        base, quote = split_pair(text)
        return f"{base}{separator}{quote}"

    return form


normalize_symbol: SymbolForm = symbol_form("")
"""The form without a separator ('btc-usdt' -> 'BTCUSDT'): what markets produce unless told another."""
