"""What `cryptostock run` tells the person who started it: a banner with the URLs to open once the API
listens, then, only when stdout is a terminal, a status line every few seconds read from the platform's
own metrics: trades/s, bars closed, gaps, lag.

    12:00:05  20.1 trades/s · 1,234 trades · 0 bars closed (first 1m bar in ~35 s) · 0 gaps · lag 3 ms

Lines go to stdout, the logs to stderr, so each stays whole on the terminal; a pipe or a file gets the
banner only. Times are seconds unless named otherwise.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from prometheus_client.metrics import MetricWrapperBase

from core.timeframes import timeframe_ns
from monitoring.metrics import METRICS, PlatformMetrics

if TYPE_CHECKING:
    from api.server import ApiServer
    from cryptostock.settings import RunSettings


def _total(metric: MetricWrapperBase, sample: str) -> float:
    """Sum of `sample` over every label set of `metric` (0 before the first observation)."""
    return sum(s.value for family in metric.collect() for s in family.samples if s.name == sample)


@dataclass(frozen=True)
class Snapshot:
    """Platform-wide totals at monotonic time `at`."""

    at: float
    trades: float
    bars: float
    gaps: float
    repaired: float
    latency_sum: float
    latency_count: float

    @classmethod
    def read(cls, metrics: PlatformMetrics, at: float) -> Snapshot:
        return cls(
            at=at,
            trades=_total(metrics.trades_received, "trades_received_total"),
            bars=_total(metrics.bars_completed, "bars_completed_total"),
            gaps=_total(metrics.trade_gaps, "trade_gaps_total"),
            repaired=_total(metrics.trades_backfilled, "trades_backfilled_total"),
            latency_sum=_total(metrics.trade_latency, "trade_latency_seconds_sum"),
            latency_count=_total(metrics.trade_latency, "trade_latency_seconds_count"),
        )


def status_line(before: Snapshot, now: Snapshot, first_bar_in: float | None, clock_text: str) -> str:
    """One status line for the interval between two snapshots. `first_bar_in`: seconds until the first
    bar is due (shown while no bar has closed)."""
    span = max(now.at - before.at, 1e-9)
    rate = (now.trades - before.trades) / span
    received = now.latency_count - before.latency_count
    lag = (now.latency_sum - before.latency_sum) / received if received > 0 else None
    bars = f"{now.bars:,.0f} bars closed"
    if now.bars == 0 and first_bar_in is not None:
        bars += f" (first in ~{max(first_bar_in, 0):.0f} s)"
    parts = [
        f"{rate:,.1f} trades/s",
        f"{now.trades:,.0f} trades",
        bars,
        f"{now.gaps:,.0f} gaps ({now.repaired:,.0f} trades repaired)",
        f"lag {lag * 1000:,.0f} ms" if lag is not None else "lag -",
    ]
    return f"{clock_text}  " + " · ".join(parts)


def banner(urls: dict[str, str], about: str) -> str:
    """The box printed once the API listens: what runs, and the URLs to open."""
    width = max(len(name) for name in urls)
    lines = [f"  cryptostock is running: {about}"]
    lines += [f"    {name:<{width}}  {url}" for name, url in urls.items()]
    lines.append("  Ctrl-C stops it; logs go to stderr and logs/.")
    rule = "─" * max(len(line) for line in lines)
    return "\n".join([rule, *lines, rule])


class StatusReporter:
    """A `cryptostock run` component: waits for `ready()` (the API listens), prints the banner, then a
    status line every `interval` s while `stream` is a terminal, until `stop()`."""

    def __init__(
        self,
        metrics: PlatformMetrics,
        *,
        ready: Callable[[], bool],
        urls: dict[str, str],
        about: str,
        bar_ns: int,
        grace: float = 0.0,
        interval: float = 5.0,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._metrics = metrics
        self._ready = ready
        self._urls = urls
        self._about = about
        self._bar_ns = bar_ns  # the smallest timeframe, ns
        self._grace = grace
        self._interval = interval
        self._stream = stream or sys.stdout
        self._clock = clock
        self._stopped = asyncio.Event()

    def stop(self) -> None:
        self._stopped.set()

    async def run(self) -> None:
        while not self._ready():
            if await self._wait(0.1):
                return
        self._print(banner(self._urls, self._about))
        if not self._stream.isatty():
            await self._stopped.wait()
            return
        before = Snapshot.read(self._metrics, self._clock())
        while not await self._wait(self._interval):
            now = Snapshot.read(self._metrics, self._clock())
            self._print(status_line(before, now, self._first_bar_in(), time.strftime("%H:%M:%S")))
            if before.bars == 0 and now.bars > 0:
                self._print(f"  first bar closed: see it at {next(iter(self._urls.values()))}")
            before = now

    def _first_bar_in(self) -> float:
        """Seconds until the bar of the smallest timeframe that is open now closes (wall clock)."""
        now_ns, tf = time.time_ns(), self._bar_ns
        return (math.ceil(now_ns / tf) * tf - now_ns) / 1e9 + self._grace

    async def _wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True when stopped."""
        try:
            await asyncio.wait_for(self._stopped.wait(), seconds)
        except TimeoutError:
            return False
        return True

    def _print(self, text: str) -> None:
        print(text, file=self._stream, flush=True)


def run_status(
    settings: RunSettings, api: ApiServer, metrics_url: str, metrics: PlatformMetrics = METRICS
) -> StatusReporter:
    """The banner and status lines of `cryptostock run`."""
    host = "127.0.0.1" if settings.api_host in ("0.0.0.0", "::", "") else settings.api_host
    base = f"http://{host}:{settings.api_port}"
    urls = {"live page": f"{base}/", "API docs": f"{base}/docs", "metrics": metrics_url}
    where = "PostgreSQL" if settings.database_url else f"{settings.data_dir}/{settings.source}.db"
    about = f"{settings.source} {', '.join(settings.exchange)}, stored in {where}"
    smallest = min(settings.timeframes, key=timeframe_ns)
    return StatusReporter(
        metrics,
        ready=api.started,
        urls=urls,
        about=about,
        bar_ns=timeframe_ns(smallest),
        grace=settings.grace_seconds,
        interval=settings.status_interval,
    )
