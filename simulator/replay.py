"""A replayed market: trades read from a CSV file and played back at a speed multiplier.

File format (header row required): `timestamp_ms,symbol,trade_id,price,quantity,is_buyer_maker`; Binance's
public trade and aggTrade files are read too (simulator.replay_formats).
timestamp_ms: trade time, integer ms since the Unix epoch (UTC); it becomes the trade (and event) time
the venue sends, so bars built from the stream equal bars computed from the file. price/quantity: passed
through exactly as written. is_buyer_maker: true/false (or 1/0). Every row is played, in file order: a
row repeating a trade id (a duplicate) or below the newest id of its symbol (a late trade) too, and the
platform handles them by its policies (a duplicate is stored once; a trade whose bar has closed is late).
Rows that cannot be parsed are skipped with a warning and counted in `skipped_rows`.

speed 1 keeps the original gaps between trades, speed 10 plays ten times faster, speed 0 plays as fast as
the slowest subscribed client reads (and waits while no client is subscribed). A paced replay starts
when the first client has subscribed, so that no trade is played to nobody. The file is streamed, not
loaded, so its size is not limited by memory (history is, see SimulatedExchange's max_history).

Resuming (`resume_after`: per symbol, the id of the last trade already collected, e.g. what a database
holds after a restart): the rows up to and including that trade's row are recorded for REST but not sent
again; playing goes on from the row after it.
"""

from __future__ import annotations

import asyncio
import csv
import itertools
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from loguru import logger

from core.errors import ConfigError
from simulator.replay_formats import OUR_COLUMNS, ReplayFormat, detect
from simulator.symbols import SymbolForm, normalize_symbol
from simulator.trades import MarketTrade, TradeTape
from simulator.venues import REPLAY_FILE_FORMATS

COLUMNS = OUR_COLUMNS
_BOOLS = {"true": True, "false": False, "1": True, "0": False}
_SAFE_DECIMAL = re.compile(r"^[0-9A-Za-z.+\-]+$")  # anything JSON-safe inside quotes
MAX_BATCH = 10_000
MIN_TICK_S = 0.001
_WARN_LIMIT = 20
_MAX_SPELLINGS = 1000

log = logger.bind(component="simulator", market="replay")


