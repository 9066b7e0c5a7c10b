"""MarketStore contract: one test body, run against PostgreSQL and SQLite."""

from __future__ import annotations

import pytest

from core.errors import ConfigError
from core.types import CoverageEvent, CoverageKind, Side, SymbolInfo
from monitoring.metrics import PlatformMetrics
from storage.postgres import PostgresStore
from storage.sqlite import SQLiteStore
from tests.storage.conftest import MINUTE, T0, make_bar, make_trade

Store = PostgresStore | SQLiteStore


async def test_migrate_is_idempotent(store: Store) -> None:
    before = await store.applied_migrations()
    await store.migrate()
    await store.migrate()
    assert await store.applied_migrations() == before
    assert before and before[0] == 1


async def test_exact_price_strings_round_trip(store: Store) -> None:
    prices = ["0.00150000", "67000.10", "1e-8", "0.1", "42", "3.14159265358979323846"]
    trades = [make_trade(i, price=p, quantity=p) for i, p in enumerate(prices, start=1)]
    assert await store.insert_trades(trades) == trades
    got = await store.trades("binance", "BTC-USDT", limit=100)
    # 1e-8 is normalised by numeric to 0.00000001 in PostgreSQL; every plain decimal string is kept as sent.
    expected = [p if "e" not in p or isinstance(store, SQLiteStore) else "0.00000001" for p in prices]
    assert [t.price for t in got] == expected
    assert [t.quantity for t in got] == expected


async def test_insert_trades_returns_only_new(store: Store, metrics: PlatformMetrics) -> None:
    first = [make_trade(i) for i in range(1, 6)]
    assert await store.insert_trades(first) == first
    again = [make_trade(3), make_trade(6), make_trade(6), make_trade(4), make_trade(7, side=Side.SELL)]
    new = await store.insert_trades(again)
    assert [t.sequence for t in new] == [6, 7]
    assert await store.insert_trades(first) == []
    assert await store.insert_trades([]) == []
    assert await store.insert_trades([make_trade(8), make_trade(8)]) == [make_trade(8)]  # within one batch
    assert metrics.registry.get_sample_value("db_rows_written_total", {"table": "trades"}) == 8
    stored = await store.trades("binance", "BTC-USDT", limit=100)
    assert [t.sequence for t in stored] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert stored[-2] == make_trade(7, side=Side.SELL)


async def test_a_trade_id_seen_again_is_a_duplicate_whatever_its_event_time(
    store: Store, metrics: PlatformMetrics
) -> None:
    """The identity of a trade is (exchange, symbol, trade_id): a venue (or its REST API during a repair)
    that sends a stored trade again with another timestamp must not make it a second trade."""
    first = make_trade(1)
    assert await store.insert_trades([first]) == [first]
    moved = make_trade(1, ts=first.ts_event + 3_000_000)  # same id, 3 ms later
    assert await store.insert_trades([moved]) == []
    assert await store.insert_trades([moved, make_trade(2)]) == [make_trade(2)]
    earlier = make_trade(2, ts=first.ts_event - 60_000_000_000)  # a minute earlier: another chunk
    assert await store.insert_trades([earlier]) == []
    # within one batch the first occurrence wins, and only it is stored
    a, b = make_trade(3), make_trade(3, ts=make_trade(3).ts_event + 1_000_000)
    assert await store.insert_trades([a, b, make_trade(4)]) == [a, make_trade(4)]
    # another symbol or exchange with the same id is another trade
    other = make_trade(1, symbol="ETH-USDT")
    assert await store.insert_trades([other]) == [other]
    stored = await store.trades("binance", "BTC-USDT", limit=100)
    assert [(t.trade_id, t.ts_event) for t in stored] == [
        (t.trade_id, t.ts_event) for t in (first, make_trade(2), a, make_trade(4))
    ]
    assert await store.count_trades("binance", "BTC-USDT", 0, 2**62) == 4
    assert metrics.registry.get_sample_value("db_rows_written_total", {"table": "trades"}) == 5


