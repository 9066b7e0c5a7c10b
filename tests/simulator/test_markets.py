"""Synthetic markets (pure generation, pacing through the simulator) and symbol handling."""

from __future__ import annotations

import asyncio
import itertools
import re

import pytest

from core.errors import ConfigError
from simulator.markets import SyntheticMarket
from simulator.symbols import normalize_symbol, split_symbol
from tests.simulator.conftest import StartSim

EIGHT_DECIMALS = re.compile(r"^\d+\.\d{8}$")


def test_same_seed_same_trades_and_ids_consecutive_per_symbol() -> None:
    first = SyntheticMarket(["BTCUSDT", "ETHUSDT"], seed=42, start_trade_id=500).generate(2000, 1)
    again = SyntheticMarket(["btcusdt", "ETH-USDT"], seed=42, start_trade_id=500).generate(2000, 1)
    other = SyntheticMarket(["BTCUSDT", "ETHUSDT"], seed=43, start_trade_id=500).generate(2000, 1)
    assert first == again and first != other
    for symbol in ("BTCUSDT", "ETHUSDT"):
        ids = [t.trade_id for t in first if t.symbol == symbol]
        assert ids == list(range(500, 500 + len(ids))) and len(ids) > 500


def test_prices_and_quantities_are_binance_style_strings() -> None:
    market = SyntheticMarket(["BTCUSDT", "DOGEUSDT"], seed=1, start_prices={"DOGEUSDT": 0.12})
    trades = market.generate(5000, 1)
    assert all(EIGHT_DECIMALS.match(t.price) and EIGHT_DECIMALS.match(t.quantity) for t in trades)
    assert all(float(t.price) > 0 and float(t.quantity) > 0 for t in trades)
    btc = [float(t.price) for t in trades if t.symbol == "BTCUSDT"]
    doge = [float(t.price) for t in trades if t.symbol == "DOGEUSDT"]
    assert min(btc) > 40_000 and max(btc) < 80_000
    assert min(doge) > 0.05 and max(doge) < 0.3
    assert {t.is_buyer_maker for t in trades} == {True, False}
    # bursts: several fills of one taker share a millisecond, a side and a symbol
    runs = sum(1 for a, b in itertools.pairwise(trades) if a.symbol == b.symbol)
    assert runs > len(trades) // 3


async def test_tps_paces_the_market_roughly(start_sim: StartSim) -> None:
    sim = await start_sim(SyntheticMarket(["BTCUSDT", "ETHUSDT"], tps=400, seed=5))
    await asyncio.sleep(1.0)
    produced = len(sim.history("BTCUSDT")) + len(sim.history("ETHUSDT"))
    assert 150 < produced < 1000
    times = [t.time_ms for t in sim.history("BTCUSDT")]
    assert times == sorted(times) and times[-1] - times[0] > 500


async def test_tps_0_produces_only_for_subscribed_clients(start_sim: StartSim) -> None:
    sim = await start_sim(SyntheticMarket(["BTCUSDT"], tps=0, seed=6))
    await asyncio.sleep(0.1)
    assert sim.history("BTCUSDT") == []


def test_symbols_normalise_and_split() -> None:
    assert normalize_symbol("btc-usdt") == "BTCUSDT"
    assert split_symbol("ETHBTC") == ("ETH", "BTC")
    assert split_symbol("BTCFDUSD") == ("BTC", "FDUSD")
    assert split_symbol("SOLTRY") == ("SOL", "TRY")
    for bad in ("", "BTC", "BTC USDT", "XYZQQQ"):
        with pytest.raises(ConfigError):
            normalize_symbol(bad)
