"""The processor service: bus -> store -> bars -> indicators -> store + cache -> acknowledge.

Exactly-once by construction:
- the store de-duplicates trades (`insert_trades` returns only the new ones) and only new trades reach the
  bar aggregator, so a redelivered batch or a collector's duplicate never counts twice;
- a delivery is acknowledged only after its trades and the bars they closed are stored, so a crash at any
  point redelivers it;
- after a restart each symbol is warmed up from the store before any new trade is applied: open bars are
  rebuilt from the stored trades after the newest stored bar, indicators from the stored bars.
Outages of the store or the bus are retried with backoff; nothing is acknowledged meanwhile.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from operator import attrgetter
from typing import NamedTuple, TypeVar

from loguru import logger
from prometheus_client import Counter as PromCounter

from core.clock import Clock, SystemClock
from core.errors import BusError, CircuitOpenError, PlatformError, RejectedData, StorageError
from core.ports import BarKey, FeedBoard, MarketCache, MarketStore, TradeBus, bar_key
from core.timeframes import NS_PER_SECOND, bucket_start, timeframe_ns
from core.types import (
    Bar,
    ClosedBar,
    CoverageEvent,
    DeadLetter,
    Delivery,
    Features,
    FeedState,
    FeedStatus,
    SymbolInfo,
    Trade,
)
from cryptostock.coverage import CoverageHolds
from monitoring import tracing
from monitoring.metrics import METRICS, PlatformMetrics
from processor.bars import BarAggregator, LateTrade
from processor.features import FeatureCalculator
from processor.indicators import IndicatorEngine
from processor.quality import QualityMonitor, QualityTally

T = TypeVar("T")


class ShutdownAbandoned(PlatformError):
    """A dependency stayed down past the stop deadline; unacknowledged work remains on the bus."""


RETRYABLE = (StorageError, CircuitOpenError, BusError)
WARM_UP_BARS = 1000
MAX_PARTS = 10_000  # stored finer bars merged into one coarser timeframe's open bars at a warm-up
WARM_UP_PAGE = 10_000
ARRIVAL_ORDER_LIMIT = 250_000  # stored trades a warm-up sorts into arrival order (see _in_arrival_order)
CAUGHT_UP_SLACK_NS = NS_PER_SECOND
STORE_AHEAD = 2  # batches being stored while the apply stage works on an earlier one
# Retries are cheap while a circuit is open (refused locally), and each second of delay after a dependency
# returns is a second of market data waiting: keep the ceiling low.
MAX_RETRY_DELAY_S = 2.0
LIVE_FEEDS = frozenset({FeedState.STREAMING, FeedState.QUIET})
FEED_FRESH_NS = 10 * NS_PER_SECOND  # collectors publish every second; older means the collector is gone
# The board is read at most this often (collectors write it once a second); not on every batch.
FEED_READ_INTERVAL_NS = NS_PER_SECOND // 2


def batches(deliveries: Sequence[Delivery], max_trades: int) -> Iterator[Sequence[Delivery]]:
    """Consecutive groups of whole deliveries, each with at most `max_trades` trades (a larger delivery
    alone): a read of hundreds of thousands of trades is stored and applied in pipelined steps. A delivery
    of coverage events is a group of its own, so that it is applied exactly between the trades around it."""
    start, count = 0, 0
    for end, delivery in enumerate(deliveries):
        size = len(delivery.trades)
        if delivery.events or (count and count + size > max_trades):
            if start < end:
                yield deliveries[start:end]
            start, count = end, 0
        if delivery.events:
            yield deliveries[end : end + 1]
            start = end + 1
            continue
        count += size
    if start < len(deliveries):
        yield deliveries[start:]


class _Stored(NamedTuple):
    """A read's deliveries and, of their trades, those the store did not have before; or one delivery
    of coverage events (stored)."""

    deliveries: Sequence[Delivery]
    new_trades: list[Trade]
    events: Sequence[CoverageEvent] = ()
    read_at: float = 0.0  # a tick (no deliveries): when the read that found the bus empty began


class ProcessorService:
    """Consumes trades from the bus and produces stored, cached bars with indicators."""

    def __init__(
        self,
        bus: TradeBus,
        store: MarketStore,
        cache: MarketCache,
        *,
        timeframes: Sequence[str],
        grace_ns: int,
        consumer: str = "processor-1",
        read_batch: int = 200,
        store_batch: int = 20_000,
        tick_interval: float = 0.5,
        drain_on_stop: bool = False,
        stop_timeout: float = 6.0,
        max_hold: float = 300.0,
        feeds: FeedBoard | None = None,
        metrics: PlatformMetrics = METRICS,
        clock: Clock | None = None,
    ) -> None:
        self._bus = bus
        self._store = store
        self._cache = cache
        self._timeframes = tuple(timeframes)
        self._grace_ns = grace_ns
        self._consumer = consumer
        self._read_batch = read_batch
        self._store_batch = store_batch
        self._storing: set[asyncio.Task[_Stored]] = set()
        self._tick_ms = max(1, int(tick_interval * 1000))
        self._metrics = metrics
        self._clock = clock or SystemClock()
        self._aggregator = BarAggregator(self._timeframes, grace_ns)
        self._engines: dict[BarKey, IndicatorEngine] = {}
        self._features: dict[BarKey, FeatureCalculator] = {}
        self._quality = QualityMonitor()
        self._coverage = CoverageHolds(self._aggregator, metrics, max_hold_s=max_hold)
        self._warm: set[tuple[str, str]] = set()
        self._revisions: set[tuple[str, str, str, int]] = set()  # bars a late trade made incomplete
        self._feeds = feeds
        self._feed_statuses: list[FeedStatus] = []
        self._feeds_read_at = -FEED_READ_INTERVAL_NS  # clock ns of the last read of the feed board
        self._warmed_at: dict[tuple[str, str], int] = {}  # wall ns of each symbol's warm-up
        # exchanges whose source ended -> when (monotonic): their bars close once a read begun after that
        # finds the bus drained
        self._ended: dict[str, float] = {}
        self._stopping = asyncio.Event()
        self._drain_on_stop = drain_on_stop
        self._stop_timeout = stop_timeout
        self._give_up_at = float("inf")
        self._log = logger.bind(component="processor", consumer=consumer)
        self.trades_applied = 0

    def source_ended(self, exchange: str) -> None:
        """The exchange's source has ended and everything it sent is on the bus (a finite replay played
        to its end): once the bus is drained, every open bar of the exchange is closed and stored."""
        self._ended.setdefault(exchange, time.monotonic())

    def stop(self) -> None:
        """Stop reading. The current batch is finished, stored and acknowledged before run() returns; with
        `drain_on_stop` (an in-process bus, which does not survive the process) everything already on the
        bus is processed first. Outages are waited out for at most `stop_timeout` seconds after this."""
        self._give_up_at = time.monotonic() + self._stop_timeout
        self._stopping.set()

    async def run(self) -> None:
        """Two stages, so that the store's work overlaps aggregation: the store stage reads batches and
        starts storing their trades, each on its own pooled connection, and queues them (at most
        STORE_AHEAD waiting, so at most STORE_AHEAD + 2 inserts run at once); the apply stage takes the
        batches in read order, waits for each to be stored, aggregates, stores the bars and acknowledges.
        Symbols are warmed up with nothing in flight."""
        self._log.info("processor starting: timeframes {}", ",".join(self._timeframes))
        try:
            await self._retry("warm_up", self._warm_up_known_symbols)
            stored: asyncio.Queue[asyncio.Future[_Stored] | None] = asyncio.Queue(maxsize=STORE_AHEAD)
            stages = [
                asyncio.create_task(self._store_stage(stored), name="processor-store"),
                asyncio.create_task(self._apply_stage(stored), name="processor-apply"),
            ]
            try:
                await asyncio.wait(stages, return_when=asyncio.FIRST_EXCEPTION)
            finally:
                in_flight = [*stages, *self._storing]
                for task in in_flight:
                    task.cancel()
                outcomes = await asyncio.gather(*in_flight, return_exceptions=True)
            for outcome in outcomes:
                if isinstance(outcome, Exception):
                    raise outcome
        except ShutdownAbandoned as exc:
            self._log.error("stopped with work unacknowledged (it stays on the bus): {}", exc)
        self._log.info("processor stopped after applying {} trades", self.trades_applied)

    async def _store_stage(self, stored: asyncio.Queue[asyncio.Future[_Stored] | None]) -> None:
        while True:
            stopping = self._stopping.is_set()
            if stopping and not self._drain_on_stop:
                break
            read_at = time.monotonic()
            deliveries = await self._retry(
                "read",
                self._bus.read,
                self._consumer,
                max_count=self._read_batch,
                block_ms=1 if stopping else self._tick_ms,
            )
            if deliveries:
                for group in batches(deliveries, self._store_batch):
                    trades = [trade for delivery in group for trade in delivery.trades]
                    fresh = self._unseen_symbols(trades)
                    if fresh:
                        await stored.join()  # a warm-up reads the store and feeds the aggregator: drain first
                        await self._warm_up_symbols(fresh)
                    await stored.put(self._start_storing(group, trades))
            elif stopping:
                break
            else:  # a tick: the apply stage may close bars on the clock
                tick = asyncio.get_running_loop().create_future()
                tick.set_result(_Stored([], [], read_at=read_at))
                await stored.put(tick)
        await stored.put(None)

    def _start_storing(self, deliveries: Sequence[Delivery], trades: list[Trade]) -> asyncio.Task[_Stored]:
        task = asyncio.create_task(self._store_trades(deliveries, trades), name="processor-insert")
        self._storing.add(task)
        task.add_done_callback(self._storing.discard)
        return task

    async def _apply_stage(self, stored: asyncio.Queue[asyncio.Future[_Stored] | None]) -> None:
        while (item := await stored.get()) is not None:
            try:
                await self._apply_stored(await item)
            finally:
                stored.task_done()

    def _caught_up(self, deliveries: Sequence[Delivery]) -> bool:
        """True when the bus is drained or what was just read is fresh: only then may the clock close
        bars. While a backlog is worked off (after a restart or an outage) its trades were received long
        ago and are not late; event time alone closes bars then. A delivery's trades are in receipt
        order, so its last trade is its newest."""
        newest = max((d.trades[-1].ts_recv for d in deliveries if d.trades), default=None)
        return newest is None or self._clock.now_ns() - newest <= self._grace_ns + CAUGHT_UP_SLACK_NS

    async def process(self, deliveries: Sequence[Delivery]) -> None:
        """Store, aggregate and acknowledge one read's worth of deliveries (both stages, in turn)."""
        for group in batches(deliveries, self._store_batch):
            trades = [trade for delivery in group for trade in delivery.trades]
            await self._warm_up_symbols(self._unseen_symbols(trades))
            await self._apply_stored(await self._store_trades(group, trades))

    async def _store_trades(self, deliveries: Sequence[Delivery], trades: list[Trade]) -> _Stored:
        traces = [d.trace for d in deliveries]
        attributes = {"trades": len(trades), "deliveries": len(deliveries)}
        with tracing.continue_traces(traces, "processor.store_trades", attributes) as span:
            events = [event for delivery in deliveries for event in delivery.events]
            if events:
                try:
                    await self._retry("insert_coverage", self._store.insert_coverage, events)
                except RejectedData as exc:
                    await self._set_aside(deliveries[0], [], f"coverage refused: {exc}")
            try:
                new_trades = await self._retry("insert_trades", self._store.insert_trades, trades)
            except RejectedData:
                new_trades = await self._store_each_apart(deliveries, trades)
            if len(new_trades) < len(trades):
                self._count_duplicates(trades, new_trades)
            if span is not None and span.is_recording():
                span.set_attribute("new_trades", len(new_trades))
                self._log.debug("stored {} trades of {} deliveries", len(new_trades), len(deliveries))
            return _Stored(deliveries, new_trades, events)

    async def _store_each_apart(self, deliveries: Sequence[Delivery], trades: list[Trade]) -> list[Trade]:
        """The store refused something in `trades`: halve the batch until each refused trade is alone,
        store all the others, and set the refused ones aside as dead letters (not retried: the same
        data would be refused again). Returns the new trades among those stored, in order."""
        origin = {id(trade): delivery for delivery in deliveries for trade in delivery.trades}
        new: list[Trade] = []
        pending = [trades]
        while pending:
            part = pending.pop(0)
            try:
                new += await self._retry("insert_trades", self._store.insert_trades, part)
            except RejectedData as exc:
                if len(part) > 1:
                    half = len(part) // 2
                    pending[:0] = [part[:half], part[half:]]
                else:
                    await self._set_aside(origin[id(part[0])], part, f"store refused: {exc}")
        return new

    async def _set_aside(self, delivery: Delivery, trades: list[Trade], reason: str) -> None:
        letter = DeadLetter(delivery.stream, delivery.delivery_id, reason[:500], self._clock.now_ns(), trades)
        await self._retry("dead_letter", self._bus.dead_letter, [letter])

    async def _apply_stored(self, stored: _Stored) -> None:
        """Aggregate what was stored, store the bars it closed, acknowledge; then close bars on the clock
        if the bus is caught up."""
        if stored.deliveries:
            traces = [d.trace for d in stored.deliveries]
            attributes = {"trades": len(stored.new_trades), "deliveries": len(stored.deliveries)}
            with tracing.continue_traces(traces, "processor.apply", attributes):
                await self._apply_deliveries(stored)
        if self._caught_up(stored.deliveries):
            await self.close_due()
        if self._ended and not stored.deliveries:  # a tick: the bus was drained when its read began
            await self._close_ended(stored.read_at)

    async def _close_ended(self, drained_at: float) -> None:
        """Close the open bars of each exchange whose source ended before the bus was found drained (a
        tick read earlier, still queued behind batches, says nothing about trades published since)."""
        for exchange in sorted(e for e, ended_at in self._ended.items() if ended_at < drained_at):
            del self._ended[exchange]
            bars = self._aggregator.close_all(exchange)
            if bars:
                await self._retry("store_bars", self._persist, self._finish(bars))
            self._log.info("source of {} ended: closed its {} open bars", exchange, len(bars))

    async def _apply_deliveries(self, stored: _Stored) -> None:
        closed = self._apply(stored.new_trades)
        if stored.events:
            closed += self._finish(self._coverage.apply(stored.events, time.monotonic()))
        await self._retry("store_bars", self._persist, closed)
        await self._retry("mark_incomplete", self._revise)
        await self._retry("ack", self._bus.ack, stored.deliveries)

    def _count_duplicates(self, trades: Sequence[Trade], new_trades: Sequence[Trade]) -> None:
        """Trades the store already had (a redelivery after a crash, a repeated backfill): counted and
        logged, never silently dropped."""
        dropped = Counter((t.exchange, t.symbol) for t in trades)
        dropped.subtract((t.exchange, t.symbol) for t in new_trades)
        self._report_per_symbol(
            dropped,
            self._metrics.trades_duplicate,
            "{} trades were already stored; not applied again",
            "INFO",
        )

    def _report_per_symbol(
        self, counts: Counter[tuple[str, str]], metric: PromCounter, message: str, level: str
    ) -> None:
        """Add each symbol's count to `metric` and log `message` (formatted with the count) for it."""
        for (exchange, symbol), count in counts.items():
            if count:
                metric.labels(exchange, symbol).inc(count)
                self._log.log(level, message, count, exchange=exchange, symbol=symbol)

    async def close_due(self) -> None:
        """Close bars whose end plus grace has passed on the clock (a quiet market), after lifting holds
        that lasted too long."""
        expired = self._finish(self._coverage.expire(time.monotonic()))
        if expired:
            await self._retry("store_bars", self._persist, expired)
        now = self._clock.now_ns()
        bars = self._aggregator.close_due(now, await self._live_symbols(now))
        if bars:
            await self._retry("store_bars", self._persist, self._finish(bars))

    async def _live_symbols(self, now: int) -> set[tuple[str, str]] | None:
        """The symbols whose collector says, freshly, that their feed is streaming or quiet: only their
        bars close on the clock. A feed that is down or repairing may still deliver trades of those bars.
        None (no feed board, as in tests of the processor alone): every symbol."""
        if self._feeds is None:
            return None
        if now - self._feeds_read_at >= FEED_READ_INTERVAL_NS:
            try:
                self._feed_statuses = await self._feeds.feeds()
            except (BusError, CircuitOpenError, StorageError, OSError) as exc:
                self._log.warning("feed board unreadable, no bar closes on the clock: {}", exc)
                return set()
            self._feeds_read_at = now
        statuses = self._feed_statuses
        live = {
            (status.exchange, status.symbol): status
            for status in statuses
            if status.state in LIVE_FEEDS and now - status.updated_ns <= FEED_FRESH_NS
        }
        for key in self._aggregator.unsettled():
            status = live.get(key)
            if status is not None and status.last_receive_ns < self._warmed_at.get(key, 0):
                self._aggregator.settle(*key)  # a live feed that has received nothing since the warm-up
        return set(live)

    def _apply(self, trades: Sequence[Trade]) -> list[ClosedBar]:
        tally = self._quality.check_trades(trades)
        self._record_quality(tally)
        aggregated = trades
        if tally.future:  # stored and counted, but an event time from a clock far ahead would move the
            rejected = set(map(id, tally.future))  # watermark and close the open bars early
            self._log.warning("{} trades ahead of their receive time not aggregated", len(rejected))
            aggregated = [trade for trade in trades if id(trade) not in rejected]
        result = self._aggregator.add_many(aggregated)
        self._report_per_symbol(
            Counter((item.trade.exchange, item.trade.symbol) for item in result.late),
            self._metrics.late_trades,
            "{} trades arrived after their bar closed; stored, the bar is now incomplete",
            "WARNING",
        )
        self._revise_later(result.late)
        self._report_per_symbol(
            Counter((trade.exchange, trade.symbol) for trade in result.unreadable),
            self._metrics.trades_unreadable,
            "{} stored trades have a price or size that is not a plain decimal: left out of bars",
            "ERROR",
        )
        for exchange, count in Counter(map(attrgetter("exchange"), trades)).items():
            self._metrics.trades_processed.labels(exchange).inc(count)
        self.trades_applied += len(trades)
        return self._finish(result.closed)

    def _revise_later(self, late: Iterable[LateTrade]) -> None:
        """The closed bars late trades belong to are marked incomplete (by _revise)."""
        for item in late:
            trade = item.trade
            for timeframe in item.timeframes:
                start = bucket_start(trade.ts_event, timeframe_ns(timeframe))
                self._revisions.add((trade.exchange, trade.symbol, timeframe, start))

    def _aggregable(self, trades: list[Trade]) -> list[Trade]:
        """Stored trades replayed at a warm-up, less those the quality check kept out of bars live."""
        ahead = self._quality.ahead
        return [trade for trade in trades if not ahead(trade)]

    def _finish(self, bars: Iterable[Bar]) -> list[ClosedBar]:
        """Indicators, features and quality checks on closed bars (in close order)."""
        finished: list[ClosedBar] = []
        for bar in bars:
            key = bar_key(bar)
            engine = self._engines.get(key) or self._engines.setdefault(key, IndicatorEngine())
            if engine.accept(bar):
                high, low, close = float(bar.high), float(bar.low), float(bar.close)
                for name, indicator in engine.indicators.items():
                    started = time.perf_counter()
                    indicator.update(high, low, close)
                    self._metrics.indicator_calculation_duration.labels(name).observe(
                        time.perf_counter() - started
                    )
            features = self._compute_features(key, bar)
            finished.append(ClosedBar(bar=bar, indicators=engine.snapshot(), features=features))
        if finished:
            self._record_quality(self._quality.check_bars(item.bar for item in finished))
        return finished

    def _compute_features(self, key: BarKey, bar: Bar) -> Features:
        calculator = self._features.get(key) or self._features.setdefault(key, FeatureCalculator())
        started = time.perf_counter()
        features = calculator.update(bar)
        self._metrics.feature_calculation_duration.observe(time.perf_counter() - started)
        self._metrics.features_calculated.inc()
        return features

    def _record_quality(self, tally: QualityTally) -> None:
        checks = self._metrics.data_quality_checks
        for check, count in tally.passed.items():
            checks.labels(check, "passed").inc(count)
        for check, count in tally.failed.items():
            checks.labels(check, "failed").inc(count)
        for (exchange, symbol, anomaly), count in tally.anomalies.items():
            self._metrics.data_anomalies_detected.labels(exchange, symbol, anomaly).inc(count)
        for exchange, symbol in tally.symbols:
            self._metrics.data_quality_score.labels(exchange, symbol).set(
                self._quality.score(exchange, symbol)
            )

    async def _revise(self) -> None:
        """Stored bars that late trades belong to become incomplete."""
        if not self._revisions:
            return
        revised = await self._store.mark_incomplete(sorted(self._revisions))
        self._revisions.clear()
        for exchange, _, timeframe, _ in revised:  # a bar already incomplete is not counted again
            self._metrics.bars_coverage_revised.labels(exchange, timeframe).inc()

    async def _persist(self, closed: Sequence[ClosedBar]) -> None:
        if not closed:
            return
        with tracing.trace_operation("processor.store_bars", {"bars": len(closed)}) as span:
            if span is not None and span.is_recording():
                for item in closed[:MAX_BAR_EVENTS]:
                    span.add_event("bar_closed", _bar_attributes(item.bar))
                self._log.debug("storing {} closed bars", len(closed))
            await self._store.upsert_bars(closed)
            now = self._clock.now_ns()
            for item in closed:
                bar = item.bar
                self._metrics.bars_completed.labels(bar.exchange, bar.symbol, bar.timeframe).inc()
                self._metrics.bars_by_coverage.labels(bar.exchange, bar.timeframe, bar.coverage.value).inc()
                self._metrics.bar_completion_duration.labels(bar.timeframe).observe(
                    max(0, now - bar.close_time) / NS_PER_SECOND
                )
                await self._publish(item)

    async def _publish(self, item: ClosedBar) -> None:
        """Cache and publish a stored bar. Best effort: the bar is already durable in the store."""
        try:
            await self._cache.put_bar(item)
        except (BusError, CircuitOpenError, StorageError, OSError) as exc:
            self._log.warning("could not cache bar: {}", exc, symbol=item.bar.symbol)

    async def _warm_up_known_symbols(self) -> None:
        """Every stored symbol this processor's shard owns: another shard's open bars, rebuilt here, would
        be closed here too and overwrite that shard's complete bars."""
        for info in await self._store.symbols():
            if self._bus.owns(info.exchange, info.symbol):
                await self._warm_up(info.exchange, info.symbol)

    def _unseen_symbols(self, trades: Sequence[Trade]) -> dict[tuple[str, str], Trade]:
        """The first trade of each symbol not warmed up yet."""
        fresh: dict[tuple[str, str], Trade] = {}
        warm = self._warm
        exchange = symbol = ""
        for trade in trades:
            if trade.symbol == symbol and trade.exchange == exchange:
                continue  # runs of one symbol are the rule: one check per run
            exchange, symbol = trade.exchange, trade.symbol
            key = (exchange, symbol)
            if key not in warm and key not in fresh:
                fresh[key] = trade
        return fresh

    async def _warm_up_symbols(self, fresh: dict[tuple[str, str], Trade]) -> None:
        for (exchange, symbol), trade in fresh.items():
            base, _, quote = symbol.partition("-")
            info = SymbolInfo(exchange, symbol, trade.raw_symbol, base, quote)
            await self._retry("upsert_symbols", self._store.upsert_symbols, [info])
            await self._retry("warm_up", self._warm_up, exchange, symbol)

    async def _warm_up(self, exchange: str, symbol: str) -> None:
        """Rebuild the open bars and indicator state of one symbol from the store, by event time: each
        timeframe's bars up to its newest stored one are closed; the open bars of coarser timeframes are
        merged from stored finer bars where that is exact, and the stored trades after the newest closed
        bar are replayed (see BarAggregator.warm_up_plan)."""
        if (exchange, symbol) in self._warm:
            return
        for timeframe in self._timeframes:
            key = (exchange, symbol, timeframe)
            history = await self._store.bars(exchange, symbol, timeframe, limit=WARM_UP_BARS)
            if history:
                last = history[-1].bar
                self._aggregator.mark_closed(exchange, symbol, timeframe, last.close_time, last.max_sequence)
            engine = self._engines.setdefault(key, IndicatorEngine())
            engine.warm_up(item.bar for item in history)
            features = self._features.setdefault(key, FeatureCalculator())
            for item in history:
                features.update(item.bar)
        since = await self._restore_open_bars(exchange, symbol)
        replayed, reopened = 0, list[Bar]()
        async for page in self._in_arrival_order(self._stored_trades(exchange, symbol, since or 0)):
            replayed += len(page)
            result = self._aggregator.add_many(self._aggregable(page))
            reopened.extend(result.closed)
            self._revise_later(result.late)  # late before the restart too: counted then
        if self._feeds is not None:  # without a feed board nothing tells when a backlog is through
            self._aggregator.replayed(exchange, symbol)
            self._warmed_at[(exchange, symbol)] = self._clock.now_ns()
        self._warm.add((exchange, symbol))
        if reopened:
            await self._persist(self._finish(reopened))
        self._log.info(
            "warmed up from {} stored trades, {} bars re-closed",
            replayed,
            len(reopened),
            exchange=exchange,
            symbol=symbol,
        )

    async def _restore_open_bars(self, exchange: str, symbol: str) -> int | None:
        """Merge stored finer bars into the open coarser ones where no stored trade is missing from them;
        returns the event time from which stored trades must be replayed (None: all of them)."""
        plan = self._aggregator.warm_up_plan(exchange, symbol)
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
            self._aggregator.restore(exchange, symbol, timeframe, bars)
        return plan.replay_from_ns

    async def _in_arrival_order(self, pages: AsyncIterator[list[Trade]]) -> AsyncIterator[list[Trade]]:
        """Stored trades (pages by event time) in the order they first arrived, so that a warm-up closes
        bars where the run before the restart did: a trade that arrived after its bar had closed (late)
        must not be replayed into it. Arrival order is the venue's sequence where every trade has one (the
        collector hands trades on in sequence order, repaired ones included), else receive time. Up to
        ARRIVAL_ORDER_LIMIT trades are sorted; a longer replay stays in event-time order (logged)."""
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
            if all(trade.sequence is not None for trade in held):
                held.sort(key=_by_sequence)
            else:
                held.sort(key=_by_receipt)
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

    async def _retry(
        self, operation: str, fn: Callable[..., Awaitable[T]], *args: object, **kwargs: object
    ) -> T:
        """Run an I/O step until it succeeds: outages are waited out, never skipped."""
        delay = 0.2
        while True:
            try:
                return await fn(*args, **kwargs)
            except RETRYABLE as exc:
                if time.monotonic() > self._give_up_at:
                    raise ShutdownAbandoned(f"{operation} still failing at shutdown: {exc}") from exc
                self._log.warning(
                    "{} failed, retrying in {:.1f}s: {}", operation, delay, exc, operation=operation
                )
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, MAX_RETRY_DELAY_S)


def _by_sequence(trade: Trade) -> int:
    return trade.sequence  # type: ignore[return-value]  # only called when every trade has one


def _by_receipt(trade: Trade) -> int:
    return trade.ts_recv


MAX_BAR_EVENTS = 50  # bars named on one processor.store_bars span


def _bar_attributes(bar: Bar) -> dict[str, str | int]:
    return {
        "exchange": bar.exchange,
        "symbol": bar.symbol,
        "timeframe": bar.timeframe,
        "open_time_ns": bar.open_time,
        "close_time_ns": bar.close_time,
        "coverage": bar.coverage.value,
        "trades": bar.trade_count,
    }
