"""Periodic verification of recently closed 1m bars against the venue's own candles, beside the processor.

Every `interval` seconds, for each stored instrument of the exchanges it is given, it checks the minutes
- from where the last round stopped, and from the first minute that opened after `since_ns` (the daemon's
  start: the minute a collector starts in lacks the trades before it subscribed, a known partial bar);
- that closed at least `delay` minutes ago (the venue's candle and the stored bar must both be final: the
  processor closes a bar after its grace period, later while it works off a backlog);
- up to the newest stored 1m bar of the instrument (a minute the processor has not reached is not taken
  for a missing bar; quiet minutes before a newer bar are checked once that bar is stored);
- at most `max_minutes` per instrument and round, the newest ones (a verifier that fell behind skips, it
  does not pile up work).
Stored bars come from the store, candles from
the venue's REST API through the collectors' executor (rate limits and circuit breaker apply). Results
are counted per minute in `bars_verified_total{exchange,result}`: `match`, `mismatch` (each one also
logged with what differs), and `unavailable` for stored bars that could not be checked (the venue serves
no candles, or its REST API failed this round; such minutes are not retried). It is its own task: the
processor's hot path never waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping

from loguru import logger

from api.params import format_time
from collectors.backfill import RestBackfiller
from collectors.registry import create_adapter
from core.clock import Clock, SystemClock
from core.errors import CircuitOpenError, ConfigError, ExchangeError, ParseError, StorageError
from core.ports import MarketStore
from core.timeframes import NS_PER_MINUTE
from core.types import SymbolInfo
from monitoring.circuit_breaker import CircuitBreaker
from monitoring.metrics import METRICS, PlatformMetrics
from processor.verification import describe, verify_bars

FAILURES = (ExchangeError, ParseError, CircuitOpenError, StorageError, ConfigError)


class BarVerifier:
    """See the module docstring. `rest_urls`: exchange -> REST base URL (None: the exchange's own); only
    these exchanges are verified. Times: `interval` seconds, `delay` and `max_minutes` minutes, `since_ns`
    ns UTC (0: no lower bound)."""

    def __init__(
        self,
        store: MarketStore,
        rest_urls: Mapping[str, str | None],
        *,
        interval: float = 60.0,
        delay: int = 2,
        max_minutes: int = 10,
        since_ns: int = 0,
        timeout: float = 10.0,
        metrics: PlatformMetrics = METRICS,
        clock: Clock | None = None,
    ) -> None:
        self._store = store
        self._rest_urls = dict(rest_urls)
        self._interval = interval
        self._delay_ns = max(delay, 1) * NS_PER_MINUTE
        self._max_minutes = max(max_minutes, 1)
        self._since = -(-since_ns // NS_PER_MINUTE) * NS_PER_MINUTE  # the first whole minute from since_ns
        self._timeout = timeout
        self._metrics = metrics
        self._clock = clock or SystemClock()
        self._next: dict[tuple[str, str], int] = {}  # (exchange, symbol) -> first minute not yet checked
        self._rest: dict[str, RestBackfiller] = {}
        self._stopping = asyncio.Event()
        self._log = logger.bind(component="verifier")
        self.rounds = 0
        self.failed_rounds = 0

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        self._log.info(
            "verifying 1m bars of {} every {:g} s", ",".join(sorted(self._rest_urls)), self._interval
        )
        try:
            while not self._stopping.is_set():
                try:
                    await self.verify_round()
                except StorageError as exc:
                    self._log.warning("verification round skipped: {}", exc)
                except Exception:  # noqa: BLE001
                    # The top of a supervised loop: a bug in one round must not stop the processor beside
                    # it. Counted and logged; CancelledError (a BaseException) still stops the loop.
                    self.failed_rounds += 1
                    self._log.exception("verification round failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self._interval)
        finally:
            for rest in self._rest.values():
                await rest.close()

    async def verify_round(self) -> None:
        """One round over every stored instrument of the verified exchanges."""
        now = self._clock.now_ns()
        ready = now - self._delay_ns
        end = ready - ready % NS_PER_MINUTE  # the minutes that closed at least `delay` ago
        symbols = [s for s in await self._store.symbols() if s.exchange in self._rest_urls]
        for exchange in {s.exchange for s in symbols}:
            self._refresh(exchange, symbols)
        for info in symbols:
            if self._stopping.is_set():
                break
            await self._verify_symbol(info, end)
        self.rounds += 1

    async def _verify_symbol(self, info: SymbolInfo, end: int) -> None:
        key = (info.exchange, info.symbol)
        checked = self._next.get(key, self._since)
        # the newest stored bars not yet checked: the window ends with the newest (not past what the
        # processor has stored) and spans at most max_minutes minutes, so at most as many bars
        stored = await self._store.bars(*key, "1m", start_ns=checked, end_ns=end, limit=self._max_minutes)
        if not stored:
            return
        end = stored[-1].bar.close_time
        start = max(checked, end - self._max_minutes * NS_PER_MINUTE)
        self._next[key] = end
        bars = [c.bar for c in stored if c.bar.open_time >= start]
        rest = self._rest[info.exchange]
        if not rest.adapter.capabilities.klines.available:
            self._count(info.exchange, "unavailable", len(bars))
            return
        try:
            candles = await rest.fetch_klines(info.raw_symbol, start, end, max_wait_s=0)
        except FAILURES as exc:
            self._count(info.exchange, "unavailable", len(bars))
            self._log.warning("{} {}: candles unavailable ({}): {} bars not verified", *key, exc, len(bars))
            return
        result = verify_bars(bars, candles)
        self._count(info.exchange, "match", result.matched)
        self._count(info.exchange, "mismatch", len(result.differences))
        for difference in result.differences:
            self._log.warning(
                "{} {} 1m bar {} differs from the venue's candle: {}",
                *key, format_time(difference.open_time), describe(difference),
            )  # fmt: skip

    def _refresh(self, exchange: str, listed: list[SymbolInfo]) -> None:
        """The exchange's REST executor, kept across rounds, with an adapter (made once per round) that
        knows the stored instruments. Its circuit breaker is its own (`<exchange>_klines`): the
        collector's `<exchange>_rest` one says whether gaps can be repaired, which a failing candles
        endpoint does not decide."""
        adapter = create_adapter(exchange, [s for s in listed if s.exchange == exchange])
        rest = self._rest.get(exchange)
        if rest is not None:
            rest.adapter = adapter
            return
        breaker = CircuitBreaker(
            f"{exchange}_klines", failure_exceptions=(ExchangeError,), metrics=self._metrics
        )
        self._rest[exchange] = RestBackfiller(
            adapter, self._rest_urls[exchange], metrics=self._metrics, breaker=breaker, timeout=self._timeout
        )

    def _count(self, exchange: str, result: str, minutes: int) -> None:
        if minutes:
            self._metrics.bars_verified.labels(exchange, result).inc(minutes)