async def test_trades_recent_oldest_first_and_since(store: Store) -> None:
    await store.insert_trades([make_trade(i) for i in range(1, 21)])
    await store.insert_trades([make_trade(1, symbol="ETH-USDT")])
    recent = await store.trades("binance", "BTC-USDT", limit=5)
    assert [t.sequence for t in recent] == [16, 17, 18, 19, 20]
    since = await store.trades("binance", "BTC-USDT", limit=3, since_ns=make_trade(10).ts_event)
    assert [t.sequence for t in since] == [10, 11, 12]
    assert await store.trades("binance", "SOL-USDT") == []


async def test_bars_upsert_replace_and_ranges(store: Store, metrics: PlatformMetrics) -> None:
    await store.upsert_bars([make_bar(m, sma=float(m)) for m in range(10)])
    replaced = make_bar(4, close="99.99000000", sma=None)
    await store.upsert_bars([replaced, make_bar(0, timeframe="5m")])
    bars = await store.bars("binance", "BTC-USDT", "1m")
    assert len(bars) == 10
    assert bars[4] == replaced
    assert bars[5] == make_bar(5, sma=5.0)
    assert bars[5].indicators.rsi_14 == 55.5 and bars[5].indicators.bb_lower is None
    assert bars[5].features.taker_buy_ratio == 2 / 3 and bars[5].features.rsi_norm is None
    last3 = await store.bars("binance", "BTC-USDT", "1m", limit=3)
    assert [b.bar.open_time for b in last3] == [T0 + m * MINUTE for m in (7, 8, 9)]
    window = await store.bars("binance", "BTC-USDT", "1m", start_ns=T0 + 2 * MINUTE, end_ns=T0 + 5 * MINUTE)
    assert [b.bar.open_time for b in window] == [T0 + m * MINUTE for m in (2, 3, 4)]
    assert len(await store.bars("binance", "BTC-USDT", "5m")) == 1
    assert await store.last_bar_close("binance", "BTC-USDT", "1m") == T0 + 10 * MINUTE
    assert await store.last_bar_close("binance", "BTC-USDT", "1h") is None
    assert metrics.registry.get_sample_value("db_rows_written_total", {"table": "bars"}) == 12


async def test_symbols_upsert(store: Store) -> None:
    assert await store.symbols() == []
    eth = SymbolInfo("binance", "ETH-USDT", "ETHUSDT", "ETH", "USDT")
    btc = SymbolInfo("binance", "BTC-USDT", "BTCUSDT", "BTC", "USDT")
    await store.upsert_symbols([eth, btc])
    await store.upsert_symbols([SymbolInfo("binance", "BTC-USDT", "btcusdt", "BTC", "USDT")])
    assert await store.symbols() == [SymbolInfo("binance", "BTC-USDT", "btcusdt", "BTC", "USDT"), eth]


async def test_ensure_source_mismatch_raises(store: Store) -> None:
    assert await store.data_source() is None
    await store.ensure_source("simulated")
    await store.ensure_source("simulated")
    assert await store.data_source() == "simulated"
    with pytest.raises(ConfigError, match="simulated"):
        await store.ensure_source("live")
    with pytest.raises(ConfigError, match="unknown data source"):
        await store.ensure_source("replay")


async def test_operations_are_measured(store: Store, metrics: PlatformMetrics) -> None:
    await store.insert_trades([make_trade(1)])
    assert await store.ping()
    r = metrics.registry
    assert r.get_sample_value("db_queries_total", {"operation": "insert_trades", "status": "ok"}) == 1
    assert r.get_sample_value("db_query_duration_seconds_count", {"operation": "insert_trades"}) == 1
    size = r.get_sample_value("db_connection_pool_size")
    assert size is not None and size >= 1
    assert r.get_sample_value("db_connections_available") == size


