"""The processor stores each symbol with the assets its collector described on the feed board, in process
and over Redis: a perpetual (BTC-USDT-PERP) is base BTC, quote USDT. A symbol nobody described (no
description, or a board that cannot be read) is still stored, traded and barred, with the assets its
canonical symbol suggests, and that guess is logged once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import msgspec
import pytest
from loguru import logger

from collectors.adapter import ExchangeAdapter
from collectors.registry import create_adapter
from core.clock import ManualClock
from core.errors import StorageError
from core.ports import FeedBoard
from core.types import Delivery, SymbolInfo, Trade
from cryptostock.wiring import describe_instruments
from monitoring.metrics import PlatformMetrics
from processor.service import ProcessorService
from processor.warm_up import GUESS_RECHECK_NS, Instruments
from storage.memory_bus import InProcessBus
from storage.memory_cache import MemoryCache
from storage.redis_cache import RedisCache
from storage.sqlite import SQLiteStore

VENUE = "binance_futures"  # the registered venue whose canonical symbols carry a suffix
RECEIVED_NS = 1_709_647_700 * 10**9  # after the recorded frames' event times
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "venues" / VENUE


def futures_adapter() -> ExchangeAdapter:
    listing = create_adapter(VENUE)
    return create_adapter(VENUE, listing.parse_symbols((FIXTURES / "symbols.json").read_bytes()))


def recorded_trades(adapter: ExchangeAdapter) -> list[Trade]:
    lines = (FIXTURES / "frames.txt").read_bytes().splitlines()
    return [trade for n, line in enumerate(lines, 1) for trade in adapter.parse(line, RECEIVED_NS + n)]


@pytest.fixture(params=["memory", "redis"])
async def board(
    request: pytest.FixtureRequest, redis_url: str, metrics: PlatformMetrics
) -> AsyncIterator[FeedBoard]:
    cache: RedisCache | MemoryCache = MemoryCache(metrics=metrics)
    if request.param == "redis":
        cache = RedisCache(redis_url, prefix=f"instr-{uuid.uuid4().hex[:8]}", metrics=metrics)
    yield cache
    await cache.close()


@pytest.fixture
def warnings() -> Iterator[list[str]]:
    messages: list[str] = []
    sink = logger.add(lambda m: messages.append(m.record["message"]), level="WARNING")
    yield messages
    logger.remove(sink)


async def process(
    tmp_path: Path, metrics: PlatformMetrics, board: FeedBoard | None, trades: list[Trade]
) -> SQLiteStore:
    store = SQLiteStore(tmp_path / "db.sqlite", metrics=metrics)
    await store.migrate()
    service = ProcessorService(
        InProcessBus(metrics=metrics), store, MemoryCache(metrics=metrics), timeframes=("1s",), grace_ns=0,
        feeds=board, metrics=metrics,
    )  # fmt: skip
    await service.process([Delivery(f"trades:{VENUE}:{t.symbol}", str(i), [t]) for i, t in enumerate(trades)])
    return store


async def test_a_perpetual_is_stored_with_the_assets_its_collector_described(
    tmp_path: Path, metrics: PlatformMetrics, board: FeedBoard, warnings: list[str]
) -> None:
    adapter = futures_adapter()
    trades = recorded_trades(adapter)
    assert {t.symbol for t in trades} >= {"BTC-USDT-PERP"}
    await describe_instruments(board, adapter, sorted({t.raw_symbol for t in trades}))
    store = await process(tmp_path, metrics, board, trades)
    symbols = {info.symbol: info for info in await store.symbols()}
    assert symbols["BTC-USDT-PERP"] == SymbolInfo(VENUE, "BTC-USDT-PERP", "BTCUSDT", "BTC", "USDT")
    assert all(type(info) is SymbolInfo for info in await board.instruments())  # no venue extras
    assert not [m for m in warnings if "no collector described" in m]
    await store.close()


class UnreadableBoard(MemoryCache):
    async def instruments(self) -> list[SymbolInfo]:
        raise StorageError("board down")


@pytest.mark.parametrize("described", ["nothing", "unreadable"])
async def test_an_undescribed_symbol_is_stored_with_assumed_assets_and_logged_once(
    tmp_path: Path, metrics: PlatformMetrics, warnings: list[str], described: str
) -> None:
    trades = recorded_trades(futures_adapter())
    last = trades[-1]  # and a trade two seconds later, which closes the bars of the recorded ones
    assert last.sequence is not None
    trades.append(
        msgspec.structs.replace(
            last,
            trade_id=str(last.sequence + 1),
            sequence=last.sequence + 1,
            ts_event=last.ts_event + 2 * 10**9,
        )
    )
    board = MemoryCache(metrics=metrics) if described == "nothing" else UnreadableBoard(metrics=metrics)
    store = await process(tmp_path, metrics, board, trades)
    symbols = {info.symbol: info for info in await store.symbols()}
    assert symbols["BTC-USDT-PERP"] == SymbolInfo(VENUE, "BTC-USDT-PERP", "BTCUSDT", "BTC", "USDT")
    assert len(await store.trades(VENUE, "BTC-USDT-PERP", limit=1000)) == sum(
        t.symbol == "BTC-USDT-PERP" for t in trades
    )
    assert await store.bars(VENUE, last.symbol, "1s")
    guesses = [m for m in warnings if "no collector described" in m]
    assert len(guesses) == len({t.symbol for t in trades})  # once per symbol, however many trades
    await store.close()


async def test_a_stored_guess_is_corrected_at_start_from_its_collectors_description(
    tmp_path: Path, metrics: PlatformMetrics, board: FeedBoard
) -> None:
    """A row written before its collector described the instrument (an older processor split the
    canonical symbol and stored quote USDT-PERP) is rewritten when a processor starts."""
    adapter = futures_adapter()
    await describe_instruments(board, adapter, ["BTCUSDT"])
    store = SQLiteStore(tmp_path / "db.sqlite", metrics=metrics)
    await store.migrate()
    await store.upsert_symbols([SymbolInfo(VENUE, "BTC-USDT-PERP", "BTCUSDT", "BTC", "USDT-PERP")])
    service = ProcessorService(
        InProcessBus(metrics=metrics), store, MemoryCache(metrics=metrics), timeframes=("1s",), grace_ns=0,
        feeds=board, metrics=metrics,
    )  # fmt: skip
    running = asyncio.create_task(service.run())
    try:
        for _ in range(200):
            symbols = {info.symbol: info for info in await store.symbols()}
            if symbols["BTC-USDT-PERP"].quote == "USDT":
                break
            await asyncio.sleep(0.02)
        assert symbols["BTC-USDT-PERP"] == SymbolInfo(VENUE, "BTC-USDT-PERP", "BTCUSDT", "BTC", "USDT")
    finally:
        service.stop()
        await asyncio.wait_for(running, 10)
        await store.close()


class CountingBoard(MemoryCache):
    reads = 0

    async def instruments(self) -> list[SymbolInfo]:
        self.reads += 1
        return await super().instruments()


async def test_a_guess_is_corrected_while_running_once_its_collector_describes_it(
    tmp_path: Path, metrics: PlatformMetrics
) -> None:
    """A symbol first seen before its collector described it (the processor started first) is stored from
    a guess; once the description is on the board, the running processor stores it instead, without a
    restart, and looks at the board for guesses at most every GUESS_RECHECK_NS."""
    trades = [t for t in recorded_trades(futures_adapter()) if t.symbol == "BTC-USDT-PERP"]
    board = CountingBoard(metrics=metrics)
    store = SQLiteStore(tmp_path / "db.sqlite", metrics=metrics)
    await store.migrate()
    clock = ManualClock(RECEIVED_NS)
    service = ProcessorService(
        InProcessBus(metrics=metrics), store, MemoryCache(metrics=metrics), timeframes=("1s",), grace_ns=0,
        feeds=board, metrics=metrics, clock=clock,
    )  # fmt: skip
    await service.process([Delivery(f"trades:{VENUE}:{t.symbol}", str(i), [t]) for i, t in enumerate(trades)])
    assert (await store.symbols())[0].quote == "USDT"  # the guess: the canonical symbol's second part
    described = SymbolInfo(VENUE, "BTC-USDT-PERP", "BTCUSDT", "BTC", "USDⓈ")  # whatever it says, it wins
    await board.put_instruments([described])
    await service.close_due()
    assert (await store.symbols())[0].quote == "USDT"  # the board was read for the guess just now
    clock.advance(GUESS_RECHECK_NS)
    await service.close_due()
    assert await store.symbols() == [described]
    reads = board.reads
    clock.advance(GUESS_RECHECK_NS)
    await service.close_due()
    assert board.reads == reads  # nothing guessed any more: the board is not read for instruments
    await store.close()


async def test_guesses_are_rechecked_at_most_every_interval(metrics: PlatformMetrics) -> None:
    board = CountingBoard(metrics=metrics)
    instruments = Instruments(board, logger)
    await instruments.info(VENUE, "ETH-USDT-PERP", "ETHUSDT")
    first = board.reads
    assert await instruments.described_guesses(GUESS_RECHECK_NS) == []
    assert board.reads == first + 1
    assert await instruments.described_guesses(GUESS_RECHECK_NS + 1) == []  # too soon: not read
    assert board.reads == first + 1
    await board.put_instruments([SymbolInfo(VENUE, "ETH-USDT-PERP", "ETHUSDT", "ETH", "USDT")])
    assert await instruments.described_guesses(2 * GUESS_RECHECK_NS) == []  # as guessed: nothing to store
    assert await instruments.described_guesses(4 * GUESS_RECHECK_NS) == []
    assert board.reads == first + 2  # no guess left
