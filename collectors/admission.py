"""Admission: what the session does with the trades it has read, without ever waiting.

Where the venue gives a contiguous sequence each trade is checked against the `GapTracker`. A gap starts
a repair in a task of its own (`max_repairs` at once) and holds the symbol: its newer trades wait, in
order, while the repair runs, so that the repaired trades go on the bus before them and no bar closes
without them. A hold is bounded (`hold_max_trades`, `hold_max_s`): past either, the held trades go on,
with a GAP event where each unrepaired gap was (the processor then holds the bars instead), and the
repair goes on; its trades follow when it ends. Everything else goes straight to the outbox.

Trades the outbox refuses (it is full: the bus is down or slow) are not lost silently: where the venue
has a sequence they become missing ranges again, repaired over REST by the background retry once the bus
takes trades, with one GAP event per run of refusals; elsewhere the interval is recorded as unverified.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from loguru import logger

from collectors.adapter import Gap
from collectors.gaps import DUPLICATE, FILLED, NEW, RESTARTED, GapTracker
from collectors.outbox import Outbox
from collectors.repair import GapRepair, Outage
from collectors.session_metrics import SessionMetrics
from core.clock import Clock
from core.types import CoverageEvent, CoverageKind, ResumePoint, Trade

Spawn = Callable[[Coroutine[Any, Any, None]], "asyncio.Task[None] | None"]
Result = tuple[list[Trade], CoverageEvent]
Marker = Gap | Outage  # where a repair's trades belong among a symbol's held trades
REPAIRED = CoverageKind.REPAIRED
RECENT_IDS = 500  # trade ids remembered per symbol of a venue without a sequence: an outage's REST look-back
# is told apart from what was already seen by them


class _Resolved:
    """An event that goes on, among a symbol's held items, right where it stands (a missing sequence
    that arrived live while a repair ran)."""

    __slots__ = ("event",)

    def __init__(self, event: CoverageEvent) -> None:
        self.event = event


class _Hold:
    """One symbol's trades waiting for its repair: in order, each gap (or outage) where the trade that
    revealed it is."""

    __slots__ = ("gaps", "items", "since", "trades")

    def __init__(self, since: float) -> None:
        self.items: list[Trade | Marker | _Resolved] = []
        self.gaps: list[Marker] = []  # for the repair task, in order
        self.trades = 0
        self.since = since


class Admission:
    """Gap checks and per-symbol order while repairs run (see the module docstring)."""

    def __init__(
        self,
        *,
        tracker: GapTracker,
        repair: GapRepair,
        outbox: Outbox,
        metrics: SessionMetrics,
        clock: Clock,
        spawn: Spawn,
        monotonic: Callable[[], float],
        gap_checked: bool,
        hold_max_trades: int = 100_000,
        hold_max_s: float = 10.0,
        max_repairs: int = 4,
        recent_page_size: int = 0,
    ) -> None:
        self._tracker = tracker
        self._repair = repair
        self._outbox = outbox
        self._metrics = metrics
        self._clock = clock
        self._spawn = spawn
        self._monotonic = monotonic
        self._gap_checked = gap_checked
        self._hold_max_trades = hold_max_trades
        self._hold_max_s = hold_max_s
        self._repairs = asyncio.Semaphore(max_repairs)
        self._holds: dict[str, _Hold] = {}
        self._released: set[Marker] = set()  # went on unrepaired: their trades follow when fetched
        self._recent_page_size = recent_page_size
        self._last_ns: dict[str, int] = {}  # venues without a sequence: newest event time seen per symbol
        self._recent_ids: dict[str, deque[str]] = {}
        self._outage_from: dict[str, int] = {}  # symbols whose next trade ends an outage, from when
        self._working: dict[str, int] = {}  # repair tasks per symbol
        self._shedding: set[str] = set()
        self.resume_ns: dict[str, int] = {}
        self._filled_live: list[Trade] = []  # missing sequences that arrived live, to resolve
        self._log = logger.bind(component="collector", exchange=metrics.exchange)

    @property
    def idle(self) -> bool:
        """No symbol's trades are held and no repair is running."""
        return not self._holds and not any(self._working.values())

    def repairing(self, raw_symbol: str) -> bool:
        """True while a repair task works on the symbol (the background retry leaves it alone)."""
        return self._working.get(raw_symbol, 0) > 0

    def seen(self, raw_symbol: str, trade_id: str) -> None:
        """A trade id already handed on (e.g. the resume point's): an outage's look-back leaves it out."""
        self._recent_ids.setdefault(raw_symbol, deque(maxlen=RECENT_IDS)).append(trade_id)

    def resume(self, points: Sequence[ResumePoint]) -> None:
        """Continue each symbol from where the last run left off: its first live trade then reveals what
        was missed meanwhile, repaired like any gap."""
        for point in points:
            self.resume_ns[point.raw_symbol] = point.ts_event
            self.seen(point.raw_symbol, point.trade_id)
            if self._gap_checked and point.sequence is not None:
                self._tracker.resume(point.raw_symbol, point.sequence, point.ts_event)
                self._log.info(
                    "{} resumes after sequence {} (trade {}): what came since is repaired over REST",
                    point.raw_symbol,
                    point.sequence,
                    point.trade_id,
                )

    def reopen(self, events: Sequence[CoverageEvent]) -> None:
        """Gaps the last run left unresolved: missing again, so the background retry repairs them."""
        if not self._gap_checked:
            return
        for event in events:
            if event.first_sequence is None or event.last_sequence is None:
                continue
            gap = Gap(
                event.raw_symbol, event.first_sequence, event.last_sequence, event.start_ns, event.end_ns
            )
            if self._tracker.reopen(gap):
                self._log.info(
                    "{} sequences {}-{} were still missing when the last run stopped: repaired again",
                    event.raw_symbol,
                    event.first_sequence,
                    event.last_sequence,
                )

    def reconnected(self, raw_symbols: Sequence[str]) -> None:
        """A connection carrying these symbols (re)opened: for a venue without a sequence, each symbol's
        next trade ends an outage that REST is asked about (where a trade was seen before it)."""
        if self._gap_checked:
            return
        for raw_symbol in raw_symbols:
            last = self._last_ns.get(raw_symbol, self.resume_ns.get(raw_symbol))
            if last is not None:
                self._outage_from[raw_symbol] = last

    def take(self, trades: list[Trade]) -> None:
        """Admit trades read from the venue, in order (never waits)."""
        if not self._gap_checked:
            self._take_unsequenced(trades)
            return
        observe, holds = self._tracker.observe, self._holds
        out: list[Trade] = []
        for trade in trades:
            verdict = observe(trade.raw_symbol, trade.sequence, trade.ts_event)  # type: ignore[arg-type]
            if verdict is DUPLICATE:
                self._metrics.duplicate(trade.raw_symbol)
                continue
            if verdict is RESTARTED:
                self._queue(out)
                out = []
                self._outbox.put_events([self._restarted(trade)])
            elif verdict is FILLED:  # its REPAIRED event goes after it, wherever the trade goes
                self._filled_live.append(trade)
            elif verdict is not NEW:
                self._hold_for(trade.raw_symbol, verdict)  # type: ignore[arg-type]
            hold = holds.get(trade.raw_symbol)
            if hold is None:
                out.append(trade)
            else:
                hold.items.append(trade)
                hold.trades += 1
        self._queue(out)
        if self._filled_live:
            self._resolve_filled()
        if holds:
            self.check_holds()

    def _resolve_filled(self) -> None:
        """Missing sequences that arrived live: each is resolved with a REPAIRED event of its own, after
        the trade (in the symbol's held items while a repair runs, else straight to the outbox), so that
        the processor's hold and the kept open gaps let go of it. One the full outbox shed is missing again
        (its repair follows): it is not resolved."""
        for trade in self._filled_live:
            sequence, ts = trade.sequence or 0, trade.ts_event
            if any(g.first <= sequence <= g.last for g in self._tracker.missing(trade.raw_symbol)):
                continue
            filled = Gap(trade.raw_symbol, sequence, sequence, ts, ts)
            event = self._repair.event(filled, REPAIRED, 1, "arrived live")
            hold = self._holds.get(trade.raw_symbol)
            if hold is None:
                self._outbox.put_events([event])
            else:
                hold.items.append(_Resolved(event))
        self._filled_live = []

    def _take_unsequenced(self, trades: list[Trade]) -> None:
        """A venue without a sequence: remember what was seen (for an outage's look-back), hold a symbol
        whose trade ends an outage while REST is asked, queue the rest."""
        out: list[Trade] = []
        outages, holds, last_ns = self._outage_from, self._holds, self._last_ns
        for trade in trades:
            raw = trade.raw_symbol
            if outages and raw in outages:
                self._hold_for(raw, Outage(raw, outages.pop(raw), trade.ts_event))
            hold = holds.get(raw)
            if hold is None:
                out.append(trade)
            else:
                hold.items.append(trade)
                hold.trades += 1
            if trade.ts_event > last_ns.get(raw, 0):
                last_ns[raw] = trade.ts_event
            ids = self._recent_ids.get(raw)
            if ids is None:
                ids = self._recent_ids[raw] = deque(maxlen=RECENT_IDS)
            ids.append(trade.trade_id)
        self._queue(out)
        if holds:
            self.check_holds()

    def take_recovered(self, trades: list[Trade]) -> None:
        """Trades a later repair fetched (their gap went on earlier): straight to the outbox."""
        self._queue(trades)

    def check_holds(self) -> None:
        """Let holds past their bounds go on without their repair (also called on a timer)."""
        now = self._monotonic()
        for raw_symbol, hold in list(self._holds.items()):
            if hold.trades > self._hold_max_trades or now - hold.since > self._hold_max_s:
                self._log.warning("{}: repair still running, its newer trades go on", raw_symbol)
                self._release(raw_symbol, hold, {})

    def release_all(self) -> None:
        """At stop, once the repairs have ended: every held trade goes on (GAP events for repairs not
        done), and each outage whose look-back never answered (cancelled when the stop's grace ended, or
        never started) is recorded unverified: REST will not be asked now. (A gap whose repair was cut
        needs nothing more: its GAP event went on and it stays open in the tracker, to be repaired after
        a restart.)"""
        for raw_symbol, hold in list(self._holds.items()):
            self._release(raw_symbol, hold, {})
        unanswered = sorted((m for m in self._released if isinstance(m, Outage)), key=lambda o: o.after_ns)
        for outage in unanswered:
            self._released.discard(outage)
            self._outbox.put_events([self._repair.cut_short(outage)])

    # -- holds and repairs -----------------------------------------------------------------------------
    def _hold_for(self, raw_symbol: str, gap: Marker) -> None:
        hold = self._holds.get(raw_symbol)
        if hold is None:
            hold = self._holds[raw_symbol] = _Hold(self._monotonic())
            self._working[raw_symbol] = self._working.get(raw_symbol, 0) + 1
            self._spawn(self._repair_symbol(raw_symbol, hold))
        hold.items.append(gap)
        hold.gaps.append(gap)

    async def _repair_symbol(self, raw_symbol: str, hold: _Hold) -> None:
        """Repair the symbol's gaps in order, then let its held trades go on."""
        results: dict[Marker, Result] = {}
        try:
            while hold.gaps:
                gap = hold.gaps.pop(0)
                async with self._repairs:
                    result = await self._repair_one(raw_symbol, gap)
                if gap in self._released:  # went on without it: its trades follow now
                    self._released.discard(gap)
                    self._queue(result[0])
                    if result[1].kind is not CoverageKind.GAP:  # a GAP went on when it was let go
                        self._outbox.put_events([result[1]])
                else:
                    results[gap] = result
        finally:
            self._working[raw_symbol] -= 1
            if self._holds.get(raw_symbol) is hold:
                self._release(raw_symbol, hold, results)

    async def _repair_one(self, raw_symbol: str, marker: Marker) -> Result:
        if isinstance(marker, Outage):
            seen = set(self._recent_ids.get(raw_symbol, ()))
            return await self._repair.look_back(marker, seen, self._recent_page_size)
        return await self._repair.repair(marker)

    def _release(self, raw_symbol: str, hold: _Hold, results: dict[Marker, Result]) -> None:
        """Send the held items on in order: at each gap its repaired trades and event (REPAIRED after
        them; GAP when only part came), or a GAP event when its repair is not done; at an outage what REST
        still had of it (not already among the held trades) and what can be said of it."""
        held_ids = {item.trade_id for item in hold.items if isinstance(item, Trade)}
        trades: list[Trade] = []
        for item in hold.items:
            if isinstance(item, Trade):
                trades.append(item)
                continue
            if isinstance(item, _Resolved):
                self._queue(trades)
                trades = []
                self._outbox.put_events([item.event])
                continue
            recovered, event = results.get(item) or ([], None)
            if isinstance(item, Outage):
                recovered = [t for t in recovered if t.trade_id not in held_ids]
            if event is None:
                self._released.add(item)
                if isinstance(item, Outage):
                    continue  # what REST says of it follows when it answers
                event = self._repair.event(item, CoverageKind.GAP, item.size, "repair in progress")
            self._queue(trades + recovered)
            trades = []
            self._outbox.put_events([event])
        self._queue(trades)
        hold.items, hold.trades = [], 0
        if self._holds.get(raw_symbol) is hold:
            del self._holds[raw_symbol]

    # -- the outbox --------------------------------------------------------------------------------------
    def _queue(self, trades: list[Trade]) -> None:
        if not trades:
            return
        refused = self._outbox.put(trades)
        if refused:
            self._shed(refused)
        elif self._shedding:
            self._shedding.difference_update(t.raw_symbol for t in trades)

    def _shed(self, trades: list[Trade]) -> None:
        """Trades the full outbox refused: missing ranges to repair later, or an unverified interval (one
        event per symbol per run of refusals)."""
        self._metrics.shed(trades)
        by_symbol: dict[str, list[Trade]] = {}
        for trade in trades:
            by_symbol.setdefault(trade.raw_symbol, []).append(trade)
        for raw_symbol, shed in by_symbol.items():
            if self._gap_checked:
                sequences = [t.sequence for t in shed if t.sequence is not None]
                gaps = self._tracker.forget(raw_symbol, sequences, shed[0].ts_event, shed[-1].ts_event)
            else:
                gaps = []
            if raw_symbol in self._shedding:
                continue
            self._shedding.add(raw_symbol)
            self._log.error("outbox full: {} trades of {} shed, to repair later", len(shed), raw_symbol)
            events = [self._repair.event(gap, CoverageKind.GAP, gap.size, "outbox full") for gap in gaps]
            self._outbox.put_events(events or [self._unverified(shed, "outbox full: trades shed")])

    def _unverified(self, trades: list[Trade], detail: str) -> CoverageEvent:
        first, last = trades[0], trades[-1]
        return CoverageEvent(
            first.exchange, first.symbol, first.raw_symbol, CoverageKind.UNVERIFIED, first.ts_event,
            last.ts_event, self._clock.now_ns(), trades=len(trades), detail=detail,
        )  # fmt: skip

    def _restarted(self, trade: Trade) -> CoverageEvent:
        """The venue's sequence started over below where this symbol was resumed: what happened between
        the resume point and this trade cannot be verified (counted, logged, recorded)."""
        self._metrics.restarted()
        self._log.warning(
            "{}: sequence {} is far below where it was resumed; the venue's sequence started over, the "
            "interval since the resume point cannot be verified",
            trade.raw_symbol,
            trade.sequence,
        )
        return CoverageEvent(
            exchange=trade.exchange,
            symbol=trade.symbol,
            raw_symbol=trade.raw_symbol,
            kind=CoverageKind.UNVERIFIED,
            start_ns=min(self.resume_ns.get(trade.raw_symbol, 0), trade.ts_event),
            end_ns=trade.ts_event,
            recorded_ns=self._clock.now_ns(),
            last_sequence=trade.sequence,
            detail="sequence restarted below the resume point",
        )
