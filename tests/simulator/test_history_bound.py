"""The simulator's history stays bounded on a long paced run (finding: `make run` grew to 1.4 GB in ten
minutes at 5,000 trades/s, all of it history), while REST keeps answering for what it holds."""

from __future__ import annotations

import asyncio
import time
import tracemalloc

import httpx
import pytest

from monitoring.metrics import PlatformMetrics
from simulator.exchange import SimulatedExchange
from simulator.history import SymbolHistory
from simulator.serve import SimulatorSettings, build_simulator
from simulator.synthetic import SyntheticMarket
from simulator.trades import MarketTrade
from simulator.venues import make_venue

RATE = 5_000  # trades per second of market time, all on one symbol (the worst case for one history)
AGE_S = 10


def trades(start: int, count: int, t0: int = 1_700_000_000_000) -> list[MarketTrade]:
    """`count` trades from id `start` on, RATE per second of trade time from `t0` (ms) at id 0."""
    return [
        MarketTrade("BTCUSDT", i, "67000.10", "0.00100000", t0 + i * 1000 // RATE, False)
        for i in range(start, start + count)
    ]


def test_a_long_run_keeps_a_bounded_history_by_age() -> None:
    history = SymbolHistory("BTCUSDT", max_len=2_000_000, max_age_ms=AGE_S * 1000)
    bound = RATE * AGE_S * 5 // 4 + RATE  # the age plus the trimming slack (a quarter of it)
    longest = 0
    for start in range(0, RATE * 120, 10_000):  # two minutes of market time, twelve times the age
        for t in trades(start, 10_000):
            history.append((t, b"", False))
        longest = max(longest, len(history))
    assert longest <= bound
    newest = RATE * 120 - 1
    held = history.retained()
    assert held[-1][0].trade_id == newest
    assert held[0][0].time_ms >= held[-1][0].time_ms - AGE_S * 1000 * 5 // 4
    assert len(held) >= RATE * AGE_S  # never less than the age asked for
    oldest = held[0][0].trade_id
    assert [e[0].trade_id for e in history.from_id(oldest + 5, 3)] == [oldest + 5, oldest + 6, oldest + 7]
    assert history.from_id(0, 2)[0][0].trade_id == oldest  # below the reach: the oldest held


@pytest.mark.slow  # about 6 s: 120,000 trades encoded under tracemalloc
async def test_memory_of_a_paced_exchange_stops_growing(metrics: PlatformMetrics) -> None:
    """SimulatedExchange as `cryptostock simulate`/`run` build it: after the history reaches its age, the
    memory it holds stays flat however long the market runs."""
    venue = make_venue("binance")
    market = SyntheticMarket(["BTCUSDT"], tps=RATE, seed=1, symbol_form=venue.raw_symbol)
    age = 2
    sim = SimulatedExchange(market, venue, metrics=metrics, max_history_age_s=age)
    tracemalloc.start()
    try:
        sizes = []
        for step in range(4):  # four times 6 s of market time (three times the age)
            for start in range(step * RATE * 6, (step + 1) * RATE * 6, 5_000):
                sim.publish(trades(start, 5_000))
            sizes.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    assert len(sim.history_of("BTCUSDT")) <= RATE * age * 5 // 4 + 5_000
    assert max(sizes[1:]) < sizes[0] * 1.3, sizes  # flat once the age is reached


async def test_rest_answers_for_what_the_bounded_history_holds(metrics: PlatformMetrics) -> None:
    settings = SimulatorSettings(
        exchange="binance", port=0, tps=0.001, seed=1, max_history_age=AGE_S, start_trade_id=1
    )  # the market makes a trade now and then; the test feeds the rest, after it in ids and time
    sim = build_simulator(settings, metrics)
    await sim.start()
    try:
        await asyncio.sleep(0.2)  # the market's first cluster (its next is due in about 1,000 s)
        t0 = time.time_ns() // 1_000_000
        for start in range(10_000, RATE * 60, 10_000):
            sim.publish(trades(start, 10_000, t0))
        held = sim.history("BTCUSDT")
        oldest, newest = held[0].trade_id, held[-1].trade_id
        assert len(held) <= RATE * AGE_S * 5 // 4 + 10_000
        async with httpx.AsyncClient(base_url=sim.rest_url, timeout=10) as client:
            page = await client.get(
                "/api/v3/historicalTrades", params={"symbol": "BTCUSDT", "fromId": oldest + 10, "limit": 5}
            )
            assert page.status_code == 200, page.text
            assert [t["id"] for t in page.json()] == list(range(oldest + 10, oldest + 15))
            latest = await client.get("/api/v3/historicalTrades", params={"symbol": "BTCUSDT", "limit": 3})
            assert [t["id"] for t in latest.json()] == [newest - 2, newest - 1, newest]
    finally:
        await sim.stop()
