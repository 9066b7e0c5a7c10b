"""A venue's instruments by the venue's own symbol and by canonical BASE-QUOTE (pure).

Every adapter keeps one: the hot path maps a raw symbol to its canonical one with a dict lookup, and a
user may name an instrument either way (`BTCUSDT`, `BTC-USDT`, `btc/usdt`).
"""

from __future__ import annotations

from collections.abc import Iterable

from core.types import SymbolInfo


def canonical_spelling(text: str) -> str:
    """'btc/usdt', 'BTC_USDT', ' btc-usdt ' -> 'BTC-USDT' (the form canonical symbols take)."""
    return text.strip().upper().replace("/", "-").replace("_", "-")


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
