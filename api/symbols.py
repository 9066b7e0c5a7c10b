"""Resolves the symbols clients type (BTC-USDT, BTCUSDT, btcusdt, BTC/USDT) to the store's SymbolInfo.

The list comes from `store.symbols()` and is kept for `ttl` seconds; an unknown name triggers a reload
at most once per `min_reload` seconds, so clients probing unknown names cannot hammer the database.
Concurrent reloads share one read (single flight, no lock held across the await).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from api.errors import NotFound
from core.ports import MarketStore
from core.types import SymbolInfo


def _aliases(info: SymbolInfo) -> list[str]:
    base, quote = info.base.upper(), info.quote.upper()
    return [f"{base}{quote}", f"{base}/{quote}", f"{base}_{quote}"]


class SymbolDirectory:
    """Known instruments by exchange, indexed by canonical name, the exchange's own name and aliases."""

    def __init__(
        self,
        store: MarketStore,
        *,
        ttl: float = 30.0,
        min_reload: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._ttl = ttl
        self._min_reload = min_reload
        self._monotonic = monotonic
        self._symbols: list[SymbolInfo] = []
        self._index: dict[tuple[str, str], SymbolInfo] = {}
        self._loaded_at: float | None = None
        self._pending: asyncio.Task[None] | None = None

    async def all(self) -> list[SymbolInfo]:
        if self._loaded_at is None or self._monotonic() - self._loaded_at >= self._ttl:
            await self._reload()
        return list(self._symbols)

    async def resolve(self, exchange: str, symbol: str) -> SymbolInfo:
        """The instrument `symbol` names on `exchange`; NotFound naming the exchange or the symbol."""
        await self.all()
        found = self._lookup(exchange, symbol)
        if found is None and self._may_reload():
            await self._reload()
            found = self._lookup(exchange, symbol)
        if found is not None:
            return found
        exchanges = sorted({s.exchange for s in self._symbols})
        if exchange not in exchanges:
            known = ", ".join(exchanges) or "none yet"
            raise NotFound(f"unknown exchange {exchange!r} (known: {known})", parameter="exchange")
        raise NotFound(f"unknown symbol {symbol!r} on {exchange}", parameter="symbol")

    def _lookup(self, exchange: str, symbol: str) -> SymbolInfo | None:
        return self._index.get((exchange, symbol.strip().upper()))

    def _may_reload(self) -> bool:
        return self._loaded_at is None or self._monotonic() - self._loaded_at >= self._min_reload

    async def _reload(self) -> None:
        if self._pending is None:
            self._pending = asyncio.get_running_loop().create_task(self._load())
            self._pending.add_done_callback(self._clear_pending)
        # Shielded: a caller that goes away must not cancel the read other callers wait on.
        await asyncio.shield(self._pending)

    def _clear_pending(self, task: asyncio.Task[None]) -> None:
        if self._pending is task:
            self._pending = None
        if not task.cancelled():
            task.exception()  # retrieved here so an unawaited failure is not reported as lost

    async def _load(self) -> None:
        symbols = await self._store.symbols()
        index: dict[tuple[str, str], SymbolInfo] = {}
        for info in symbols:  # exact names first: an alias never shadows a real symbol
            index.setdefault((info.exchange, info.symbol.upper()), info)
            index.setdefault((info.exchange, info.raw_symbol.upper()), info)
        for info in symbols:
            for alias in _aliases(info):
                index.setdefault((info.exchange, alias), info)
        self._symbols = sorted(symbols, key=lambda s: (s.exchange, s.symbol))
        self._index = index
        self._loaded_at = self._monotonic()
