"""Gap repair for the collector session: REST backfill now, or pending and retried later (bounded).

A gap found in the live stream is repaired before the newer trade is published. When the backfill
fails (circuit open, HTTP error, rate limit) the sequence numbers stay missing in the `GapTracker` and
`retry_pending` tries again from the session's background loop; after `max_attempts` failed passes, or
when a symbol has too many open gaps, they are abandoned loudly (error log + `gap_abandoned`).

Every outcome is also a `CoverageEvent` for the bus: REPAIRED when a gap's trades were all recovered
(published after them), GAP when a gap stays open (published before the newer trade, so that the
processor holds the symbol's bars), ABANDONED when it is given up.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from typing import NamedTuple

from loguru import logger

from collectors.adapter import Gap
from collectors.backfill import TradeBackfill
from collectors.gaps import GapTracker
from collectors.session_metrics import (
    BACKFILL_FAILED,
    LOOK_BACK_CUT,
    SessionMetrics,
)
from core.clock import Clock, SystemClock
from core.errors import PlatformError, RateLimitedError
from core.types import CoverageEvent, CoverageKind, Trade
from monitoring import tracing

Publish = Callable[[list[Trade]], Awaitable[None]]


class Outage(NamedTuple):
    """A time a symbol of a venue without a sequence was not watched: from the newest trade seen before
    (after_ns) to the first trade seen after (before_ns), event times in ns."""

    raw_symbol: str
    after_ns: int
    before_ns: int


PublishEvents = Callable[[list[CoverageEvent]], Awaitable[None]]


def _nothing(_: str) -> bool:
    return False


class GapRepair:
    """Fetches the missing trades of gaps; `take_blocked_for()` reports a Retry-After seen."""

    def __init__(
        self,
        tracker: GapTracker,
        backfiller: TradeBackfill | None,
        metrics: SessionMetrics,
        *,
        exchange: str,
        canonical: dict[str, str],
        max_attempts: int = 20,
        clock: Clock | None = None,
    ) -> None:
        self._exchange = exchange
        self._canonical = canonical
        self._clock = clock or SystemClock()
        self._tracker = tracker
        self._backfiller = backfiller
        self._metrics = metrics
        self._max_attempts = max_attempts
        self._attempts: dict[tuple[str, int], int] = {}
        self._log = logger.bind(component="collector", exchange=exchange)
        self._blocked_for = 0.0

    def take_blocked_for(self) -> float:
        """The longest Retry-After (seconds) the venue asked for since the last call (0: none)."""
        blocked_for, self._blocked_for = self._blocked_for, 0.0
        return blocked_for

    async def repair(self, gap: Gap) -> tuple[list[Trade], CoverageEvent]:
        """Count a gap just found; its trades recovered now (possibly none) and the event saying so:
        REPAIRED when they are all there, else GAP (the rest stays pending)."""
        self._metrics.gap(gap.raw_symbol, gap.size)
        self._log.warning(
            "gap in {}: sequence {}..{} ({} missing)",
            gap.raw_symbol,
            gap.first,
            gap.last,
            gap.size,
            event_type="trade_gap",
            symbol=gap.raw_symbol,
            first_sequence=gap.first,
            last_sequence=gap.last,
            missing=gap.size,
        )
        recovered = await self._fetch(gap) or []
        if recovered:
            self._log.info(
                "backfilled {}/{} trades of {}",
                len(recovered),
                gap.size,
                gap.raw_symbol,
                event_type="backfill",
                symbol=gap.raw_symbol,
                recovered=len(recovered),
                missing=gap.size,
            )
        if len(recovered) == gap.size:
            return recovered, self.event(gap, CoverageKind.REPAIRED, len(recovered), "repaired at once")
        return recovered, self.event(gap, CoverageKind.GAP, gap.size - len(recovered), "repair pending")

    async def retry_pending(
        self,
        publish: Publish,
        publish_events: PublishEvents,
        *,
        skip: Callable[[str], bool] = lambda _: False,
    ) -> bool:
        """One pass over the pending gaps (not those of symbols `skip` names: a repair runs on them now);
        False when a backfill failed (back off before the next)."""
        for gap in self._tracker.drain_evicted():
            await publish_events([self._abandon(gap, "too many open gaps")])
        for gap in self._tracker.missing():
            if skip(gap.raw_symbol):
                continue
            recovered = await self._fetch(gap)
            if recovered is None:
                if self._count_attempt(gap):
                    await publish_events([self._abandon(gap, f"{self._max_attempts} failed attempts")])
                return False
            if recovered:
                self._log.info(
                    "late backfill: {} trades of {}",
                    len(recovered),
                    gap.raw_symbol,
                    event_type="backfill",
                    symbol=gap.raw_symbol,
                    recovered=len(recovered),
                    missing=gap.size,
                )
                await publish(recovered)
            if not any(
                g.first <= gap.last and g.last >= gap.first for g in self._tracker.missing(gap.raw_symbol)
            ):
                await publish_events([self.event(gap, CoverageKind.REPAIRED, gap.size, "repaired later")])
            elif self._count_attempt(gap):  # the exchange did not have them all (yet)
                await publish_events([self._abandon(gap, f"{self._max_attempts} attempts")])
        return True

    async def look_back(
        self, outage: Outage, seen: Collection[str], page_size: int
    ) -> tuple[list[Trade], CoverageEvent]:
        """After an outage of a venue without a sequence: the trades its REST still serves from the
        outage (not among `seen` ids), and what can be said of it: REPAIRED when what REST serves reaches
        back past the outage's start (or is all the venue has), else UNVERIFIED from the outage's start to
        the oldest trade REST served: trades may have been lost there and nothing can tell."""
        fetched = await self._recent(outage.raw_symbol)
        if fetched is None:
            return [], self._outage_event(outage, CoverageKind.UNVERIFIED, outage.before_ns, None, "no REST")
        inside = [
            t for t in fetched if outage.after_ns <= t.ts_event <= outage.before_ns and t.trade_id not in seen
        ]
        oldest = fetched[0].ts_event if fetched else outage.before_ns
        if oldest <= outage.after_ns or len(fetched) < page_size:
            return inside, self._outage_event(
                outage, CoverageKind.REPAIRED, outage.before_ns, len(inside), ""
            )
        self._log.warning(
            "{}: the outage began {:.1f}s before the oldest trade REST still serves; that part is unverified",
            outage.raw_symbol,
            (oldest - outage.after_ns) / 1e9,
        )
        detail = f"REST reaches back {len(fetched)} trades only; {len(inside)} recovered after that"
        return inside, self._outage_event(outage, CoverageKind.UNVERIFIED, oldest, None, detail)

    async def _recent(self, raw_symbol: str) -> list[Trade] | None:
        """What REST serves now, None when it cannot be asked (counted, logged). Traced (REST look-back
        span) while tracing is on."""
        if not tracing.ENABLED:
            return await self._recent_now(raw_symbol)
        attributes = {"exchange": self._exchange, "symbol": raw_symbol, "kind": "recent"}
        with tracing.trace_operation("collector.backfill", attributes) as span:
            fetched = await self._recent_now(raw_symbol)
            if span is not None:
                span.set_attribute("recovered", -1 if fetched is None else len(fetched))
            return fetched

    async def _recent_now(self, raw_symbol: str) -> list[Trade] | None:
        if self._backfiller is None:
            return None
        try:
            return await self._backfiller.fetch_recent(raw_symbol)
        except PlatformError as exc:
            self._metrics.error(BACKFILL_FAILED)
            self._log.warning("recent trades of {} not fetched: {}", raw_symbol, exc)
            return None

    def cut_short(self, outage: Outage) -> CoverageEvent:
        """An outage whose look-back was cancelled before REST answered (the collector stopping): its
        whole interval is unverified (counted, logged)."""
        self._metrics.error(LOOK_BACK_CUT)
        self._log.warning(
            "{}: look-back of the outage cut short at stop; {:.1f}s recorded unverified",
            outage.raw_symbol,
            (outage.before_ns - outage.after_ns) / 1e9,
        )
        return self._outage_event(
            outage, CoverageKind.UNVERIFIED, outage.before_ns, None, "look-back cut short at stop"
        )

    def _outage_event(
        self, outage: Outage, kind: CoverageKind, end_ns: int, trades: int | None, detail: str
    ) -> CoverageEvent:
        return CoverageEvent(
            exchange=self._exchange,
            symbol=self._canonical.get(outage.raw_symbol, outage.raw_symbol),
            raw_symbol=outage.raw_symbol,
            kind=kind,
            start_ns=outage.after_ns,
            end_ns=end_ns,
            recorded_ns=self._clock.now_ns(),
            trades=trades,
            detail=detail or "outage looked back over REST",
        )

    def event(self, gap: Gap, kind: CoverageKind, trades: int, detail: str) -> CoverageEvent:
        return CoverageEvent(
            exchange=self._exchange,
            symbol=self._canonical.get(gap.raw_symbol, gap.raw_symbol),
            raw_symbol=gap.raw_symbol,
            kind=kind,
            start_ns=gap.after_ns,
            end_ns=gap.before_ns,
            recorded_ns=self._clock.now_ns(),
            first_sequence=gap.first,
            last_sequence=gap.last,
            trades=trades,
            detail=detail,
        )

    async def _fetch(self, gap: Gap) -> list[Trade] | None:
        """Trades of `gap` that are still missing; None when the backfill failed. Traced (REST backfill
        span) while tracing is on."""
        if not tracing.ENABLED:
            return await self._fetch_now(gap)
        attributes = {
            "exchange": self._exchange,
            "symbol": gap.raw_symbol,
            "first_sequence": gap.first,
            "last_sequence": gap.last,
            "missing": gap.size,
        }
        with tracing.trace_operation("collector.backfill", attributes) as span:
            fetched = await self._fetch_now(gap)
            if span is not None:
                span.set_attribute("recovered", -1 if fetched is None else len(fetched))
            return fetched

    async def _fetch_now(self, gap: Gap) -> list[Trade] | None:
        if self._backfiller is None:
            self._metrics.error(BACKFILL_FAILED)
            self._log.error("no REST backfiller: gap {} stays pending", gap)
            return None
        try:
            fetched = await self._backfiller.fetch_gap(gap)
        except PlatformError as exc:
            self._metrics.error(BACKFILL_FAILED)
            self._log.warning(
                "backfill of {} {}..{} failed: {}",
                gap.raw_symbol,
                gap.first,
                gap.last,
                exc,
                event_type="backfill",
                symbol=gap.raw_symbol,
                missing=gap.size,
                failed=True,
            )
            if isinstance(exc, RateLimitedError):
                self._blocked_for = max(self._blocked_for, exc.retry_after)
            return None
        fill = self._tracker.fill
        return [t for t in fetched if t.sequence is not None and fill(t.raw_symbol, t.sequence, t.ts_event)]

    def _count_attempt(self, gap: Gap) -> bool:
        """Count a failed pass on `gap`; True when that was its last allowed attempt."""
        key = (gap.raw_symbol, gap.last)
        self._attempts[key] = attempts = self._attempts.get(key, 0) + 1
        return attempts >= self._max_attempts

    def _abandon(self, gap: Gap, why: str) -> CoverageEvent:
        dropped = self._tracker.abandon(gap)
        self._attempts.pop((gap.raw_symbol, gap.last), None)
        self._metrics.abandoned(gap.raw_symbol, dropped)
        self._log.error(
            "giving up on {} trades {}..{} of {} ({})", dropped, gap.first, gap.last, gap.raw_symbol, why
        )
        return self.event(gap, CoverageKind.ABANDONED, dropped, why)
