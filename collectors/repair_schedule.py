"""When the collector repairs: the background retry of gaps still missing, and its delays.

A gap found live is repaired at once by `Admission` (in a task of the session's repair scope); what that
could not recover stays missing in the `GapTracker`. `PendingRetry` passes over those gaps again, with
`GapRepair.retry_pending`, every `RetryDelay` seconds: back to the initial pause after a pass that went
through, doubled after a failed one up to the maximum, and never shorter than a Retry-After the venue
asked for. A pass still running at stop is cancelled (its gaps stay open for the next run).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from loguru import logger

from collectors.admission import Admission
from collectors.outbox import Outbox
from collectors.repair import GapRepair
from collectors.session_metrics import INTERNAL, SessionMetrics
from collectors.stopping import Stopping
from core.types import CoverageEvent, Trade


class RetryDelay:
    """The pause before the next pass (seconds): `initial` after a pass that went through, doubled after
    each failed one up to `maximum`, at least the Retry-After (`blocked_for`) the venue asked for."""

    def __init__(self, initial: float, maximum: float) -> None:
        self._initial = initial
        self._maximum = maximum
        self.current = initial

    def after(self, ok: bool, blocked_for: float = 0.0) -> float:
        """The pause after a pass that went through (`ok`) or failed."""
        delay = self._initial if ok else min(self.current * 2, self._maximum)
        self.current = max(delay, blocked_for)
        return self.current


class PendingRetry:
    """The background retry loop (see the module docstring), until the stop. `sleep` is injectable so
    that tests run the schedule on a fake clock."""

    def __init__(
        self,
        repair: GapRepair,
        admission: Admission,
        outbox: Outbox,
        metrics: SessionMetrics,
        stopping: Stopping,
        *,
        initial: float,
        maximum: float,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._repair = repair
        self._admission = admission
        self._outbox = outbox
        self._metrics = metrics
        self._stopping = stopping
        self._delay = RetryDelay(initial, maximum)
        self._sleep = sleep
        self._log = logger.bind(component="collector", exchange=metrics.exchange)

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        delay = self._delay.current
        while True:
            await self._stopping.pause(delay, self._sleep)
            if self._stopping.is_set():
                return
            ok = await self._pass()
            delay = self._delay.after(ok, self._repair.take_blocked_for())

    async def _pass(self) -> bool:
        """One pass over the pending gaps; False when a backfill failed (back off before the next)."""
        try:
            ok = await self._stopping.until(
                self._repair.retry_pending(self._recovered, self._events, skip=self._admission.repairing)
            )
        # The top of the supervised retry loop: a bug must not end the retries. Counted and logged, then
        # retried later; CancelledError (not an Exception) goes through.
        except Exception as exc:  # noqa: BLE001
            self._metrics.error(INTERNAL)
            self._log.opt(exception=exc).error("gap retry failed unexpectedly")
            return False
        return ok is not False

    async def _recovered(self, trades: list[Trade]) -> None:
        """Trades the retry recovered: on to the outbox (shed like any when it is full)."""
        self._admission.take_recovered(trades)

    async def _events(self, events: list[CoverageEvent]) -> None:
        self._outbox.put_events(events)