class ReplayMarket:
    """Trades of a CSV file (see the module docstring) at `speed` (0 = as fast as clients read).

    `wait_for_subscriber` false starts a paced replay at once (to fill REST history without clients).
    `symbol_form` spells the file's symbols the way the simulated venue does (default: no separator, a
    row's btc-usdt, BTC/USDT or BTCUSDT all become BTCUSDT; a dash-separated form makes them BTC-USDT).
    """

    kind = "replay"

    def __init__(
        self,
        path: str | Path,
        *,
        speed: float = 1.0,
        symbols: Sequence[str] | None = None,
        symbol_form: SymbolForm = normalize_symbol,
        resume_after: Mapping[str, int] | None = None,
        wait_for_subscriber: bool = True,
    ) -> None:
        if speed < 0:
            raise ConfigError(f"replay speed must be >= 0, got {speed}")
        self.path = Path(path)
        self.speed = speed
        self.skipped_rows = 0
        self.replayed_rows = 0
        self.resumed_rows = 0
        self._wait_for_subscriber = wait_for_subscriber
        self._resume_after = {symbol_form(k): v for k, v in (resume_after or {}).items()}
        self._spellings: dict[str, str] = {}
        self._form = symbol_form
        self._format = self._detect_format()
        names = symbols if symbols is not None else self._scan_symbols()
        self._symbols = tuple(dict.fromkeys(symbol_form(s) for s in names))
        self._symbol_set = frozenset(self._symbols)
        if not self._symbols:
            raise ConfigError(f"replay file {self.path} has no trades")

    @property
    def symbols(self) -> tuple[str, ...]:
        return self._symbols

    @property
    def on_demand(self) -> bool:
        return self.speed == 0

    async def run(self, sink: TradeTape) -> None:
        rows = self._live(self.trades(), sink)
        if self.on_demand:
            while True:
                wanted = await sink.demand()
                batch = list(itertools.islice(rows, min(wanted, MAX_BATCH)))
                if batch:
                    sink.publish(batch)
                    self.replayed_rows += len(batch)
                if len(batch) < min(wanted, MAX_BATCH):
                    return
                await asyncio.sleep(0)
        if self._wait_for_subscriber:
            await sink.subscribed()
        await self._run_paced(sink, rows)

    def _live(self, rows: Iterator[MarketTrade], sink: TradeTape) -> Iterator[MarketTrade]:
        """The rows to play: those a resumed replay already played (see the module docstring) are
        recorded with `sink.record_past` instead."""
        resume = dict(self._resume_after)
        past: list[MarketTrade] = []
        for trade in rows:
            last = resume.get(trade.symbol) if resume else None
            if last is not None and trade.trade_id <= last:
                past.append(trade)
                if trade.trade_id == last:
                    del resume[trade.symbol]
                if len(past) >= MAX_BATCH:
                    self._record_past(sink, past)
                    past = []
                continue
            if past:
                self._record_past(sink, past)
                past = []
            yield trade
        if past:
            self._record_past(sink, past)
        for symbol, last in resume.items():
            log.warning(
                "{}: no row of {} has trade id {} (where the database says collection stopped): its rows "
                "up to that id were taken as collected",
                self.path.name,
                symbol,
                last,
            )

    def _record_past(self, sink: TradeTape, trades: list[MarketTrade]) -> None:
        sink.record_past(trades)
        self.resumed_rows += len(trades)

    async def _run_paced(self, sink: TradeTape, rows: Iterator[MarketTrade]) -> None:
        loop = asyncio.get_running_loop()
        pending = next(rows, None)
        if pending is None:
            return
        wall0, ts0 = loop.time(), pending.time_ms
        scale = 1.0 / (1000.0 * self.speed)
        while pending is not None:
            now = loop.time()
            batch: list[MarketTrade] = []
            while (
                pending is not None
                and len(batch) < MAX_BATCH
                and wall0 + (pending.time_ms - ts0) * scale <= now
            ):
                batch.append(pending)
                pending = next(rows, None)
            if batch:
                sink.publish(batch)
                self.replayed_rows += len(batch)
            if pending is not None:
                due = wall0 + (pending.time_ms - ts0) * scale
                await asyncio.sleep(max(MIN_TICK_S, due - loop.time()))

    def trades(self) -> Iterator[MarketTrade]:
        """Every valid row of the file, in file order (rows that cannot be parsed are skipped)."""
        for line_no, row in self._rows():
            trade = self._parse(row, line_no)
            if trade is not None:
                yield trade

    def _parse(self, row: list[str], line_no: int) -> MarketTrade | None:
        if len(row) != len(COLUMNS):
            if row:
                self._skip(line_no, row, f"expected {len(COLUMNS)} columns")
            return None
        ts, symbol, trade_id, price, quantity, maker = row
        if symbol not in self._symbol_set:
            symbol = self._normalized(symbol)
        is_buyer_maker = _BOOLS.get(maker)
        if is_buyer_maker is None:
            is_buyer_maker = _BOOLS.get(maker.strip().lower())
        try:
            time_ms, tid = int(ts), int(trade_id)
        except ValueError:
            self._skip(line_no, row, "timestamp_ms and trade_id must be integers")
            return None
        if symbol not in self._symbol_set or is_buyer_maker is None:
            self._skip(line_no, row, "unknown symbol or is_buyer_maker not true/false")
            return None
        if not (_plain(price) and _plain(quantity)):
            price, quantity = price.strip(), quantity.strip()
            if not (_SAFE_DECIMAL.match(price) and _SAFE_DECIMAL.match(quantity)):
                self._skip(line_no, row, "price/quantity are not decimal strings")
                return None
        return MarketTrade(symbol, tid, price, quantity, time_ms, is_buyer_maker)

    def _normalized(self, spelling: str) -> str:
        """A symbol as the file spells it ('btc-usdt') in the venue's form ('BTCUSDT'); '' if
        invalid. Remembered per spelling (a bounded few), since this runs per row."""
        symbol = self._spellings.get(spelling)
        if symbol is None:
            try:
                symbol = self._form(spelling)
            except ConfigError:
                symbol = ""
            if len(self._spellings) < _MAX_SPELLINGS:
                self._spellings[spelling] = symbol
        return symbol

    def _skip(self, line_no: int, row: list[str], reason: str) -> None:
        self.skipped_rows += 1
        if self.skipped_rows <= _WARN_LIMIT:
            log.warning("{}:{} skipped ({}): {}", self.path.name, line_no, reason, ",".join(row)[:200])

    def _detect_format(self) -> ReplayFormat:
        try:
            with self.path.open(newline="", encoding="utf-8") as handle:
                first = next(csv.reader(handle), [])
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise ConfigError(f"cannot read replay file {self.path}: {exc}") from exc
        return detect(self.path, first, REPLAY_FILE_FORMATS)

    def _rows(self) -> Iterator[tuple[int, list[str]]]:
        """(line number, our six fields) of every data row; rows of another file format converted, those
        that cannot be are skipped."""
        fmt = self._format
        with self.path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            if fmt.has_header:
                next(reader, None)
            start = 2 if fmt.has_header else 1
            if fmt.name == "ours":
                yield from enumerate(reader, start=start)
                return
            for line_no, row in enumerate(reader, start=start):
                if len(row) not in fmt.columns:
                    if row:
                        self._skip(line_no, row, f"expected {' or '.join(map(str, fmt.columns))} columns")
                    continue
                try:
                    yield line_no, fmt.to_ours(row)
                except ValueError:
                    self._skip(line_no, row, "the time must be an integer")

    def _scan_symbols(self) -> list[str]:
        if self._format.symbol is not None:
            return [self._format.symbol]
        seen: dict[str, None] = {}
        for _, row in self._rows():
            if len(row) == len(COLUMNS):
                seen.setdefault(row[1].strip().upper(), None)
        valid = []
        for symbol in seen:
            try:
                valid.append(self._form(symbol))
            except ConfigError as exc:
                log.warning("{}: symbol {!r} ignored: {}", self.path.name, symbol[:40], exc)
        return valid


def _plain(text: str) -> bool:
    """Safe to put between JSON quotes unchanged (checked without a regex: this runs per row)."""
    return bool(text) and text.isprintable() and '"' not in text and "\\" not in text and " " not in text
