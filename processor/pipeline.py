"""What the processor decides for each batch, without I/O (pure): trades -> quality checks -> bars, and
closed bars -> indicators + features + quality checks, plus the small decisions around them (how a read
is cut into store groups, which symbols are new, whether the bus is caught up, which feeds are live).

The service (processor/service.py) does the I/O around it: reading the bus, storing, timing, metrics,
logs. Times here are ns UTC passed in as arguments (`now_ns`), never read from a clock; hold ages are
monotonic seconds passed in by the caller.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple

from core.ports import BarKey
from core.timeframes import NS_PER_SECOND, bucket_start, timeframe_ns
from core.types import Bar, ClosedBar, Delivery, FeedState, FeedStatus, SymbolInfo, Trade
from processor.bar_results import BatchResult, LateTrade
from processor.bars import BarAggregator
from processor.features import FeatureCalculator
from processor.holds import CoverageHolds
from processor.indicators import IndicatorEngine
from processor.quality import QualityMonitor, QualityTally

SymbolKey = tuple[str, str]
BarRevision = tuple[str, str, str, int]  # (exchange, symbol, timeframe, open_time ns) of a stored bar
CAUGHT_UP_SLACK_NS = NS_PER_SECOND
LIVE_FEEDS = frozenset({FeedState.STREAMING, FeedState.QUIET})
FEED_FRESH_NS = 10 * NS_PER_SECOND  # collectors publish every second; older means the collector is gone


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


def caught_up(deliveries: Sequence[Delivery], now_ns: int, grace_ns: int) -> bool:
    """True when the bus is drained or what was just read is fresh: only then may the clock close bars.
    While a backlog is worked off (after a restart or an outage) its trades were received long ago and are
    not late; event time alone closes bars then. A delivery's trades are in receipt order, so its last
    trade is its newest."""
    newest = max((d.trades[-1].ts_recv for d in deliveries if d.trades), default=None)
    return newest is None or now_ns - newest <= grace_ns + CAUGHT_UP_SLACK_NS


def live_feeds(statuses: Iterable[FeedStatus], now_ns: int) -> dict[SymbolKey, FeedStatus]:
    """The symbols whose collector says, freshly, that their feed is streaming or quiet: only their bars
    close on the clock. A feed that is down or repairing may still deliver trades of those bars."""
    return {
        (status.exchange, status.symbol): status
        for status in statuses
        if status.state in LIVE_FEEDS and now_ns - status.updated_ns <= FEED_FRESH_NS
    }


def assumed_symbol_info(exchange: str, symbol: str, raw_symbol: str) -> SymbolInfo:
    """Best guess at an instrument nobody described: canonical symbols are BASE-QUOTE, and a derivative
    adds a suffix (BTC-USDT-PERP, BTC-USD-211231), so the first two parts are the assets."""
    base, _, rest = symbol.partition("-")
    return SymbolInfo(exchange, symbol, raw_symbol, base, rest.partition("-")[0])


def in_arrival_order(trades: list[Trade]) -> None:
    """Sort stored trades into the order they first arrived: the venue's sequence where every trade has
    one (the collector hands trades on in sequence order, repaired ones included), else receive time."""
    if all(trade.sequence is not None for trade in trades):
        trades.sort(key=_by_sequence)
    else:
        trades.sort(key=_by_receipt)


def _by_sequence(trade: Trade) -> int:
    return trade.sequence  # type: ignore[return-value]  # only called when every trade has one


def _by_receipt(trade: Trade) -> int:
    return trade.ts_recv


class Studies(NamedTuple):
    """The indicators and features of one (exchange, symbol, timeframe), fed the same closed bars: the
    features reuse the engine's values on each bar (`features.update(bar, engine.update(bar))`)."""

    engine: IndicatorEngine
    features: FeatureCalculator

    def update(self, bar: Bar) -> ClosedBar:
        indicators = self.engine.update(bar)
        return ClosedBar(bar=bar, indicators=indicators, features=self.features.update(bar, indicators))


class Applied(NamedTuple):
    """What applying a batch of stored trades did: the bars it closed, the trade checks' tally, how many
    trades (by symbol) came after their bar had closed or could not be read, and how many were kept out
    of bars because their event time is far ahead of their receipt."""

    closed: list[Bar]
    tally: QualityTally
    late: Counter[SymbolKey]
    unreadable: Counter[SymbolKey]
    ahead: int


