"""A venue's instruments by the venue's own symbol and by canonical BASE-QUOTE (pure).

Every adapter keeps one: the hot path maps a raw symbol to its canonical one with a dict lookup, and a
user may name an instrument either way (`BTCUSDT`, `BTC-USDT`, `btc/usdt`).
"""

from __future__ import annotations

from collections.abc import Iterable

from collectors.adapter import RestRequest
from collectors.values import TradeFactory
from core.types import SymbolInfo, Trade


def canonical_spelling(text: str) -> str:
    """'btc/usdt', 'BTC_USDT', ' btc-usdt ' -> 'BTC-USDT' (the form canonical symbols take)."""
    return text.strip().upper().replace("/", "-").replace("_", "-")


def spot_pair(exchange: str, raw_symbol: str, base: str, quote: str) -> SymbolInfo:
    """A spot instrument listed by its assets: canonical BASE-QUOTE in upper case, whatever the venue's
    own spelling (`raw_symbol`) is."""
    base, quote = base.upper(), quote.upper()
    return SymbolInfo(exchange, f"{base}-{quote}", raw_symbol, base, quote)


class SymbolDirectory:
    """Instruments of one venue. `canonical` maps raw symbol -> canonical symbol (read on the hot path)."""

    __slots__ = ("_by_canonical", "_by_raw", "canonical")

    def __init__(self, symbols: Iterable[SymbolInfo] = ()) -> None:
        listed = list(symbols)
        self._by_raw: dict[str, SymbolInfo] = {s.raw_symbol: s for s in listed}
        self._by_canonical: dict[str, SymbolInfo] = {s.symbol: s for s in listed}
        self.canonical: dict[str, str] = {raw: s.symbol for raw, s in self._by_raw.items()}

    def __len__(self) -> int:
        return len(self._by_raw)

    def info(self, raw_symbol: str) -> SymbolInfo | None:
        return self._by_raw.get(raw_symbol)

    def resolve(self, text: str) -> SymbolInfo | None:
        """The instrument `text` names: the raw symbol as given or uppercased, else the canonical one."""
        stripped = text.strip()
        return (
            self._by_raw.get(stripped)
            or self._by_raw.get(stripped.upper())
            or self._by_canonical.get(canonical_spelling(stripped))
        )


class ListedSymbols:
    """What every adapter does with the instruments it is built with: `symbol_info` and `resolve_symbol`
    for the session and the user, and `self._trades`, a `TradeFactory` that makes trades of listed
    symbols only. Adapters inherit it and set `name`. It also answers the seam's optional part for venues
    that do not use it: no recent-trades request (RepairKind.RECENT_ONLY venues override both)."""

    name: str

    def __init__(self, symbols: Iterable[SymbolInfo] = ()) -> None:
        self._symbols = SymbolDirectory(symbols)
        self._trades = TradeFactory(self.name, self._symbols.canonical)

    def symbol_info(self, raw_symbol: str) -> SymbolInfo | None:
        """The instrument for a venue symbol, None when unknown."""
        return self._symbols.info(raw_symbol)

    def resolve_symbol(self, text: str) -> SymbolInfo | None:
        """The instrument a user means by `text`: the venue's own symbol or the canonical BASE-QUOTE."""
        return self._symbols.resolve(text)

    def recent_request(self, raw_symbol: str) -> RestRequest | None:
        return None

    def parse_recent(self, raw_symbol: str, body: bytes, ts_recv: int) -> list[Trade]:
        return []
