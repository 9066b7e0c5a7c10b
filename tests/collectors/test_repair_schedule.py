"""The background retry's schedule, alone: RetryDelay (pure) and PendingRetry on a fake clock, with the
real GapRepair and GapTracker and a scripted REST backfill."""

from __future__ import annotations

import asyncio

from collectors.adapter import Gap
from collectors.admission import Admission
from collectors.gaps import GapTracker
from collectors.outbox import Outbox
from collectors.repair import GapRepair
from collectors.repair_schedule import PendingRetry, RetryDelay
from collectors.session_metrics import SessionMetrics
from collectors.stopping import Stopping
from core.clock import ManualClock
from core.errors import ExchangeError, RateLimitedError
from core.types import Side, Trade
from monitoring.metrics import PlatformMetrics
from tests.collectors.session_harness import RecordingSink

SYMBOL = "BTCUSDT"


def test_retry_delay_doubles_on_failure_resets_on_success_and_honours_retry_after() -> None:
    delay = RetryDelay(1.0, 8.0)
    assert [delay.after(False) for _ in range(5)] == [2.0, 4.0, 8.0, 8.0, 8.0]
    assert delay.after(True) == 1.0
    assert delay.after(False, blocked_for=30.0) == 30.0  # the venue asked for 30 s
    assert delay.after(False) == 8.0  # then the cap again
    assert delay.after(True, blocked_for=3.0) == 3.0


def trade(sequence: int) -> Trade:
    return Trade("binance", "BTC-USDT", SYMBOL, str(sequence), sequence, "100", "1", Side.BUY,
                 sequence, sequence, backfilled=True)  # fmt: skip


class ScriptedBackfill:
    """Fails (each entry an error) as scripted, then serves the gap."""

    def __init__(self, failures: list[Exception]) -> None:
        self.failures = failures
        self.calls = 0

    async def fetch_gap(self, gap: Gap) -> list[Trade]:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return [trade(s) for s in range(gap.first, gap.last + 1)]

    async def fetch_recent(self, raw_symbol: str) -> list[Trade] | None:
        return None


async def test_pending_gaps_are_retried_on_the_schedule_until_repaired(metrics: PlatformMetrics) -> None:
    clock = ManualClock(1_000)
    tracker = GapTracker()
    tracker.resume(SYMBOL, 10)
    assert isinstance(tracker.observe(SYMBOL, 15), Gap)  # 11..14 missing
    session_metrics = SessionMetrics(metrics, "binance", {SYMBOL: "BTC-USDT"}, 1)
    backfill = ScriptedBackfill([ExchangeError("down"), ExchangeError("down"), RateLimitedError("429", 30.0)])
    repair = GapRepair(tracker, backfill, session_metrics, exchange="binance",
                       canonical={SYMBOL: "BTC-USDT"}, clock=clock)  # fmt: skip
    sink = RecordingSink()
    outbox = Outbox(sink, session_metrics)
    stopping = Stopping()
    admission = Admission(tracker=tracker, repair=repair, outbox=outbox, metrics=session_metrics, clock=clock,
                          spawn=asyncio.create_task, monotonic=lambda: 0.0, gap_checked=True)  # fmt: skip
    pauses: list[float] = []

    async def fake_sleep(seconds: float) -> None:  # the clock moves only here
        pauses.append(seconds)
        clock.advance(int(seconds * 1e9))
        if len(pauses) == 6:
            stopping.set()

    retry = PendingRetry(repair, admission, outbox, session_metrics, stopping, initial=1.0, maximum=4.0,
                         sleep=fake_sleep)  # fmt: skip
    await asyncio.wait_for(retry.run(), 5)
    # the first pause, two failures (doubled), a Retry-After of 30 s, then the repair: back to the first
    assert pauses[:5] == [1.0, 2.0, 4.0, 30.0, 1.0]
    assert backfill.calls == 4 and not tracker.missing()
    outbox.stop()
    await outbox.run()
    assert sink.ids(SYMBOL) == [11, 12, 13, 14]
    assert [e.kind.value for e in sink.events] == ["repaired"]


async def test_a_retry_pass_running_at_stop_ends_and_its_gap_stays_open(metrics: PlatformMetrics) -> None:
    tracker = GapTracker()
    tracker.resume(SYMBOL, 10)
    tracker.observe(SYMBOL, 12)
    session_metrics = SessionMetrics(metrics, "binance", {SYMBOL: "BTC-USDT"}, 1)
    asked = asyncio.Event()

    class Hanging(ScriptedBackfill):
        async def fetch_gap(self, gap: Gap) -> list[Trade]:
            asked.set()
            await asyncio.Event().wait()  # a venue that never answers
            return []

    repair = GapRepair(tracker, Hanging([]), session_metrics, exchange="binance", canonical={})
    outbox = Outbox(RecordingSink(), session_metrics)
    stopping = Stopping()
    admission = Admission(tracker=tracker, repair=repair, outbox=outbox, metrics=session_metrics,
                          clock=ManualClock(0), spawn=asyncio.create_task, monotonic=lambda: 0.0,
                          gap_checked=True)  # fmt: skip
    retry = PendingRetry(repair, admission, outbox, session_metrics, stopping, initial=0.01, maximum=0.01)
    task = asyncio.create_task(retry.run())
    await asyncio.wait_for(asyncio.shield(asked.wait()), 5)
    retry.stop()
    await asyncio.wait_for(task, 1)
    assert [(g.first, g.last) for g in tracker.missing()] == [(11, 11)]