async def test_nanosecond_times_round_trip_at_store_precision(store: Store) -> None:
    ts = T0 + 123_456_789
    await store.insert_trades([make_trade(1, ts=ts)])
    (got,) = await store.trades("binance", "BTC-USDT")
    # PostgreSQL keeps microseconds (floored); SQLite keeps the integer ns.
    assert got.ts_event == (ts // 1000 * 1000 if isinstance(store, PostgresStore) else ts)
    assert await store.insert_trades([make_trade(1, ts=ts)]) == []


async def test_coverage_events_are_stored_once_and_found_by_overlap(store: Store) -> None:
    def event(kind: CoverageKind, start: int, end: int, recorded: int, **extra: object) -> CoverageEvent:
        return CoverageEvent(
            "okx", "BTC-USDT", "BTC-USDT", kind, T0 + start, T0 + end, T0 + recorded, **extra
        )

    gap = event(CoverageKind.GAP, 100, 200, 300, first_sequence=7849, last_sequence=7850, trades=2)
    repaired = event(CoverageKind.REPAIRED, 100, 200, 400, first_sequence=7849, last_sequence=7850, trades=2)
    unverified = event(CoverageKind.UNVERIFIED, 1_000, 5_000, 6_000, detail="outage longer than REST reach")
    await store.insert_coverage([gap, repaired, unverified])
    await store.insert_coverage([gap])  # delivered twice: stored once
    assert await store.coverage("okx", "BTC-USDT") == [gap, repaired, unverified]
    assert await store.coverage("okx", "BTC-USDT", start_ns=T0 + 201) == [unverified]
    assert await store.coverage("okx", "BTC-USDT", start_ns=T0 + 150, end_ns=T0 + 1_000) == [gap, repaired]
    assert await store.coverage("okx", "ETH-USDT") == []


async def test_open_gaps_are_the_gaps_not_yet_repaired_or_abandoned(store: Store) -> None:
    def event(
        kind: CoverageKind, first: int, last: int, recorded: int, raw: str = "BTCUSDT"
    ) -> CoverageEvent:
        return CoverageEvent(
            "binance",
            raw.replace("USDT", "-USDT"),
            raw,
            kind,
            T0,
            T0 + 1,
            T0 + recorded,
            first,
            last,
            last - first + 1,
        )

    await store.insert_coverage(
        [
            event(CoverageKind.GAP, 100, 109, 1),
            event(CoverageKind.REPAIRED, 100, 104, 2),  # half of it came back
            event(CoverageKind.GAP, 200, 209, 3),
            event(CoverageKind.ABANDONED, 200, 209, 4),  # given up on: not open
            event(CoverageKind.GAP, 50, 55, 5, raw="ETHUSDT"),
        ]
    )
    open_gaps = await store.open_gaps("binance")
    assert sorted((e.raw_symbol, e.first_sequence, e.last_sequence, e.trades) for e in open_gaps) == [
        ("BTCUSDT", 105, 109, 5),
        ("ETHUSDT", 50, 55, 6),
    ]
    assert await store.open_gaps("okx") == []


async def test_mark_incomplete_changes_stored_bars_once_in_one_statement(store: Store) -> None:
    """A late trade's closed bar becomes incomplete; the keys returned are those that changed (a bar
    already incomplete, or one not stored, is not), so the revision metric counts each bar once."""
    bars = [make_bar(i) for i in range(3)]
    await store.upsert_bars(bars)
    keys = [(b.bar.exchange, b.bar.symbol, b.bar.timeframe, b.bar.open_time) for b in bars]
    assert await store.mark_incomplete([*keys[:2], ("binance", "NO-SUCH", "1m", 0)]) == keys[:2]
    assert await store.mark_incomplete(keys) == keys[2:]
    assert await store.mark_incomplete([]) == []
    stored = await store.bars("binance", "BTC-USDT", "1m")
    assert [item.bar.coverage.value for item in stored] == ["incomplete"] * 3
