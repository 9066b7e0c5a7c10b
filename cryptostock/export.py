"""`cryptostock export bars|trades`: stored bars or trades of one symbol over [--from, --to) into a
Parquet or CSV file, streamed page by page so that memory stays bounded whatever the range.

Paging uses only the store's protocol (core.ports.MarketStore):
- bars: windows of `page_size` bar lengths, each asked with limit `page_size`; bars are aligned to their
  timeframe, so a window holds at most that many and each query returns all of its own, oldest first;
- trades: forward from the last event time seen (`trades(since_ns=...)`, oldest first), skipping the
  trades of that instant already written; a page made only of one instant's trades is asked again with
  twice the limit, so paging always advances.
The file is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from api.errors import ApiError
from api.params import parse_time
from api.symbols import SymbolDirectory
from core.errors import ConfigError
from core.ports import MarketStore
from core.timeframes import timeframe_ns
from core.types import ClosedBar, SymbolInfo, Trade
from cryptostock.export_files import columns_for, open_writer
from cryptostock.lifecycle import setup_logging_from
from cryptostock.outcome import report_success
from cryptostock.progress_bar import ProgressBar
from cryptostock.settings import ExportSettings, VerifySettings
from monitoring.logger import flush_logs
from storage.factory import SqlStore, open_store

SQLITE_FILES = ("simulated.db", "live.db", "cryptostock.db")  # cryptostock run's, then the daemons'


@dataclass(frozen=True)
class ExportRequest:
    """What to export: times are ns UTC, [start_ns, end_ns)."""

    kind: str  # "bars" or "trades"
    exchange: str
    symbol: str  # canonical BASE-QUOTE
    timeframe: str
    start_ns: int
    end_ns: int
    page_size: int


async def bar_pages(store: MarketStore, req: ExportRequest) -> AsyncIterator[tuple[list[ClosedBar], int]]:
    """Pages of bars, oldest first, each with the time (ns) the export has reached."""
    width = timeframe_ns(req.timeframe) * req.page_size
    cursor = req.start_ns
    while cursor < req.end_ns:
        upto = min(cursor + width, req.end_ns)
        page = await store.bars(
            req.exchange, req.symbol, req.timeframe, start_ns=cursor, end_ns=upto, limit=req.page_size
        )
        yield page, upto
        cursor = upto


async def trade_pages(store: MarketStore, req: ExportRequest) -> AsyncIterator[tuple[list[Trade], int]]:
    """Pages of trades with start_ns <= ts_event < end_ns, oldest first, each with the time reached."""
    since, limit = req.start_ns, req.page_size
    written_at_since: set[str] = set()  # ids of the trades at event time `since` already yielded
    while True:
        fetched = await store.trades(req.exchange, req.symbol, limit=limit, since_ns=since)
        exhausted = len(fetched) < limit
        fresh = [t for t in fetched if not (t.ts_event == since and t.trade_id in written_at_since)]
        if not fresh and not exhausted:
            limit *= 2  # one instant holds more trades than a page: ask for more of it
            continue
        page = [t for t in fresh if t.ts_event < req.end_ns]
        if page:
            last = page[-1].ts_event
            at_last = {t.trade_id for t in page if t.ts_event == last}
            written_at_since = (written_at_since | at_last) if last == since else at_last
            since, limit = last, req.page_size
            yield page, last
        if exhausted or len(page) < len(fresh):
            return  # no more stored trades, or the rest lie past the end of the range


async def write_export(store: MarketStore, req: ExportRequest, fmt: str, output: Path) -> int:
    """Write every record of `req` to `output` in `fmt`; returns the number of rows."""
    partial = output.with_name(output.name + ".partial")
    writer = open_writer(fmt, partial, columns_for(req.kind))
    bar = ProgressBar(f"export {req.kind}", total=req.end_ns - req.start_ns)
    rows = 0
    try:
        pages = bar_pages(store, req) if req.kind == "bars" else trade_pages(store, req)
        async for page, reached in pages:
            writer.write(page)
            rows += len(page)
            bar.update(reached - req.start_ns, rows=rows)
        writer.close()
        partial.replace(output)
    except BaseException:
        writer.close()
        partial.unlink(missing_ok=True)
        raise
    finally:
        bar.close()
    return rows


def export_store(settings: ExportSettings | VerifySettings) -> SqlStore:
    """PostgreSQL (DATABASE_URL), the SQLite file --db, or the one SQLite database in --data-dir (what
    the one-shot commands that read stored data, export and verify, open)."""
    dsn = settings.database_dsn()
    if dsn:
        return open_store(dsn, Path("unused.db"))
    if settings.db is not None:
        if not settings.db.is_file():
            raise ConfigError(f"--db {settings.db}: no such database file")
        return open_store(None, settings.db)
    found = [settings.data_dir / name for name in SQLITE_FILES if (settings.data_dir / name).is_file()]
    if not found:
        raise ConfigError(
            f"no database in {settings.data_dir}/ (run `make run` first), or pass --database-url or --db FILE"
        )
    if len(found) > 1:
        names = ", ".join(str(p) for p in found)
        raise ConfigError(f"several databases in {settings.data_dir}/ ({names}): choose one with --db")
    return open_store(None, found[0])


async def resolve_range(
    store: MarketStore, exchange: str, symbol: str, start: str, end: str
) -> tuple[SymbolInfo, int, int]:
    """A command's --exchange/--symbol/--from/--to: the stored symbol and the range in ns (ConfigError
    naming what is wrong)."""
    try:
        start_ns, end_ns = parse_time("--from", start), parse_time("--to", end)
        info = await SymbolDirectory(store, ttl=0).resolve(exchange, symbol)
    except ApiError as exc:
        raise ConfigError(exc.message) from None
    assert start_ns is not None and end_ns is not None  # both are required arguments
    if start_ns >= end_ns:
        raise ConfigError(f"--from {start} must come before --to {end}")
    return info, start_ns, end_ns


async def _request(settings: ExportSettings, store: MarketStore) -> ExportRequest:
    info, start_ns, end_ns = await resolve_range(
        store, settings.exchange, settings.symbol, settings.start, settings.end
    )
    return ExportRequest(
        settings.kind, info.exchange, info.symbol, settings.timeframe, start_ns, end_ns, settings.page_size
    )


async def run_export(settings: ExportSettings) -> None:
    """The command: logs go to logs/export/, the console gets the progress bar (on a terminal) and one
    result line (text or JSON)."""
    as_json = settings.log_format == "json"
    setup_logging_from(settings, "export", console=False)
    store = export_store(settings)
    try:
        req = await _request(settings, store)
        rows = await write_export(store, req, settings.file_format(), settings.output)
    finally:
        await store.close()
        flush_logs()
    what = f"{req.symbol} {req.timeframe} bars" if req.kind == "bars" else f"{req.symbol} trades"
    size = settings.output.stat().st_size
    message = f"{rows:,} {what} on {req.exchange} written to {settings.output} ({size:,} bytes)"
    report_success(f"export {req.kind}", message, as_json=as_json, rows=rows, output=str(settings.output))
