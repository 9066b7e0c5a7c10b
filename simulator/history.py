"""What the simulated exchange remembers: a global, sequence-numbered log that websocket connections tail,
and a bounded per-symbol history that REST serves by trade id.

Entries are `Recorded` tuples: (trade, payload, hidden). `payload` is the venue's websocket payload of the
trade, encoded once when the trade is recorded; `hidden` marks a trade the `skip` fault withheld from every
websocket (it stays in history and is served over REST, as a missed message is on the real exchange).
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Sequence

from simulator.trades import MarketTrade

Recorded = tuple[MarketTrade, bytes, bool]
"""(trade, payload, hidden): a plain tuple, because this is built once per trade on the hot path."""


class Notifier:
    """Wakes every waiter once per `notify()`; waiters that arrive later wait for the next one."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, timeout: float | None = None) -> None:
        event = self._event
        if timeout is None:
            await event.wait()
            return
        try:
            async with asyncio.timeout(timeout):
                await event.wait()
        except TimeoutError:
            return


class TradeLog:
    """Every recorded trade of every symbol in generation order, addressed by an absolute sequence number.

    Connections keep a cursor (the next sequence number they will read). `trim(floor)` forgets entries
    below `floor`; readers whose cursor fell below `start` have lost data (slow consumers).
    """

    def __init__(self) -> None:
        self._items: list[Recorded] = []
        self._start = 0
        self.grew = Notifier()

    @property
    def start(self) -> int:
        return self._start

    @property
    def end(self) -> int:
        """Sequence number the next recorded trade will get."""
        return self._start + len(self._items)

    def extend(self, entries: Sequence[Recorded]) -> None:
        self._items.extend(entries)
        self.grew.notify()

    def first_of(self, symbol: str, cursor: int) -> MarketTrade | None:
        """The first trade of `symbol` at a position >= `cursor` (scanning what a connection has yet to
        send: short for a connection that keeps up, at most the backlog limit for one that does not)."""
        position = max(cursor, self._start)
        while position < self.end:
            chunk = self.read(position, 4096)
            for trade, _, _ in chunk:
                if trade.symbol == symbol:
                    return trade
            position += len(chunk)
        return None

    def read(self, cursor: int, limit: int) -> list[Recorded]:
        offset = cursor - self._start
        if offset < 0:
            raise IndexError(f"cursor {cursor} is before the log start {self._start}")
        return self._items[offset : offset + limit]

    def trim(self, floor: int) -> None:
        drop = min(floor, self.end) - self._start
        if drop > 0:
            del self._items[:drop]
            self._start += drop


def _trade_id(entry: Recorded) -> int:
    return entry[0].trade_id


def _time_ms(entry: Recorded) -> int:
    return entry[0].time_ms


