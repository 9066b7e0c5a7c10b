"""A simulated venue whose klines come from trades, and a store holding the 1m bars the processor's
aggregator built from the same trades: what `cryptostock verify` and the periodic verifier are tested on."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from core.types import Bar, ClosedBar, Indicators, Side, SymbolInfo, Trade
from monitoring.metrics import PlatformMetrics
from processor.bars import BarAggregator
from simulator.exchange import SimulatedExchange
from simulator.markets import SyntheticMarket
from simulator.trades import MarketTrade
from simulator.venues import make_venue
from storage.factory import SqlStore
from storage.postgres import PostgresStore
from storage.sqlite import SQLiteStore
from tests.integration.procs import base_env

MINUTE_MS = 60_000
NS_PER_MS = 1_000_000
MINUTES = 6  # minutes with trades, ending two minutes before the current one
VENUES = {
    "binance": "BTC-USDT",
    "coinbase": "BTC-USD",
    "okx": "BTC-USDT",
    "kraken": "BTC-USD",
    "bybit": "BTC-USDT",
}


@dataclass
class Scene:
    sim: SimulatedExchange
    store: SqlStore
    db_args: list[str]
    env: dict[str, str]
    exchange: str
    symbol: str
    bars: list[Bar]
    start_ms: int
    end_ms: int


def platform_trade(exchange: str, info: SymbolInfo, t: MarketTrade) -> Trade:
    side = Side.SELL if t.is_buyer_maker else Side.BUY
    ns = t.time_ms * NS_PER_MS
    tid = t.trade_id
    return Trade(exchange, info.symbol, info.raw_symbol, str(tid), tid, t.price, t.quantity, side, ns, ns)


def bars_of(trades: list[Trade]) -> list[Bar]:
    """What the processor builds: 1m bars by event time, all closed."""
    aggregator = BarAggregator(["1m"], grace_ns=0)
    closed = aggregator.add_many(trades).closed
    closed += aggregator.close_due(trades[-1].ts_event + 3600 * 10**9)
    return sorted(closed, key=lambda b: b.open_time)


async def open_store(kind: str, tmp_path: Path, pg_url: str | None, metrics: PlatformMetrics) -> SqlStore:
    if kind == "postgres":
        assert pg_url is not None
        store: SqlStore = PostgresStore(pg_url, metrics=metrics)
    else:
        store = SQLiteStore(tmp_path / "verify.db", metrics=metrics)
    await store.migrate()
    return store


async def make_scene(
    exchange: str, tmp_path: Path, metrics: PlatformMetrics, kind: str = "sqlite", pg_url: str | None = None
) -> Scene:
    venue = make_venue(exchange)
    canonical = VENUES[exchange]
    market = SyntheticMarket([canonical], tps=0, seed=7, symbol_form=venue.raw_symbol)
    sim = SimulatedExchange(market, venue, port=0)
    await sim.start()
    raw = venue.raw_symbol(canonical)
    base, quote = canonical.split("-")
    info = SymbolInfo(exchange, canonical, raw, base, quote)
    now_minute = time.time_ns() // NS_PER_MS // MINUTE_MS * MINUTE_MS
    start_ms = now_minute - (MINUTES + 2) * MINUTE_MS
    produced: list[MarketTrade] = []
    for k in range(MINUTES):
        for second in (1, 17, 42, 59):  # several clusters a minute, the last in its final second
            batch = market.generate(3, start_ms + k * MINUTE_MS + second * 1000 + 123)
            sim.publish(batch)
            produced += batch
    bars = bars_of([platform_trade(exchange, info, t) for t in produced])
    assert len(bars) == MINUTES
    store = await open_store(kind, tmp_path, pg_url, metrics)
    await store.upsert_symbols([info])
    await store.upsert_bars([ClosedBar(b, Indicators()) for b in bars])
    db_args = ["--db", str(tmp_path / "verify.db")] if kind == "sqlite" else ["--database-url", pg_url or ""]
    end_ms = start_ms + (MINUTES + 1) * MINUTE_MS  # one quiet minute after the last with trades
    return Scene(sim, store, db_args, base_env(tmp_path), exchange, canonical, bars, start_ms, end_ms)
