"""Gap repair for the collector session: REST backfill now, or pending and retried later (bounded).

A gap found in the live stream is repaired before the newer trade is published. When the backfill
fails (circuit open, HTTP error, rate limit) the ids stay missing in the `GapTracker` and
`retry_pending` tries again from the session's background loop; after `max_attempts` failed passes, or
when a symbol has too many open gaps, the ids are abandoned loudly (error log + `gap_abandoned`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from loguru import logger

from collectors.adapter import Gap
from collectors.backfill import TradeBackfill
from collectors.gaps import GapTracker
from collectors.session_metrics import (
    BACKFILL_FAILED,
    SessionMetrics,
)
from core.errors import PlatformError, RateLimitedError
from core.types import Trade


class GapRepair:
    """Fetches the missing trades of gaps; `rest_blocked_for` (seconds) reports a Retry-After seen."""

    def __init__(
        self,
        tracker: GapTracker,
        backfiller: TradeBackfill | None,
        metrics: SessionMetrics,
        *,
        exchange: str,
        max_attempts: int = 20,
    ) -> None:
        self._tracker = tracker
        self._backfiller = backfiller
        self._metrics = metrics
        self._max_attempts = max_attempts
        self._attempts: dict[tuple[str, int], int] = {}
        self._log = logger.bind(component="collector", exchange=exchange)
        self.rest_blocked_for = 0.0

    async def repair(self, gap: Gap) -> list[Trade]:
        """Count a gap just found and return its trades recovered now (possibly none)."""
        self._metrics.gap(gap.raw_symbol, gap.size)
        self._log.warning(
            "gap in {}: sequence {}..{} ({} missing)", gap.raw_symbol, gap.first, gap.last, gap.size
        )
        recovered = await self._fetch(gap)
        if recovered is None:
            return []
        self._log.info("backfilled {}/{} trades of {}", len(recovered), gap.size, gap.raw_symbol)
        return recovered

    async def retry_pending(self, publish: Callable[[list[Trade]], Awaitable[None]]) -> bool:
        """One pass over the pending gaps; False when a backfill failed (back off before the next)."""
        for gap in self._tracker.drain_evicted():
            self._abandon(gap, "too many open gaps")
        for gap in self._tracker.missing():
            recovered = await self._fetch(gap)
            if recovered is None:
                self._count_attempt(gap)
                return False
            if recovered:
                self._log.info("late backfill: {} trades of {}", len(recovered), gap.raw_symbol)
                await publish(recovered)
            if any(
                g.first <= gap.last and g.last >= gap.first for g in self._tracker.missing(gap.raw_symbol)
            ):
                self._count_attempt(gap)  # the exchange did not have them all (yet)
        return True

    async def _fetch(self, gap: Gap) -> list[Trade] | None:
        """Trades of `gap` that are still missing; None when the backfill failed."""
        if self._backfiller is None:
            self._metrics.error(BACKFILL_FAILED)
            self._log.error("no REST backfiller: gap {} stays pending", gap)
            return None
        try:
            fetched = await self._backfiller.fetch_gap(gap)
        except PlatformError as exc:
            self._metrics.error(BACKFILL_FAILED)
            self._log.warning("backfill of {} {}..{} failed: {}", gap.raw_symbol, gap.first, gap.last, exc)
            if isinstance(exc, RateLimitedError):
                self.rest_blocked_for = max(self.rest_blocked_for, exc.retry_after)
            return None
        fill = self._tracker.fill
        return [t for t in fetched if t.sequence is not None and fill(t.raw_symbol, t.sequence, t.ts_event)]

    def _count_attempt(self, gap: Gap) -> None:
        key = (gap.raw_symbol, gap.last)
        self._attempts[key] = attempts = self._attempts.get(key, 0) + 1
        if attempts >= self._max_attempts:
            self._abandon(gap, f"{attempts} failed attempts")

    def _abandon(self, gap: Gap, why: str) -> None:
        dropped = self._tracker.abandon(gap)
        self._attempts.pop((gap.raw_symbol, gap.last), None)
        self._metrics.abandoned(gap.raw_symbol, dropped)
        self._log.error(
            "giving up on {} trades {}..{} of {} ({})", dropped, gap.first, gap.last, gap.raw_symbol, why
        )
