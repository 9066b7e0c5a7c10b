"""TradeBus on Redis Streams: one stream per (exchange, symbol), one consumer group of processors.

Publishing: publish() appends to a bounded local buffer; a flusher task owned by the bus XADDs one
entry per (stream, batch of up to `batch_size` trades), all in one pipeline (Redis costs ~15 us of client
CPU per command, so per-trade commands would cap throughput). When the buffer holds
`max_pending_trades`, or a stream's backlog (entries not yet acknowledged, since acknowledged ones are
deleted) exceeds `max_stream_entries`, publishers wait: nothing is dropped. While Redis is down the
flusher keeps the buffer and retries with backoff through the "redis" circuit breaker. A pipeline
that failed half-way may be re-sent: delivery is at-least-once and the store de-duplicates.

Consuming: a publisher adds each stream it creates to the set `{prefix}:streams`. A consumer checks the
set's size (SCARD) at every read and lists it again when it grew, so a new symbol's first trades are
read at once; every `discovery_interval_s` it also SCANs for streams, which finds those the set missed (a
publisher that lost its registration to a Redis flush). Streams are filtered by shard
(crc32(stream) % shard_count), so each symbol's bars stay in one processor. read() returns, in order of
preference: entries claimed from other consumers idle longer than `claim_idle_s` (a crashed processor's
work), this consumer's own pending entries (re-delivery after its own crash: a new bus with the same
consumer name), then new entries. After a failed read (Redis down mid-read: a reply lost on its way
leaves entries pending that this consumer never received) its own pending entries are walked again,
skipping those handed out and not yet acknowledged. ack() is XACK + XDEL, which keeps Redis memory
bounded (so one consumer group per stream prefix).
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, TypeVar

from loguru import logger
from redis.exceptions import ResponseError

from core.errors import BusError, CircuitOpenError, ParseError
from core.types import BusItem, CoverageEvent, DeadLetter, DeadLetterRecord, Delivery, ResumePoint, Trade
from monitoring.circuit_breaker import CircuitBreaker
from monitoring.metrics import METRICS, PlatformMetrics
from storage.codec import (
    decode_dead_letter,
    decode_events,
    decode_resume,
    decode_trades,
    decode_trades_apart,
    encode_dead_letter,
)
from storage.dead_letters import MAX_DEAD_LETTERS, RAW_PREVIEW_BYTES, report
from storage.dsn import redact_dsn
from storage.redis_link import guarded, redis_breaker, redis_client
from storage.redis_publisher import EVENTS_FIELD, FIELD, TRACE_FIELD, StreamPublisher
from storage.spool import Spool, save_leftover

T = TypeVar("T")
IDLE_POLL_S = 0.1  # how often a consumer that owns no stream yet looks for one
Entry = tuple[bytes, dict[bytes, bytes] | None]


def shard_of(stream: str, shard_count: int) -> int:
    """The shard that owns a stream: crc32 of its key, stable across processes and restarts."""
    return zlib.crc32(stream.encode()) % shard_count


class RedisStreamBus:
    """TradeBus over Redis Streams `{prefix}:trades:{exchange}:{symbol}`, consumer group `group`."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "cryptostock",
        group: str = "processor",
        shard_index: int = 0,
        shard_count: int = 1,
        max_pending_trades: int = 100_000,
        max_stream_entries: int = 50_000,
        flush_interval: float = 0.005,
        batch_size: int = 1000,
        claim_idle_s: float = 30.0,
        discovery_interval_s: float = 2.0,
        metrics: PlatformMetrics = METRICS,
        breaker: CircuitBreaker | None = None,
        spool: Spool | None = None,
        close_drain_s: float = 10.0,
    ) -> None:
        if not 0 <= shard_index < shard_count:
            raise ValueError(f"shard_index {shard_index} is not in [0, {shard_count})")
        self.prefix = prefix
        self.group = group
        self.shard_index = shard_index
        self.shard_count = shard_count
        self.claim_idle_s = claim_idle_s
        self._spool = spool
        self._dead_key = f"{prefix}:dead-letter"
        self._dead_counter = metrics.bus_dead_letters
        self.discovery_interval_s = discovery_interval_s
        self._redis = redis_client(url, f"{prefix}-bus")
        self._registry = f"{prefix}:streams"
        self._breaker = breaker or redis_breaker(BusError, metrics)
        self._publisher = StreamPublisher(
            self._redis,
            self._call,
            stream_prefix=f"{prefix}:trades",
            registry=self._registry,
            resume_key=f"{prefix}:resume",
            open_gaps_key=f"{prefix}:open-gaps",
            max_pending_trades=max_pending_trades,
            max_stream_entries=max_stream_entries,
            flush_interval=flush_interval,
            batch_size=batch_size,
            metrics=metrics,
            close_drain_s=close_drain_s,
        )
        self._streams: list[str] = []
        self._grouped: set[str] = set()
        self._scanned_at = float("-inf")
        self._registered = -1  # the registry's size when last listed
        self._cursors: dict[str, dict[str, str]] = {}  # consumer -> stream -> pending-phase cursor
        self._in_flight: set[tuple[str, str]] = set()  # (stream, entry id) handed out, not acknowledged
        self._acked_during_walk: list[set[tuple[str, str]]] = []  # acks while a pending walk awaits Redis
        self._claimed_at: dict[str, float] = {}
        self._log = logger.bind(component="bus", bus="redis", url=redact_dsn(url), group=group)

    @property
    def breaker(self) -> CircuitBreaker:
        return self._breaker

    @property
    def buffered(self) -> int:
        """Trades accepted by publish() and not yet written to Redis."""
        return self._publisher.buffered

    async def _call(self, what: str, fn: Callable[[], Awaitable[T]]) -> T:
        return await guarded(self._breaker, BusError, what, fn)

    async def publish(self, trades: Sequence[Trade]) -> None:
        """Buffer trades for the flusher; waits (backpressure) while the buffer or a stream is full."""
        await self._publisher.publish(trades)

    async def publish_events(self, events: Sequence[CoverageEvent]) -> None:
        """Buffer coverage events, each after the trades of its stream published before it."""
        await self._publisher.publish_events(events)

    async def flush(self) -> None:
        """Wait until every trade published so far is in Redis (retrying while Redis is down)."""
        await self._publisher.flush()

    async def read(self, consumer: str, *, max_count: int = 100, block_ms: int = 1000) -> list[Delivery]:
        """Deliveries for `consumer`: claimed from dead consumers, then its own pending, then new ones.
        `max_count` bounds entries per stream; each entry carries up to `batch_size` trades."""
        try:
            streams = await self._owned_streams()
            if not streams:
                await asyncio.sleep(min(block_ms / 1000, IDLE_POLL_S))
                return []
            for step in (self._claim_stale, self._read_pending):
                deliveries = await step(consumer, streams, max_count)
                if deliveries:
                    return deliveries
            ids = dict.fromkeys(streams, ">")
            return await self._read_group(consumer, ids, max_count, block_ms or None)
        except BaseException:
            # A reply lost on its way (the connection cut after Redis handed out entries) leaves them
            # pending for this consumer, which never saw them: its pending entries are walked again from
            # the start at the next read (those handed out and not yet acknowledged are skipped).
            self._cursors.pop(consumer, None)
            raise

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Acknowledge and delete the entries; BusError if Redis fails (they stay pending)."""
        by_stream: dict[str, list[str]] = {}
        for d in deliveries:
            by_stream.setdefault(d.stream, []).append(d.delivery_id)
        if by_stream:
            await self._call("ack", lambda: self._ack(by_stream))
            done = [(d.stream, d.delivery_id) for d in deliveries]
            self._in_flight.difference_update(done)
            for acked in self._acked_during_walk:  # a walk's reply may predate this ack
                acked.update(done)

    async def _ack(self, by_stream: dict[str, list[str]]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for stream, ids in by_stream.items():
                pipe.xack(stream, self.group, *ids)
                pipe.xdel(stream, *ids)
            await pipe.execute()

    async def _owned_streams(self) -> list[str]:
        now = time.monotonic()
        registered = int(await self._call("scard", lambda: self._redis.scard(self._registry)))
        scan_due = now - self._scanned_at >= self.discovery_interval_s
        if registered == self._registered and not scan_due:
            return self._streams
        keys = set(await self._call("smembers", self._registered_streams))
        if scan_due:
            keys.update(await self._call("scan", self._scan))
            self._scanned_at = now
        owned = sorted(k for k in keys if shard_of(k, self.shard_count) == self.shard_index)
        for stream in owned:
            if stream not in self._grouped:
                await self._call("xgroup_create", lambda s=stream: self._create_group(s))  # type: ignore[misc]
                self._grouped.add(stream)
        self._streams, self._registered = owned, registered
        return owned

    async def _registered_streams(self) -> list[str]:
        members = await self._redis.smembers(self._registry)
        return [k.decode() if isinstance(k, bytes) else k for k in members]

    async def _scan(self) -> list[str]:
        match = f"{self.prefix}:trades:*"
        return [k.decode() async for k in self._redis.scan_iter(match=match, count=1000, _type="STREAM")]

    async def _create_group(self, stream: str) -> None:
        try:
            await self._redis.xgroup_create(stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def _forget_streams(self) -> None:
        """A stream or group vanished (deleted, flushed): rediscover and recreate groups on the next read."""
        self._grouped.clear()
        self._scanned_at = float("-inf")

    async def _read_pending(self, consumer: str, streams: list[str], max_count: int) -> list[Delivery]:
        """This consumer's unacknowledged entries, once each, walking a cursor per stream from 0, page by
        page until one holds an entry not handed out already (so that entries lost in a reply come before
        newer ones), skipping those handed out or acknowledged meanwhile."""
        cursors = self._cursors.setdefault(consumer, {})
        while ids := {s: cursors.get(s, "0") for s in streams if cursors.get(s) != ">"}:
            acked: set[tuple[str, str]] = set()
            self._acked_during_walk.append(acked)
            try:
                reply = await self._call(
                    "xreadgroup", partial(self._xreadgroup, consumer, ids, max_count, None)
                )
            finally:
                self._acked_during_walk.remove(acked)
            seen: dict[str, list[Entry]] = dict(_stream_entries(reply))
            for stream in ids:
                entries = seen.get(stream)
                cursors[stream] = entries[-1][0].decode() if entries else ">"
            skip = self._in_flight | acked
            unseen = {s: [e for e in got if (s, e[0].decode()) not in skip] for s, got in seen.items()}
            if any(unseen.values()):
                return await self._deliveries(unseen)
        return []

    async def _read_group(
        self, consumer: str, ids: dict[str, str], max_count: int, block_ms: int | None
    ) -> list[Delivery]:
        reply = await self._call("xreadgroup", lambda: self._xreadgroup(consumer, ids, max_count, block_ms))
        return await self._deliveries(dict(_stream_entries(reply)))

    async def _xreadgroup(self, consumer: str, ids: dict[str, str], count: int, block: int | None) -> Any:
        try:
            return await self._redis.xreadgroup(self.group, consumer, ids, count=count, block=block)  # type: ignore[arg-type]
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self._forget_streams()
            return []

    async def _claim_stale(self, consumer: str, streams: list[str], max_count: int) -> list[Delivery]:
        """XCLAIM entries idle longer than `claim_idle_s` that belong to other consumers of the group."""
        now = time.monotonic()
        if now - self._claimed_at.get(consumer, float("-inf")) < min(self.claim_idle_s / 2, 5.0):
            return []
        self._claimed_at[consumer] = now
        idle_ms = int(self.claim_idle_s * 1000)
        claimed = await self._call("xclaim", lambda: self._claim(consumer, streams, max_count, idle_ms))
        if claimed:
            self._log.warning(
                "claimed {} idle entries from other consumers",
                sum(map(len, claimed.values())),
                consumer=consumer,
            )
        return await self._deliveries(claimed)

    async def _claim(
        self, consumer: str, streams: list[str], max_count: int, idle_ms: int
    ) -> dict[str, list[Entry]]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for s in streams:
                pipe.xpending_range(s, self.group, min="-", max="+", count=max_count, idle=idle_ms)
            pending = await pipe.execute(raise_on_error=False)
        mine = consumer.encode()
        claimed: dict[str, list[Entry]] = {}
        for stream, rows in zip(streams, pending, strict=True):
            if isinstance(rows, Exception):
                continue  # NOGROUP on a vanished stream: rediscovered on a later read
            ids = [r["message_id"] for r in rows if r["consumer"] != mine]
            if ids:
                entries = await self._redis.xclaim(stream, self.group, consumer, idle_ms, ids)
                if entries:
                    claimed[stream] = list(entries)  # type: ignore[arg-type]
        return claimed

    async def _deliveries(self, by_stream: dict[str, list[Entry]]) -> list[Delivery]:
        out: list[Delivery] = []
        poison: list[Delivery] = []
        letters: list[DeadLetter] = []
        for stream, entries in by_stream.items():
            for entry_id, fields in entries:
                delivery = Delivery(stream=stream, delivery_id=entry_id.decode(), trades=[])
                letters += _decode_entry(delivery, fields or {})
                (out if delivery.trades or delivery.events else poison).append(delivery)
        if letters:
            await self.dead_letter(letters)
        if poison:
            await self.ack(poison)  # nothing in them could be used: set aside above
        self._in_flight.update((d.stream, d.delivery_id) for d in out)  # handed out only now
        return out

    async def dead_letter(self, letters: Sequence[DeadLetter]) -> None:
        """XADD each to `{prefix}:dead-letter` (capped at about MAX_DEAD_LETTERS), count and log it."""
        if not letters:
            return
        report(letters, self._dead_counter, "redis")

        async def add() -> None:
            async with self._redis.pipeline(transaction=False) as pipe:
                for letter in letters:
                    pipe.xadd(self._dead_key, {b"d": encode_dead_letter(letter)}, maxlen=MAX_DEAD_LETTERS)
                await pipe.execute()

        await self._call("dead_letter", add)

    async def dead_letters(self, limit: int = 100) -> list[DeadLetterRecord]:
        entries = await self._call(
            "dead_letters", lambda: self._redis.xrevrange(self._dead_key, count=max(limit, 0))
        )
        letters = [fields.get(b"d") for _, fields in list(entries or [])[::-1] if fields]
        return [decode_dead_letter(data) for data in letters if isinstance(data, bytes)]

    async def resume_points(self, exchange: str) -> list[ResumePoint]:
        """The newest trade of each of `exchange`'s streams that reached Redis (see ResumeSource)."""
        raw = await self._call("hgetall", lambda: self._redis.hgetall(f"{self.prefix}:resume"))
        points: list[ResumePoint] = []
        for field, value in raw.items():
            name = field.decode() if isinstance(field, bytes) else str(field)
            if not name.startswith(f"{exchange}:"):
                continue
            try:
                points.append(decode_resume(value if isinstance(value, bytes) else value.encode()))
            except ParseError as exc:
                self._log.error("undecodable resume point {!r}: {}", name, exc)
        return points

    async def open_gaps(self, exchange: str) -> list[CoverageEvent]:
        """The gaps of `exchange` its collector published and had not resolved (repaired or abandoned)
        when it stopped, kept in Redis beside the streams (see core.open_gaps)."""
        raw = await self._call("hgetall", lambda: self._redis.hgetall(f"{self.prefix}:open-gaps"))
        gaps: list[CoverageEvent] = []
        for field, value in raw.items():
            name = field.decode() if isinstance(field, bytes) else str(field)
            if not name.startswith(f"{exchange}:"):
                continue
            try:
                gaps += decode_events(value if isinstance(value, bytes) else value.encode())
            except ParseError as exc:
                self._log.error("undecodable open gaps {!r}: {}", name, exc)
        self._publisher.known_open_gaps(gaps)
        return gaps

    def owns(self, exchange: str, symbol: str) -> bool:
        return shard_of(self._publisher.stream_key(exchange, symbol), self.shard_count) == self.shard_index

    async def ping(self) -> bool:
        try:
            return bool(await self._call("ping", self._redis.ping))
        except (BusError, CircuitOpenError):
            return False

    async def close(self, leftover: Sequence[BusItem] = ()) -> None:
        """Flush what publish() accepted (for up to close_drain_s), stop the flusher, close the
        connections. What could not be written, and `leftover` (what a publisher could not hand over), goes
        to the spool; BusError when there is no spool or it cannot be written: those would be lost."""
        unwritten = [*await self._publisher.close(), *leftover]
        await self._redis.aclose()
        save_leftover(self._spool, unwritten, self._log)


