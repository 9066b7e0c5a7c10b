"""A venue's instruments by the venue's own symbol and by canonical BASE-QUOTE (pure).

Every adapter keeps one: the hot path maps a raw symbol to its canonical one with a dict lookup, and a
user may name an instrument either way (`BTCUSDT`, `BTC-USDT`, `btc/usdt`), or by another name the venue
itself uses for it (`ListedPair.aliases`: Kraken's `XBTUSD`, `XXBTZUSD`).
"""

from __future__ import annotations

from collections.abc import Iterable

from collectors.adapter import Capabilities, RestRequest, SequenceKind
from collectors.values import TradeFactory
from core.types import Candle, SymbolInfo, Trade


def canonical_spelling(text: str) -> str:
    """'btc/usdt', 'BTC_USDT', ' btc-usdt ' -> 'BTC-USDT' (the form canonical symbols take)."""
    return text.strip().upper().replace("/", "-").replace("_", "-")


def spot_pair(
    exchange: str,
    raw_symbol: str,
    base: str,
    quote: str,
    aliases: tuple[str, ...] = (),
    rest_symbol: str = "",
) -> SymbolInfo:
    """A spot instrument listed by its assets: canonical BASE-QUOTE in upper case, whatever the venue's
    own spelling (`raw_symbol`) is; a `ListedPair` when the venue has other names for it."""
    base, quote = base.upper(), quote.upper()
    if aliases or rest_symbol:
        return ListedPair(exchange, f"{base}-{quote}", raw_symbol, base, quote, aliases, rest_symbol)
    return SymbolInfo(exchange, f"{base}-{quote}", raw_symbol, base, quote)


class ListedPair(SymbolInfo, frozen=True):
    """An instrument as its venue's `parse_symbols` lists it, with what only that venue's adapter needs:
    `aliases`, other names the venue gives it (user spellings that `resolve_symbol` accepts), and
    `rest_symbol`, the name its REST API takes where that differs from the websocket's raw symbol ("" =
    the raw symbol). Everywhere else it is a plain SymbolInfo; what stores or builds a SymbolInfo keeps
    only the common fields, so an adapter must still work without these (e.g. derive the REST name)."""

    aliases: tuple[str, ...] = ()
    rest_symbol: str = ""


class SymbolDirectory:
    """Instruments of one venue. `canonical` maps raw symbol -> canonical symbol (read on the hot path)."""

    __slots__ = ("_by_alias", "_by_canonical", "_by_raw", "canonical")

    def __init__(self, symbols: Iterable[SymbolInfo] = ()) -> None:
        listed = list(symbols)
        self._by_raw: dict[str, SymbolInfo] = {s.raw_symbol: s for s in listed}
        self._by_canonical: dict[str, SymbolInfo] = {s.symbol: s for s in listed}
        self._by_alias: dict[str, SymbolInfo] = {
            canonical_spelling(alias): s for s in listed if isinstance(s, ListedPair) for alias in s.aliases
        }
        self.canonical: dict[str, str] = {raw: s.symbol for raw, s in self._by_raw.items()}

    def __len__(self) -> int:
        return len(self._by_raw)

    def info(self, raw_symbol: str) -> SymbolInfo | None:
        return self._by_raw.get(raw_symbol)

    def resolve(self, text: str) -> SymbolInfo | None:
        """The instrument `text` names: the raw symbol as given or uppercased, else the canonical one, else
        a venue alias (spelled either way)."""
        stripped = text.strip()
        spelling = canonical_spelling(stripped)
        return (
            self._by_raw.get(stripped)
            or self._by_raw.get(stripped.upper())
            or self._by_canonical.get(spelling)
            or self._by_alias.get(spelling)
        )


class ListedSymbols:
    """What every adapter does with the instruments it is built with: `symbol_info` and `resolve_symbol`
    for the session and the user, and `self._trades`, a `TradeFactory` that makes trades of listed
    symbols only (with a sequence exactly where `capabilities.sequence` is CONTIGUOUS). Adapters inherit
    it and set `name` and `capabilities`. It also answers the seam's optional part for venues
    that do not use it: no recent-trades request (RepairKind.RECENT_ONLY venues override both), no
    klines (venues with `capabilities.klines` available override both)."""

    name: str
    capabilities: Capabilities

    def __init__(self, symbols: Iterable[SymbolInfo] = ()) -> None:
        self._symbols = SymbolDirectory(symbols)
        sequenced = self.capabilities.sequence is SequenceKind.CONTIGUOUS
        self._trades = TradeFactory(self.name, self._symbols.canonical, sequenced)

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

    def klines_request(self, raw_symbol: str, start_ns: int, end_ns: int) -> RestRequest | None:
        return None

    def parse_klines(self, raw_symbol: str, body: bytes) -> list[Candle]:
        return []
