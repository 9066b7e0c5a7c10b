"""The contracts between stages. Implementations live in storage/ (and fakes nowhere)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from core.types import (
    Bar,
    ClosedBar,
    CoverageEvent,
    DeadLetter,
    DeadLetterRecord,
    Delivery,
    FeedStatus,
    ResumePoint,
    SymbolInfo,
    Trade,
)


class TradeBus(Protocol):
    """Carries trades from collectors to processors.

    Streams are per (exchange, symbol) so that one processor owns a symbol's bars. Delivery is
    at-least-once: a delivery read but not acknowledged is handed out again after a crash.
    """

    async def publish(self, trades: Sequence[Trade]) -> None:
        """Append trades (any symbols). Waits (backpressure) rather than dropping when full."""
        ...

    async def publish_events(self, events: Sequence[CoverageEvent]) -> None:
        """Append coverage events to their symbols' streams, after the trades published before them (a
        reader sees each event in order with its symbol's trades). Events are few: never waits for room."""
        ...

    async def flush(self) -> None:
        """Wait until what was published is held by the bus itself (not only a local buffer)."""
        ...

    async def read(self, consumer: str, *, max_count: int = 100, block_ms: int = 1000) -> list[Delivery]:
        """Next deliveries for this consumer: its own unacknowledged ones first, then new ones."""
        ...

    async def ack(self, deliveries: Sequence[Delivery]) -> None: ...

    def owns(self, exchange: str, symbol: str) -> bool:
        """True when this consumer's reads carry the symbol (it is in this processor's shard)."""
        ...

    async def dead_letter(self, letters: Sequence[DeadLetter]) -> None:
        """Set aside what could not be stored (counted in bus_dead_letters_total, logged)."""
        ...

    async def dead_letters(self, limit: int = 100) -> list[DeadLetterRecord]:
        """The most recent `limit` dead letters, oldest first (for inspection)."""
        ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


class MarketStore(Protocol):
    """Durable trades and bars. Writes are batched and idempotent."""

    async def migrate(self) -> None: ...

    async def insert_trades(self, trades: Sequence[Trade]) -> list[Trade]:
        """Store trades; return those that were not stored before (the store is the de-duplicator)."""
        ...

    async def insert_coverage(self, events: Sequence[CoverageEvent]) -> None:
        """Store coverage events (idempotent: an event delivered twice is stored once)."""
        ...

    async def coverage(
        self, exchange: str, symbol: str, *, start_ns: int | None = None, end_ns: int | None = None
    ) -> list[CoverageEvent]:
        """Events whose interval overlaps [start_ns, end_ns), oldest first."""
        ...

    async def mark_incomplete(
        self, bars: Sequence[tuple[str, str, str, int]]
    ) -> list[tuple[str, str, str, int]]:
        """Set the coverage of stored bars, keyed (exchange, symbol, timeframe, open_time ns), to
        'incomplete' (a trade of theirs came after they closed), in one statement; returns the keys of
        those that changed (not those already incomplete or not stored)."""
        ...

    async def upsert_bars(self, bars: Sequence[ClosedBar]) -> None:
        """Insert or replace bars keyed on (exchange, symbol, timeframe, open_time)."""
        ...

    async def bars(
        self,
        exchange: str,
        symbol: str,
        timeframe: str,
        *,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int = 500,
    ) -> list[ClosedBar]:
        """Bars with open_time in [start_ns, end_ns), the most recent `limit`, oldest first."""
        ...

    async def trades(
        self, exchange: str, symbol: str, *, limit: int = 100, since_ns: int | None = None
    ) -> list[Trade]:
        """Most recent `limit` trades (or every trade with ts_event >= since_ns), oldest first."""
        ...

    async def last_bar_close(self, exchange: str, symbol: str, timeframe: str) -> int | None:
        """close_time of the newest stored bar, for warm-up after a restart."""
        ...

    async def count_trades(self, exchange: str, symbol: str, start_ns: int, end_ns: int) -> int:
        """How many trades of the symbol are stored with ts_event in [start_ns, end_ns)."""
        ...

    async def symbols(self) -> list[SymbolInfo]: ...

    async def upsert_symbols(self, symbols: Sequence[SymbolInfo]) -> None: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


class MarketCache(Protocol):
    """Latest-value cache and pub/sub of closed bars."""

    async def put_bar(self, closed: ClosedBar) -> None:
        """Cache as the latest for its (exchange, symbol, timeframe) and publish it."""
        ...

    async def latest_bar(self, exchange: str, symbol: str, timeframe: str) -> ClosedBar | None: ...

    def subscribe(self) -> AsyncIterator[ClosedBar]:
        """Every bar published from now on, until the iterator is closed."""
        ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


class ResumeSource(Protocol):
    """Where each symbol of an exchange was left off: the Redis bus (what reached it) or a store (what was
    stored); a restarted collector resumes from the newest of them."""

    async def resume_points(self, exchange: str) -> list[ResumePoint]: ...

    async def open_gaps(self, exchange: str) -> list[CoverageEvent]:
        """Gaps (sequence ranges) the exchange's collector published and had not resolved when it stopped
        (the Redis bus keeps them; a store recomputes them from its coverage table): its successor
        repairs them again."""
        ...


class FeedBoard(Protocol):
    """What collectors say about their feeds, read by the processor and the API (the cache implements it:
    in process, or in Redis for separate daemons): the latest FeedStatus of every symbol, and the
    instruments collected. Best effort: a lost status is replaced by the next one a second later; a status
    not refreshed for long means its collector is gone."""

    async def put_feeds(self, statuses: Sequence[FeedStatus]) -> None: ...

    async def feeds(self) -> list[FeedStatus]: ...

    async def put_instruments(self, instruments: Sequence[SymbolInfo]) -> None:
        """Describe the instruments a collector collects (written at its start; a later write of the
        same (exchange, symbol) replaces it). Only the SymbolInfo fields are kept."""
        ...

    async def instruments(self) -> list[SymbolInfo]:
        """Every instrument described so far, by (exchange, symbol)."""
        ...


BarKey = tuple[str, str, str]


def bar_key(bar: Bar) -> BarKey:
    return (bar.exchange, bar.symbol, bar.timeframe)