def _decode_entry(delivery: Delivery, fields: dict[bytes, bytes]) -> list[DeadLetter]:
    """Fill a delivery from its entry's one field (trades or coverage events); what cannot be decoded
    becomes dead letters: each undecodable trade alone when the rest of the entry decodes."""
    trace = fields.get(TRACE_FIELD)
    if trace:
        delivery.trace = trace.decode("ascii", "replace")
    try:
        if FIELD in fields:
            try:
                delivery.trades = decode_trades(fields[FIELD])
            except ParseError:
                delivery.trades, bad = decode_trades_apart(fields[FIELD])
                return [_letter(delivery, f"undecodable: {why}", raw) for raw, why in bad]
        else:
            delivery.events = decode_events(fields[EVENTS_FIELD])
    except (KeyError, ParseError) as exc:
        raw = (fields.get(FIELD) or fields.get(EVENTS_FIELD) or b"".join(fields.values()))[:RAW_PREVIEW_BYTES]
        return [_letter(delivery, f"undecodable: {type(exc).__name__}: {exc}", raw)]
    return []


def _letter(delivery: Delivery, reason: str, raw: bytes) -> DeadLetter:
    return DeadLetter(delivery.stream, delivery.delivery_id, reason[:500], time.time_ns(), raw=raw)


def _stream_entries(reply: Any) -> list[tuple[str, list[Entry]]]:
    """XREADGROUP's reply as (stream, entries): a list of pairs (RESP2) or a dict."""
    items = reply.items() if isinstance(reply, dict) else (reply or [])
    out: list[tuple[str, list[Entry]]] = []
    for name, entries in items:
        out.append((name.decode() if isinstance(name, bytes) else str(name), list(entries)))
    return out
