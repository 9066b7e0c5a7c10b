"""The status line of `cryptostock run`, read from the platform's own metrics (a fresh registry here)."""

from __future__ import annotations

import asyncio
import io
import re

from cryptostock.progress import Snapshot, StatusReporter, banner, status_line
from monitoring.metrics import PlatformMetrics


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_status_line_from_two_snapshots(metrics: PlatformMetrics) -> None:
    before = Snapshot.read(metrics, at=10.0)
    assert before == Snapshot(10.0, 0, 0, 0, 0, 0, 0)
    metrics.trades_received.labels("binance", "BTC-USDT").inc(90)
    metrics.trades_received.labels("okx", "BTC-USDT").inc(10)
    for _ in range(4):
        metrics.trade_latency.labels("binance").observe(0.004)
    metrics.trade_gaps.labels("okx", "BTC-USDT").inc()
    metrics.trades_backfilled.labels("okx", "BTC-USDT").inc(7)
    now = Snapshot.read(metrics, at=15.0)
    line = status_line(before, now, first_bar_in=42.4, clock_text="12:00:05")
    assert line == (
        "12:00:05  20.0 trades/s · 100 trades · 0 bars closed (first in ~42 s) · "
        "1 gaps (7 trades repaired) · lag 4 ms"
    )
    metrics.bars_completed.labels("binance", "BTC-USDT", "1m").inc(3)
    later = Snapshot.read(metrics, at=20.0)
    assert " 0.0 trades/s · 100 trades · 3 bars closed · " in status_line(now, later, 1.0, "12:00:10")
    assert "lag -" in status_line(now, later, 1.0, "t")  # no trade received in between


def test_banner_lists_the_urls() -> None:
    text = banner({"live page": "http://127.0.0.1:8000/", "metrics": "http://127.0.0.1:9091/metrics"}, "x")
    assert "live page  http://127.0.0.1:8000/" in text and "metrics    http://127.0.0.1:9091/metrics" in text


async def _run_reporter(metrics: PlatformMetrics, stream: io.StringIO) -> str:
    ready = asyncio.Event()
    reporter = StatusReporter(
        metrics, ready=ready.is_set, urls={"live page": "http://h/"}, about="test", bar_ns=60 * 10**9,
        interval=0.05, stream=stream,
    )  # fmt: skip
    task = asyncio.create_task(reporter.run())
    await asyncio.sleep(0.15)
    assert stream.getvalue() == ""  # nothing before the API listens
    ready.set()
    await asyncio.sleep(0.15)
    metrics.bars_completed.labels("binance", "BTC-USDT", "1m").inc()
    await asyncio.sleep(0.15)
    reporter.stop()
    await asyncio.wait_for(task, 2)
    return stream.getvalue()


async def test_a_terminal_gets_status_lines_until_and_after_the_first_bar(metrics: PlatformMetrics) -> None:
    text = await _run_reporter(metrics, Terminal())
    lines = text.splitlines()
    assert "cryptostock is running: test" in text
    statuses = [line for line in lines if re.match(r"^\d\d:\d\d:\d\d  ", line)]
    assert len(statuses) >= 3
    assert "(first in ~" in statuses[0] and "1 bars closed" in statuses[-1]
    assert "  first bar closed: see it at http://h/" in lines


async def test_a_pipe_gets_the_banner_only(metrics: PlatformMetrics) -> None:
    text = await _run_reporter(metrics, io.StringIO())
    assert "cryptostock is running" in text and "trades/s" not in text
