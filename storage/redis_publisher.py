"""The publishing half of the Redis Streams bus: a bounded local buffer and the flusher task that owns
every XADD (see storage.redis_bus for the design)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, TypeVar

import redis.asyncio as aioredis
from loguru import logger

from core.errors import BusError, CircuitOpenError
from core.open_gaps import OpenGaps
from core.types import BusItem, CoverageEvent, ResumePoint, Trade
from monitoring import tracing
from monitoring.metrics import PlatformMetrics
from storage.backpressure import RoomGate, group_by_symbol
from storage.codec import encode_events, encode_resume, encode_trades

T = TypeVar("T")
Call = Callable[[str, Callable[[], Awaitable[Any]]], Awaitable[Any]]
FIELD = b"t"  # an entry of trades
EVENTS_FIELD = b"e"  # an entry of coverage events
TRACE_FIELD = b"tp"  # W3C traceparent of the publishing span: only while tracing is on and sampled
Positioned = list[tuple[int, CoverageEvent]]  # events of a stream, each after that many buffered trades
MAX_BACKOFF_S = 2.0
CLOSE_DRAIN_S = 10.0


class StreamPublisher:
    """Buffers trades per stream key and writes them in pipelined batches; waits instead of dropping.

    `call(what, fn)` runs one Redis operation through the bus's breaker and error translation.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        call: Call,
        *,
        stream_prefix: str,
        registry: str,
        resume_key: str,
        open_gaps_key: str,
        max_pending_trades: int,
        max_stream_entries: int,
        flush_interval: float,
        batch_size: int,
        metrics: PlatformMetrics,
        close_drain_s: float = CLOSE_DRAIN_S,
    ) -> None:
        if max_pending_trades < 1 or max_stream_entries < 1 or batch_size < 1:
            raise ValueError("max_pending_trades, max_stream_entries and batch_size must be positive")
        self._redis = redis
        self._call = call
        self._prefix = stream_prefix
        self.max_pending_trades = max_pending_trades
        self.max_stream_entries = max_stream_entries
        self.flush_interval = flush_interval
        self.batch_size = batch_size
        self._buffers: dict[str, list[Trade]] = {}
        self._events: dict[str, Positioned] = {}
        self._traces: dict[bytes | str, str] = {}  # stream key -> traceparent of its first traced trades
        self._keys: dict[tuple[str, str], str] = {}
        self._registry = registry
        self._close_drain_s = close_drain_s
        self._resume_key = resume_key
        self._open_gaps_key = open_gaps_key
        self._open_gaps = OpenGaps()  # as kept in Redis (see known_open_gaps)
        self._registered: set[str] = set()  # stream keys this publisher has added to the registry set
        self.buffered = 0
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._published = metrics.bus_published.labels("redis")
        self._gate = RoomGate(metrics.bus_backpressure.labels("redis"))
        self._depth = metrics.bus_queue_depth.labels("redis")
        self._log = logger.bind(component="bus", bus="redis")

    async def publish(self, trades: Sequence[Trade]) -> None:
        self._check_open()
        self._start()
        await self._gate.admit(
            trades,
            room=lambda: self.max_pending_trades - self.buffered,
            take=self._buffer,
            check_open=self._check_open,
        )

    async def publish_events(self, events: Sequence[CoverageEvent]) -> None:
        """Buffer events in order with their streams' trades (an event follows every trade buffered before
        it); never waits for room: events are few."""
        self._check_open()
        self._start()
        for event in events:
            key = self.stream_key(event.exchange, event.symbol)
            position = len(self._buffers.get(key, ()))
            self._events.setdefault(key, []).append((position, event))
        if events:
            self._drained.clear()
            self._wake.set()

    def _check_open(self) -> None:
        if self._closing:
            raise BusError("the Redis bus is closed")

    def stream_key(self, exchange: str, symbol: str) -> str:
        """The Redis stream that carries a symbol's trades."""
        key = self._keys.get((exchange, symbol))
        if key is None:
            key = self._keys[(exchange, symbol)] = f"{self._prefix}:{exchange}:{symbol}"
        return key

    def _buffer(self, trades: Sequence[Trade]) -> None:
        trace = tracing.current_traceparent() if tracing.ENABLED else ""
        for (exchange, symbol), group in group_by_symbol(trades).items():
            key = self.stream_key(exchange, symbol)
            self._buffers.setdefault(key, []).extend(group)
            if trace:
                self._traces.setdefault(key, trace)
        self.buffered += len(trades)
        self._drained.clear()
        self._wake.set()

    async def flush(self) -> None:
        if self.buffered or self._events:
            self._start()
            await self._drained.wait()

    def _start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="redis-bus-flusher")

    async def _run(self) -> None:
        """The flusher: supervised loop, stops once closing and empty."""
        backoff = 0.05
        while True:
            if not self.buffered and not self._events:
                self._drained.set()
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            if self.flush_interval and not self._closing and self.buffered < self.batch_size:
                await asyncio.sleep(self.flush_interval)
            try:
                await self._flush_once()
                backoff = 0.05
            except (BusError, CircuitOpenError) as exc:
                self._log.warning(
                    "flush of {} trades failed, retrying in {:.2f}s: {}", self.buffered, backoff, exc
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
            except Exception:  # noqa: BLE001
                # The top of the one flusher task: if a bug ended it, every later publish would buffer
                # forever. A batch whose write failed is back in the buffer (_flush_once); log and retry.
                # CancelledError (a BaseException) still stops the loop.
                self._log.exception("unexpected flusher error; retrying in {:.2f}s", backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)

    async def _flush_once(self) -> None:
        batch, self._buffers = self._buffers, {}
        events, self._events = self._events, {}
        traces, self._traces = self._traces, {}
        count = sum(len(v) for v in batch.values())
        # The depth gauge moves per flush attempt (every few ms, and on each retry during an outage),
        # not per publish: publish() runs once per websocket frame.
        self._depth.set(self.buffered)
        try:
            lengths = await self._call("xadd", lambda: self._xadd(batch, events, traces))
        except BaseException:
            self._restore(batch, events)
            for key, trace in traces.items():
                self._traces.setdefault(key, trace)
            raise
        self.buffered -= count
        self._published.inc(count)
        self._depth.set(self.buffered)
        self._gate.freed()
        await self._wait_backlog(lengths)

    def _restore(self, batch: dict[str, list[Trade]], events: dict[str, Positioned]) -> None:
        """A failed flush goes back in front of what was published meanwhile, order kept."""
        for key, trades in batch.items():
            newer = self._buffers.get(key)
            self._buffers[key] = trades + newer if newer else trades
        for key in events.keys() | batch.keys():
            shift = len(batch.get(key, ()))
            newer_events = [(position + shift, e) for position, e in self._events.get(key, ())]
            merged = events.get(key, []) + newer_events
            if merged:
                self._events[key] = merged

    async def _xadd(
        self, batch: dict[str, list[Trade]], events: dict[str, Positioned], traces: dict[bytes | str, str]
    ) -> dict[str, int]:
        """XADD the batch (trades in entries of up to batch_size, each event where it was published) and
        XLEN each stream; a stream new to this publisher is also added to the registry set, where
        consumers see it at their next read. A stream with a trace carries it on its trade entries."""
        plan = {
            key: list(self._entries(batch.get(key, []), events.get(key, [])))
            for key in batch.keys() | events.keys()
        }
        unregistered = [key for key in plan if key not in self._registered]
        async with self._redis.pipeline(transaction=False) as pipe:
            for key, entries in plan.items():
                trace = traces.get(key)
                for field, payload in entries:
                    pipe.xadd(
                        key,
                        {field: payload, TRACE_FIELD: trace}
                        if trace and field == FIELD
                        else {field: payload},
                    )
                pipe.xlen(key)
            if unregistered:
                pipe.sadd(self._registry, *unregistered)
            resume = resume_fields(batch)
            if resume:
                pipe.hset(self._resume_key, mapping=resume)
            open_gaps = self._track_open_gaps(pipe, events)
            results = await pipe.execute()
        self._registered.update(unregistered)
        self._open_gaps = open_gaps
        lengths: dict[str, int] = {}
        position = -1
        for key, entries in plan.items():
            position += len(entries) + 1
            lengths[key] = int(results[position])
        return lengths

    def known_open_gaps(self, events: Sequence[CoverageEvent]) -> None:
        """Gaps left open by an earlier run (read back at a start), so that their resolution here
        removes them from Redis."""
        for event in events:
            self._open_gaps.apply(event)

    def _track_open_gaps(self, pipe: Any, events: dict[str, Positioned]) -> OpenGaps:
        """Queue on `pipe` the open gaps of every symbol these events change (field exchange:raw_symbol);
        returns what is open once the pipeline has run."""
        if not events:
            return self._open_gaps
        after = OpenGaps(self._open_gaps.events())
        changed = {
            (event.exchange, event.raw_symbol)
            for positioned in events.values()
            for _, event in positioned
            if after.apply(event)
        }
        for exchange, raw_symbol in changed:
            field, still_open = f"{exchange}:{raw_symbol}", after.of(exchange, raw_symbol)
            if still_open:
                pipe.hset(self._open_gaps_key, field, encode_events(still_open))
            else:
                pipe.hdel(self._open_gaps_key, field)
        return after

    def _entries(self, trades: list[Trade], events: Positioned) -> Iterator[tuple[bytes, bytes]]:
        """(field, payload) of each entry of one stream, in publishing order."""
        start = 0
        for position, event in [*events, (len(trades), None)]:
            for i in range(start, position, self.batch_size):
                chunk = trades[i : min(i + self.batch_size, position)]
                yield FIELD, encode_trades(chunk)
            start = position
            if event is not None:
                yield EVENTS_FIELD, encode_events([event])

    async def _wait_backlog(self, lengths: dict[str, int]) -> None:
        """Hold further flushes while a stream's unacknowledged backlog is over the limit."""
        over = [k for k, n in lengths.items() if n > self.max_stream_entries]
        delay = 0.02
        if over:
            self._log.warning(
                "stream backlog over {} entries on {}; publishers wait", self.max_stream_entries, over
            )
        while over and not self._closing:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
            sizes = await self._call("xlen", functools.partial(self._xlen, over))
            over = [k for k, n in zip(over, sizes, strict=True) if n > self.max_stream_entries]

    async def _xlen(self, keys: list[str]) -> list[int]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.xlen(key)
            return [int(n) for n in await pipe.execute()]

    async def close(self) -> list[BusItem]:
        """Stop accepting, write what is buffered (for up to close_drain_s seconds while Redis is
        unreachable) and return what could not be written, in publishing order (for the spool)."""
        self._closing = True
        self._gate.freed()
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout=self._close_drain_s)
            except TimeoutError:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        return self._leftover()

    def _leftover(self) -> list[BusItem]:
        items: list[BusItem] = []
        for key in self._buffers.keys() | self._events.keys():
            trades = self._buffers.get(key, [])
            start = 0
            for position, event in self._events.get(key, []):
                items += [BusItem(trades=trades[start:position]), BusItem(events=[event])]
                start = position
            items.append(BusItem(trades=trades[start:]))
        self._buffers, self._events, self.buffered = {}, {}, 0
        return [item for item in items if item.trades or item.events]


def resume_fields(batch: dict[str, list[Trade]]) -> dict[Any, Any]:
    """`{exchange}:{raw_symbol}` -> the encoded ResumePoint of each stream's newest trade in a flush (the
    last one published: repaired trades go out before the live trade that revealed their gap)."""
    fields: dict[Any, Any] = {}
    for trades in batch.values():
        if trades:
            t = trades[-1]
            point = ResumePoint(t.exchange, t.raw_symbol, t.trade_id, t.sequence, t.ts_event)
            fields[f"{t.exchange}:{t.raw_symbol}"] = encode_resume(point)
    return fields
