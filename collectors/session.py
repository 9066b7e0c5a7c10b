"""The collector session, for every venue: the parts that collect one exchange's symbols, composed.

- `Connections` (collectors/connection.py): connect, subscribe, keep alive, read frames, watch,
  reconnect, make-before-break successors. Each read's trades go to
- `Admission` (collectors/admission.py): gap checks against the `GapTracker` (where the venue has a
  contiguous sequence; elsewhere the store de-duplicates by trade id), per-symbol holds while a gap is
  repaired by `GapRepair` (collectors/repair.py, REST backfill) in a task of its own, then to
- the `Outbox` (collectors/outbox.py), which one task delivers to the `TradePublisher` (the bus).
- `PendingRetry` (collectors/repair_schedule.py) retries the gaps still missing in the background.

Reading never waits: pings are answered and frames read while the bus is slow or a repair runs. Every
part runs under `core.supervisor.supervise`, which stops them in order within one deadline (options'
`stop_deadline_s`) and stops all of them when one fails: at stop the readers finish (bounded by
`reader_grace_s`), the retry pass and the running repairs end, every held trade is released and the
outbox delivers what it holds; what the bus still refuses then is `unpublished` (the caller spools it).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from loguru import logger

from collectors.adapter import ExchangeAdapter, RepairKind, SequenceKind
from collectors.admission import Admission
from collectors.backfill import TradeBackfill
from collectors.connection import MAX_FRAMES_PER_READ, Connections, split_symbols
from collectors.gaps import GapTracker
from collectors.outbox import Outbox, TradePublisher
from collectors.repair import GapRepair
from collectors.repair_schedule import PendingRetry
from collectors.session_metrics import SessionMetrics
from collectors.session_options import SessionOptions
from collectors.stopping import Stopping, TaskScope
from collectors.transport import WebsocketsConnector, WsConnector
from core.clock import Clock, SystemClock
from core.errors import ConfigError, PlatformError
from core.ports import FeedBoard
from core.supervisor import Part, supervise
from core.types import BusItem, CoverageEvent, ResumePoint
from monitoring.metrics import METRICS, PlatformMetrics

__all__ = ["MAX_FRAMES_PER_READ", "CollectorSession", "SessionOptions", "TradePublisher"]

REPORT_EVERY_S = 0.5  # hold checks and the outbox gauge; metrics flush and feed report on alternate ticks
Located = TypeVar("Located", ResumePoint, CoverageEvent)


class CollectorSession:
    """Collects `raw_symbols` from one exchange into `publisher` until `stop()` (or cancellation).

    `options` holds every setting (times in seconds; see SessionOptions). `resume` and `open_gaps` are
    where the last run left off (points of other exchanges or symbols are ignored). `clock`, `sleep`,
    `rng` and `monotonic` are injectable for tests.
    """

    def __init__(
        self,
        adapter: ExchangeAdapter,
        raw_symbols: Sequence[str],
        *,
        publisher: TradePublisher,
        options: SessionOptions | None = None,
        ws_base_url: str | None = None,
        backfiller: TradeBackfill | None = None,
        metrics: PlatformMetrics = METRICS,
        feed_board: FeedBoard | None = None,
        resume: Sequence[ResumePoint] = (),
        open_gaps: Sequence[CoverageEvent] = (),
        connector: WsConnector | None = None,
        clock: Clock | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        symbols = _listed(adapter, raw_symbols)
        self._adapter, self._feed_board = adapter, feed_board
        self._options = options = options or SessionOptions()
        self._clock = clock = clock or SystemClock()
        self._stop_requested, self._stopping = asyncio.Event(), Stopping()
        self._tracker = GapTracker()
        groups = split_symbols(symbols, adapter.capabilities.symbols_per_connection)
        canonical = {s: adapter.symbol_info(s).symbol for s in symbols}  # type: ignore[union-attr]
        self._metrics = SessionMetrics(metrics, adapter.name, canonical, len(groups))
        self._log = logger.bind(component="collector", exchange=adapter.name)
        repair = GapRepair(
            self._tracker, backfiller, self._metrics, exchange=adapter.name, canonical=canonical,
            max_attempts=options.max_gap_attempts, clock=clock,
        )  # fmt: skip
        self._outbox = Outbox(
            publisher, self._metrics,
            max_trades=options.outbox_max_trades, retry_max=options.publish_retry_max,
        )  # fmt: skip
        # At stop, running repairs get the readers' grace to finish (a cut look-back of a venue without
        # sequence numbers would leave its interval unrecorded), then end.
        self._repairs = TaskScope("repairs", grace=options.reader_grace_s)
        self._admission = self._admit(repair, monotonic)
        self._connections = Connections(
            adapter, groups, url=ws_base_url or adapter.default_ws_url,
            connector=connector or WebsocketsConnector(), options=options, metrics=self._metrics,
            take=self._admission.take, reopened=self._admission.reconnected, stopping=self._stopping,
            clock=clock, sleep=sleep, rng=rng, monotonic=monotonic,
        )  # fmt: skip
        self._retry = PendingRetry(
            repair, self._admission, self._outbox, self._metrics, self._stopping,
            initial=options.gap_retry_initial, maximum=options.gap_retry_max,
        )  # fmt: skip
        self._admission.resume(_ours(resume, adapter.name, symbols))
        self._admission.reopen(_ours(open_gaps, adapter.name, symbols))

    def _admit(self, repair: GapRepair, monotonic: Callable[[], float]) -> Admission:
        caps, options = self._adapter.capabilities, self._options
        return Admission(
            tracker=self._tracker,
            repair=repair,
            outbox=self._outbox,
            metrics=self._metrics,
            clock=self._clock,
            spawn=self._repairs.spawn,
            monotonic=monotonic,
            gap_checked=caps.sequence is SequenceKind.CONTIGUOUS,
            hold_max_trades=options.hold_max_trades,
            hold_max_s=options.hold_max_s,
            max_repairs=options.max_repairs,
            recent_page_size=caps.repair_page_size if caps.repair is RepairKind.RECENT_ONLY else 0,
        )

    @property
    def tracker(self) -> GapTracker:
        return self._tracker

    @property
    def reads(self) -> int:
        """Reads of frames from any connection so far (see `idle`)."""
        return self._connections.reads

    @property
    def idle(self) -> bool:
        """Every trade read so far is on the publisher: none held for a repair, none waiting to be
        published, no gap still to repair.
        A finite source (a replay) whose last frame was sent has been collected to its end once this
        holds and `reads` stands still."""
        return self._admission.idle and self._outbox.idle and self._tracker.missing_count() == 0

    @property
    def unpublished(self) -> list[BusItem]:
        """What the publisher still refused while stopping, in order (for the spool)."""
        return self._outbox.unpublished

    def stop(self) -> None:
        """Stop reading; run() then hands on what it holds, closes its connections and returns."""
        self._stop_requested.set()

    async def run(self) -> None:
        """Collect until stop(); raises what a part failed with (after stopping the others)."""
        self._metrics.running(True)
        self._log.info(
            "collector starting: {} symbols on {} connection(s)",
            sum(len(group) for group in self._connections.groups),
            len(self._connections.groups),
        )
        try:
            await supervise(
                self._parts(), until=self._stop_requested, deadline=self._options.stop_deadline_s,
                owner="collector",
            )  # fmt: skip
        finally:
            # Normally done by the outbox's stop; here too when the parts were cut short (a failure, or
            # the daemon's deadline cancelling this run): held trades then wait in `unpublished`.
            self._admission.release_all()
            self._metrics.flush()
            self._metrics.running(False)
            self._log.info("collector stopped")

    def _parts(self) -> list[Part]:
        """In the order they stop: upstream first, so what one part holds is handed on before the next
        part stops. The repair scope starts before any reader can find a gap (parts start in order)."""
        return [
            Part("connections", self._connections.run, self._connections.stop),
            Part("gap-retry", self._retry.run, self._retry.stop),
            Part("reports", self._report, self._stopping.set),
            Part("repairs", self._repairs.run, self._repairs.stop),
            Part("outbox", self._outbox.run, self._hand_on),
        ]

    def _hand_on(self) -> None:
        """The readers and repairs have ended: every held trade goes on, then the outbox delivers what it
        holds and returns."""
        self._admission.release_all()
        self._outbox.stop()

    async def _report(self) -> None:
        ticks = 0
        while not await self._stopping.wait(REPORT_EVERY_S):
            ticks += 1
            self._admission.check_holds()
            self._metrics.outbox(self._outbox.waiting)
            if ticks % 2:
                self._metrics.flush()
            else:
                await self._report_feeds()

    async def _report_feeds(self) -> None:
        """Every second: each symbol's FeedStatus to the feed_state gauges and the feed board (best effort:
        the next report replaces a lost one)."""
        connected = dict.fromkeys(self._connections.connected(), True)
        missing: dict[str, int] = {}
        for gap in self._tracker.missing():
            missing[gap.raw_symbol] = missing.get(gap.raw_symbol, 0) + gap.size
        # One turn of the loop first: the outbox then takes what a repair queued just now before the
        # status is read, so a feed is never reported repaired before its repaired trades were handed on.
        await asyncio.sleep(0)
        quiet_after_ns = int(self._options.quiet_after * 1e9)
        statuses = self._metrics.feed_statuses(connected, missing, self._clock.now_ns(), quiet_after_ns)
        if self._feed_board is None:
            return
        try:
            await self._feed_board.put_feeds(statuses)
        except PlatformError as exc:
            if self._metrics.should_log("feed_board"):
                self._log.warning("feed status not published: {}", exc)


def _listed(adapter: ExchangeAdapter, raw_symbols: Sequence[str]) -> list[str]:
    """The symbols, each once, in order; ConfigError when there are none or the venue lacks some."""
    symbols = list(dict.fromkeys(raw_symbols))
    if not symbols:
        raise ConfigError("a collector needs at least one symbol")
    unknown = [s for s in symbols if adapter.symbol_info(s) is None]
    if unknown:
        raise ConfigError(f"{adapter.name} does not list symbols {unknown}")
    return symbols


def _ours(items: Sequence[Located], exchange: str, raw_symbols: Sequence[str]) -> list[Located]:
    """The resume points or open gaps of this session's exchange and symbols."""
    wanted = set(raw_symbols)
    return [item for item in items if item.exchange == exchange and item.raw_symbol in wanted]
