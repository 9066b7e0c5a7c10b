"""A symbol's first sight in the processor: its instrument registered in the store, and its open bars and
studies rebuilt from what the store holds (after a restart, or when another processor worked on it).

`Instruments` knows what the collectors published on the feed board about their instruments (assets of
BTC-USDT-PERP are BTC and USDT, which the canonical symbol alone does not say for sure); `WarmUp` reads
the store. Both do I/O and raise the store's and the board's errors: the service retries them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from core.clock import Clock
from core.errors import BusError, CircuitOpenError, StorageError
from core.ports import FeedBoard, MarketStore
from core.types import Bar, SymbolInfo, Trade
from processor.pipeline import Pipeline, assumed_symbol_info, in_arrival_order

WARM_UP_BARS = 1000
MAX_PARTS = 10_000  # stored finer bars merged into one coarser timeframe's open bars at a warm-up
WARM_UP_PAGE = 10_000
ARRIVAL_ORDER_LIMIT = 250_000  # stored trades a warm-up sorts into arrival order (see _in_arrival_order)
BOARD_ERRORS = (BusError, CircuitOpenError, StorageError, OSError)
GUESS_RECHECK_NS = 10 * 1_000_000_000  # how often the board is read again for instruments still guessed


class Instruments:
    """The instruments collectors described on the feed board, by (exchange, canonical symbol). A symbol
    not described there (no board, an older collector, a board that was unreadable) gets the assets its
    canonical symbol suggests (pipeline.assumed_symbol_info), logged once per symbol; the board is looked
    at again for it every GUESS_RECHECK_NS (`described_guesses`), so a guess lasts until its collector
    describes the instrument, not until the processor restarts."""

    def __init__(self, board: FeedBoard | None, log: Any) -> None:
        self._board = board
        self._known: dict[tuple[str, str], SymbolInfo] = {}
        self._guessed: set[tuple[str, str]] = set()
        self._rechecked_ns = 0
        self._log = log

    async def info(self, exchange: str, symbol: str, raw_symbol: str) -> SymbolInfo:
        key = (exchange, symbol)
        if key not in self._known and self._board is not None:
            await self._read_board()  # a new symbol is rare: its collector described it at its start
        found = self._known.get(key)
        if found is not None:
            return found
        assumed = assumed_symbol_info(exchange, symbol, raw_symbol)
        self._known[key] = assumed  # logged once: the guess stands until the board describes it
        self._guessed.add(key)
        self._log.warning(
            "no collector described {}: stored as base {} quote {}",
            symbol,
            assumed.base,
            assumed.quote,
            exchange=exchange,
            symbol=symbol,
        )
        return assumed

    async def corrected(self, stored: list[SymbolInfo]) -> list[SymbolInfo]:
        """The collectors' descriptions of stored symbols whose stored rows say otherwise (rows written
        from a guess, before their collector described them)."""
        if self._board is None:
            return []
        await self._read_board()
        return [
            described
            for row in stored
            if (described := self._known.get((row.exchange, row.symbol))) is not None and described != row
        ]

    async def described_guesses(self, now_ns: int) -> list[SymbolInfo]:
        """The descriptions, now on the board, of instruments this process had to guess (to be stored in
        place of the guess); the board is read for them at most every GUESS_RECHECK_NS."""
        if not self._guessed or self._board is None or now_ns - self._rechecked_ns < GUESS_RECHECK_NS:
            return []
        self._rechecked_ns = now_ns
        listed = {(info.exchange, info.symbol): info for info in await self._read_board()}
        described = [listed[key] for key in sorted(self._guessed & listed.keys())]
        changed = [info for info in described if info != self._known[(info.exchange, info.symbol)]]
        for info in described:
            self._guessed.discard((info.exchange, info.symbol))
            self._known[(info.exchange, info.symbol)] = info
        for info in changed:
            self._log.info(
                "{} described by its collector: base {} quote {} (was guessed)",
                info.symbol,
                info.base,
                info.quote,
                exchange=info.exchange,
                symbol=info.symbol,
            )
        return changed

    async def _read_board(self) -> list[SymbolInfo]:
        assert self._board is not None
        try:
            listed = await self._board.instruments()
        except BOARD_ERRORS as exc:
            self._log.warning("feed board unreadable, instruments unknown: {}", exc)
            return []
        for info in listed:
            self._known.setdefault((info.exchange, info.symbol), info)
        return listed


class WarmUp:
    """Rebuilds one symbol's state in `pipeline` from `store`, by event time."""

    def __init__(
        self, store: MarketStore, pipeline: Pipeline, *, feeds_known: bool, clock: Clock, log: Any
    ) -> None:
        self._store = store
        self._pipeline = pipeline
        self._feeds_known = feeds_known  # without a feed board nothing tells when a backlog is through
        self._clock = clock
        self._log = log

    async def symbol(self, exchange: str, symbol: str) -> list[Bar]:
        """Each timeframe's bars up to its newest stored one are closed and its studies fed from them; the
        open bars of coarser timeframes are merged from stored finer bars where that is exact, and the
        stored trades after the newest closed bar are replayed (see BarAggregator.warm_up_plan). Returns
        the bars the replay closed again (to be finished and stored as when they first closed)."""
        pipeline = self._pipeline
        if (exchange, symbol) in pipeline.warm:
            return []
        for timeframe in pipeline.timeframes:
            history = await self._store.bars(exchange, symbol, timeframe, limit=WARM_UP_BARS)
            if history:
                last = history[-1].bar
                pipeline.aggregator.mark_closed(
                    exchange, symbol, timeframe, last.close_time, last.max_sequence
                )
            pipeline.warm_studies(history)
        since = await self._restore_open_bars(exchange, symbol)
        replayed, reopened = 0, list[Bar]()
        async for page in self._in_arrival_order(self._stored_trades(exchange, symbol, since or 0)):
            replayed += len(page)
            reopened.extend(pipeline.replay(page).closed)
        pipeline.warmed(exchange, symbol, self._clock.now_ns() if self._feeds_known else None)
        self._log.info(
            "warmed up from {} stored trades, {} bars re-closed",
            replayed,
            len(reopened),
            exchange=exchange,
            symbol=symbol,
        )
        return reopened

    async def _restore_open_bars(self, exchange: str, symbol: str) -> int | None:
        """Merge stored finer bars into the open coarser ones where no stored trade is missing from them;
        returns the event time from which stored trades must be replayed (None: all of them)."""
        aggregator = self._pipeline.aggregator
        plan = aggregator.warm_up_plan(exchange, symbol)
        if plan.steps is None:
            return plan.full_replay_from_ns
        restored: list[tuple[str, list[Bar]]] = []
        for step in plan.steps:
            parts = await self._store.bars(
                exchange, symbol, step.source, start_ns=step.start_ns, end_ns=step.end_ns, limit=MAX_PARTS
            )
            stored = await self._store.count_trades(exchange, symbol, step.start_ns, step.end_ns)
            if len(parts) >= MAX_PARTS or sum(item.bar.trade_count for item in parts) != stored:
                return plan.full_replay_from_ns  # late trades went to the coarser bar alone: replay
            restored.append((step.timeframe, [item.bar for item in parts]))
        for timeframe, bars in restored:
            aggregator.restore(exchange, symbol, timeframe, bars)
        return plan.replay_from_ns

    async def _in_arrival_order(self, pages: AsyncIterator[list[Trade]]) -> AsyncIterator[list[Trade]]:
        """Stored trades (pages by event time) in the order they first arrived, so that a warm-up closes
        bars where the run before the restart did: a trade that arrived after its bar had closed (late)
        must not be replayed into it. Up to ARRIVAL_ORDER_LIMIT trades are sorted; a longer replay stays
        in event-time order (logged)."""
        held: list[Trade] = []
        sorting = True
        async for page in pages:
            if sorting and len(held) + len(page) <= ARRIVAL_ORDER_LIMIT:
                held += page
                continue
            if sorting:
                sorting = False
                self._log.warning(
                    "more than {} stored trades to replay: replayed in event-time order, trades that "
                    "arrived late may go into bars they missed before the restart",
                    ARRIVAL_ORDER_LIMIT,
                )
                yield held
                held = []
            yield page
        if held:
            in_arrival_order(held)
            for start in range(0, len(held), WARM_UP_PAGE):
                yield held[start : start + WARM_UP_PAGE]

    async def _stored_trades(self, exchange: str, symbol: str, since_ns: int) -> AsyncIterator[list[Trade]]:
        """Every stored trade with ts_event >= since_ns, oldest first, in pages (the store pages by time;
        trades sharing the boundary time are skipped by id when they come round again)."""
        boundary_ids: set[str] = set()
        while True:
            page = await self._store.trades(exchange, symbol, since_ns=since_ns, limit=WARM_UP_PAGE)
            fresh = [t for t in page if not (t.ts_event == since_ns and t.trade_id in boundary_ids)]
            if fresh:
                yield fresh
            if len(page) < WARM_UP_PAGE or not fresh:
                return
            since_ns = page[-1].ts_event
            boundary_ids = {t.trade_id for t in page if t.ts_event == since_ns}