class Pipeline:
    """The processor's state between batches: the bar aggregator, the studies per bar key, the quality
    monitor, the coverage holds, the symbols warmed up and the stored bars late trades made incomplete."""

    def __init__(self, timeframes: Sequence[str], grace_ns: int, *, max_hold_s: float) -> None:
        self.timeframes = tuple(timeframes)
        self.aggregator = BarAggregator(self.timeframes, grace_ns)
        self.quality = QualityMonitor()
        self.holds = CoverageHolds(self.aggregator, max_hold_s=max_hold_s)
        self.warm: set[SymbolKey] = set()
        self._studies: dict[BarKey, Studies] = {}
        self._revisions: set[BarRevision] = set()
        self._warmed_at: dict[SymbolKey, int] = {}  # wall ns of each symbol's warm-up (feeds known)

    def apply(self, trades: Sequence[Trade]) -> Applied:
        """Check the new trades and aggregate them, less those whose event time is far ahead of their
        receipt (stored and counted, but a clock far ahead would move the watermark and close the open
        bars early)."""
        tally = self.quality.check_trades(trades)
        aggregated = trades
        if tally.future:
            rejected = set(map(id, tally.future))
            aggregated = [trade for trade in trades if id(trade) not in rejected]
        result = self.aggregator.add_many(aggregated)
        self.revise_later(result.late)
        late = Counter((item.trade.exchange, item.trade.symbol) for item in result.late)
        unreadable = Counter((trade.exchange, trade.symbol) for trade in result.unreadable)
        return Applied(result.closed, tally, late, unreadable, len(tally.future))

    def studies(self, bar: Bar) -> Studies:
        """The studies of the bar's key (made on first use)."""
        key = (bar.exchange, bar.symbol, bar.timeframe)
        found = self._studies.get(key)
        if found is None:
            found = self._studies[key] = Studies(IndicatorEngine(), FeatureCalculator())
        return found

    def check_bars(self, finished: Sequence[ClosedBar]) -> QualityTally:
        return self.quality.check_bars(item.bar for item in finished)

    def warm_studies(self, history: Sequence[ClosedBar]) -> None:
        """Feed a key's stored closed bars (oldest first) to its studies, as they were fed live."""
        for item in history:
            self.studies(item.bar).update(item.bar)

    def replay(self, stored: list[Trade]) -> BatchResult:
        """Aggregate stored trades at a warm-up, less those the quality check kept out of bars live; the
        trades late before the restart were counted then and are only marked for revision."""
        ahead = self.quality.ahead
        result = self.aggregator.add_many([trade for trade in stored if not ahead(trade)])
        self.revise_later(result.late)
        return result

    def warmed(self, exchange: str, symbol: str, now_ns: int | None) -> None:
        """The symbol is warmed up; `now_ns` (wall ns), when a feed board tells when its backlog is
        through: its replayed bars wait for the feed to be live (see settle_quiet)."""
        if now_ns is not None:
            self.aggregator.replayed(exchange, symbol)
            self._warmed_at[(exchange, symbol)] = now_ns
        self.warm.add((exchange, symbol))

    def settle_quiet(self, live: dict[SymbolKey, FeedStatus]) -> None:
        """A live feed that has received nothing since its symbol's warm-up has no backlog left: the bars
        replayed at the warm-up may close on the clock."""
        for key in self.aggregator.unsettled():
            status = live.get(key)
            if status is not None and status.last_receive_ns < self._warmed_at.get(key, 0):
                self.aggregator.settle(*key)

    def revise_later(self, late: Iterable[LateTrade]) -> None:
        """The closed bars late trades belong to are to be marked incomplete (take_revisions)."""
        for item in late:
            trade = item.trade
            for timeframe in item.timeframes:
                start = bucket_start(trade.ts_event, timeframe_ns(timeframe))
                self._revisions.add((trade.exchange, trade.symbol, timeframe, start))

    def take_revisions(self) -> list[BarRevision]:
        """The bars to mark incomplete since the last call, sorted (one statement marks them)."""
        revisions = sorted(self._revisions)
        self._revisions.clear()
        return revisions

    def unseen_symbols(self, trades: Sequence[Trade]) -> dict[SymbolKey, Trade]:
        """The first trade of each symbol not warmed up yet."""
        fresh: dict[SymbolKey, Trade] = {}
        warm = self.warm
        exchange = symbol = ""
        for trade in trades:
            if trade.symbol == symbol and trade.exchange == exchange:
                continue  # runs of one symbol are the rule: one check per run
            exchange, symbol = trade.exchange, trade.symbol
            key = (exchange, symbol)
            if key not in warm and key not in fresh:
                fresh[key] = trade
        return fresh