class SymbolHistory:
    """One symbol's recorded trades in trade-id order (one entry per id), keeping at most `max_len` and
    (max_age_ms given) only those at most `max_age_ms` older than the newest, by trade time (lowest ids,
    oldest, dropped first).

    The age bound is what keeps a long paced run's memory flat (about 0.5 KB per trade held): REST only has
    to reach back as far as a collector can be away, not to the start of the run."""

    def __init__(self, symbol: str, max_len: int, max_age_ms: int | None = None) -> None:
        if max_len < 1:
            raise ValueError("max_len must be >= 1")
        if max_age_ms is not None and max_age_ms < 0:
            raise ValueError("max_age_ms must be >= 0")
        self.symbol = symbol
        self.max_len = max_len
        self.max_age_ms = max_age_ms
        self._items: list[Recorded] = []
        # Dropping in chunks keeps trimming amortised O(1) per trade.
        self._slack = max(1, min(max_len // 4, 100_000))
        self._age_slack_ms = 0 if max_age_ms is None else max(1, max_age_ms // 4)

    def __len__(self) -> int:
        return len(self._items) - self._first()

    @property
    def last_id(self) -> int | None:
        return self._items[-1][0].trade_id if self._items else None

    def append(self, entry: Recorded) -> bool:
        """Record a trade in id order. A replayed file may hold a row again (a duplicate: not recorded
        twice, False) or a row below the newest id (a late trade: put in its place)."""
        items = self._items
        if not items or entry[0].trade_id > items[-1][0].trade_id:
            items.append(entry)
        else:
            trade_id = entry[0].trade_id
            first = self._first()
            index = bisect.bisect_left(items, trade_id, lo=first, key=_trade_id)
            if index == first and first > 0:
                return False  # below every id still kept: it would be dropped at once
            if index < len(items) and items[index][0].trade_id == trade_id:
                return False
            items.insert(index, entry)
        if len(items) > self.max_len + self._slack:
            del items[: len(items) - self.max_len]
        if self.max_age_ms is not None:
            oldest_kept = entry[0].time_ms - self.max_age_ms
            if items[0][0].time_ms < oldest_kept - self._age_slack_ms:
                del items[: bisect.bisect_left(items, oldest_kept, key=_time_ms)]
        return True

    def _first(self) -> int:
        return max(0, len(self._items) - self.max_len)

    def retained(self) -> list[Recorded]:
        return self._items[self._first() :]

    def from_id(self, from_id: int, limit: int) -> list[Recorded]:
        """Up to `limit` trades with id >= from_id (inclusive), oldest first."""
        index = bisect.bisect_left(self._items, from_id, lo=self._first(), key=_trade_id)
        return self._items[index : index + limit]

    def between_times(self, start_ms: int | None, end_ms: int | None) -> list[Recorded]:
        """The trades with start_ms <= time_ms < end_ms (None: unbounded), in id order. Found by bisection:
        a market's trade times never decrease as its ids grow."""
        first = self._first()
        low = first if start_ms is None else bisect.bisect_left(self._items, start_ms, lo=first, key=_time_ms)
        high = len(self._items)
        if end_ms is not None:
            high = bisect.bisect_left(self._items, end_ms, lo=low, key=_time_ms)
        return self._items[low:high]

    def last_before_time(self, time_ms: int) -> Recorded | None:
        """The latest trade with time_ms < `time_ms`, None if there is none."""
        first = self._first()
        index = bisect.bisect_left(self._items, time_ms, lo=first, key=_time_ms)
        return self._items[index - 1] if index > first else None

    def latest(self, limit: int) -> list[Recorded]:
        """The most recent `limit` trades, oldest first."""
        if limit <= 0:
            return []
        return self._items[max(self._first(), len(self._items) - limit) :]

    def page(self, *, after: int | None, before: int | None, limit: int) -> list[Recorded]:
        """One page of a newest-first trade-id cursor, NEWEST FIRST.

        after=N: the `limit` trades just below id N (ids < N, the older page); before=N: the `limit` trades
        just above id N (ids > N, the newer page); both: ids strictly between, the ones just below `after`;
        neither: the most recent `limit`.
        """
        first = self._first()
        low = first if before is None else bisect.bisect_right(self._items, before, lo=first, key=_trade_id)
        if after is None and before is not None:
            return self._items[low : low + limit][::-1]
        high = len(self._items)
        if after is not None:
            high = bisect.bisect_left(self._items, after, lo=first, key=_trade_id)
        return self._items[max(low, high - limit) : high][::-1]

    def after_time(self, time_ms: int | None, limit: int) -> list[Recorded]:
        """Up to `limit` trades stamped after `time_ms` (exclusive; None: the most recent `limit`), oldest
        first. Markets stamp a symbol's trades in non-decreasing time, so id order is time order."""
        first = self._first()
        if time_ms is None:
            return self._items[max(first, len(self._items) - limit) :]
        index = bisect.bisect_right(self._items, time_ms, lo=first, key=_time_ms)
        return self._items[index : index + limit]

    def recent_below(self, trade_id: int | None, count: int, *, visible: bool) -> list[Recorded]:
        """The latest `count` trades with an id below `trade_id` (None: of all), oldest first; visible:
        skipping trades withheld from websockets."""
        first = self._first()
        index = len(self._items)
        if trade_id is not None:
            index = bisect.bisect_left(self._items, trade_id, lo=first, key=_trade_id)
        picked: list[Recorded] = []
        while index > first and len(picked) < count:
            index -= 1
            if not (visible and self._items[index][2]):
                picked.append(self._items[index])
        return picked[::-1]

    def latest_below(self, trade_id: int | None, *, visible: bool, scan: int = 10_000) -> Recorded | None:
        """The latest trade with an id below `trade_id` (None: the latest of all; visible: skipping trades
        withheld from websockets), looking back at most `scan` trades; None if there is none."""
        first = self._first()
        index = len(self._items)
        if trade_id is not None:
            index = bisect.bisect_left(self._items, trade_id, lo=first, key=_trade_id)
        for entry in reversed(self._items[max(first, index - scan) : index]):
            if not (visible and entry[2]):
                return entry
        return None
