"""`cryptostock verify`: one symbol's stored 1m bars over [--from, --to) checked against the venue's own
1m candles (klines), minute by minute (processor.verification says what is compared and how).

Stored bars come from the store export reads (PostgreSQL, --db or the one SQLite database in --data-dir);
candles from the venue's REST API (--rest-url, e.g. a simulator's) through the collectors' REST executor,
so the venue's rate limits and the circuit breaker apply. A day is checked at a time (a progress bar on a
terminal), so memory stays bounded whatever the window. Only closed minutes are checked: the window
ends at the current minute at the latest. Output: one line per differing minute, then one summary line.
Exit codes: 0 all equal; 1 differences (or a failure while running); 2 unusable arguments, and a venue
that serves no candles, or not as far back as asked.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import msgspec

from api.params import format_time
from collectors.adapter import ExchangeAdapter
from collectors.backfill import RestBackfiller
from collectors.klines import minute_windows
from collectors.registry import create_adapter
from core.errors import ConfigError
from core.ports import MarketStore
from core.timeframes import NS_PER_MINUTE
from core.types import SymbolInfo
from cryptostock.export import export_store, resolve_range
from cryptostock.lifecycle import setup_logging_from
from cryptostock.outcome import report_success
from cryptostock.progress_bar import ProgressBar
from cryptostock.settings import VerifySettings
from monitoring.logger import flush_logs
from processor.verification import Verification, combined, describe, verify_bars

EXIT_EQUAL, EXIT_DIFFERENT = 0, 1
CHUNK_MINUTES = 1440


@dataclass(frozen=True)
class VerifyWindow:
    """What to check: one instrument's minutes opening in [start_ns, end_ns) (ns UTC, whole minutes)."""

    info: SymbolInfo
    start_ns: int
    end_ns: int


def closed_window(start_ns: int, end_ns: int, now_ns: int) -> tuple[int, int]:
    """[start, end) widened to whole minutes, ending at the current (unfinished) minute at the latest;
    ConfigError when nothing closed is left."""
    start = start_ns - start_ns % NS_PER_MINUTE
    end = min(-(-end_ns // NS_PER_MINUTE) * NS_PER_MINUTE, now_ns - now_ns % NS_PER_MINUTE)
    if start >= end:
        raise ConfigError(f"no closed minute between {format_time(start_ns)} and {format_time(end_ns)}")
    return start, end


def klines_adapter(info: SymbolInfo, start_ns: int, now_ns: int) -> ExchangeAdapter:
    """The venue's adapter for `info`; ConfigError when it serves no candles, or not from `start_ns`."""
    adapter = create_adapter(info.exchange, [info])
    support = adapter.capabilities.klines
    if not support.available:
        raise ConfigError(f"{info.exchange} cannot be verified: {support.reason}")
    if support.reach_s is not None and start_ns < now_ns - int(support.reach_s * 1e9):
        reach = f"{support.reach_s / 3600:g} hours"
        raise ConfigError(f"{info.exchange} serves 1m candles for the last {reach} only: move --from later")
    return adapter


async def verify_window(
    store: MarketStore, rest: RestBackfiller, window: VerifyWindow, *, max_wait: float, progress: ProgressBar
) -> Verification:
    """The window checked CHUNK_MINUTES at a time (stored bars, then the venue's candles, compared), so
    that memory stays bounded by the chunk, whatever the window, apart from the differences found."""
    results = []
    exchange, symbol, raw = window.info.exchange, window.info.symbol, window.info.raw_symbol
    for start, end in minute_windows(window.start_ns, window.end_ns, CHUNK_MINUTES):
        stored = await store.bars(exchange, symbol, "1m", start_ns=start, end_ns=end, limit=CHUNK_MINUTES)
        candles = await rest.fetch_klines(raw, start, end, max_wait_s=max_wait)
        results.append(verify_bars((c.bar for c in stored), candles))
        progress.update(end - window.start_ns, rows=sum(r.compared for r in results))
    return combined(results)


async def _window(settings: VerifySettings, store: MarketStore, now_ns: int) -> VerifyWindow:
    info, start_ns, end_ns = await resolve_range(
        store, settings.exchange, settings.symbol, settings.start, settings.end
    )
    start, end = closed_window(start_ns, end_ns, now_ns)
    return VerifyWindow(info, start, end)


def report_lines(result: Verification, *, as_json: bool) -> list[str]:
    """One line per differing minute: '<minute> <what differs>', or a JSON object."""
    if as_json:
        return [
            msgspec.json.encode(
                {**msgspec.to_builtins(d), "open_time": format_time(d.open_time), "open_time_ns": d.open_time}
            ).decode()
            for d in result.differences
        ]
    return [f"{format_time(d.open_time)} {describe(d)}" for d in result.differences]


def summary(window: VerifyWindow, result: Verification) -> str:
    span = f"{format_time(window.start_ns)}..{format_time(window.end_ns)}"
    head = f"{window.info.exchange} {window.info.symbol} 1m bars {span}: {result.compared:,} minutes compared"
    if result.equal:
        return f"{head}, all equal to the venue's candles"
    kinds: dict[str, int] = {}
    for d in result.differences:
        kinds[d.verdict.value] = kinds.get(d.verdict.value, 0) + 1
    detail = ", ".join(f"{kind} {count}" for kind, count in sorted(kinds.items()))
    return f"{head}, {result.matched:,} equal, {len(result.differences):,} differ ({detail})"


async def run_verify(settings: VerifySettings, clock: Callable[[], int] = time.time_ns) -> int:
    """The command (see the module docstring); returns the exit code."""
    as_json = settings.log_format == "json"
    setup_logging_from(settings, "verify", console=False)
    store = export_store(settings)
    try:
        now_ns = clock()
        window = await _window(settings, store, now_ns)
        adapter = klines_adapter(window.info, window.start_ns, now_ns)
        progress = ProgressBar(f"verify {window.info.symbol}", total=window.end_ns - window.start_ns)
        try:
            async with RestBackfiller(adapter, settings.rest_url, timeout=settings.timeout) as rest:
                result = await verify_window(
                    store, rest, window, max_wait=settings.max_wait, progress=progress
                )
        finally:
            progress.close()
    finally:
        await store.close()
        flush_logs()
    for line in report_lines(result, as_json=as_json):
        print(line, flush=True)
    report_success(
        "verify", summary(window, result), as_json=as_json,
        compared=result.compared, matched=result.matched, differences=len(result.differences),
    )  # fmt: skip
    return EXIT_EQUAL if result.equal else EXIT_DIFFERENT
