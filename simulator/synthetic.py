"""A synthetic market: per-symbol random walks with bursty arrivals.

Arrivals come in clusters (a taker order sweeping one to several fills at the same millisecond), clusters
arrive as a Poisson process, and the long-run mean is `tps` trades per second in TOTAL across all symbols
(each cluster picks one symbol uniformly). Prices live on a per-symbol tick grid and are rendered, like
quantities, as decimal strings with 8 decimals. Trade ids are consecutive per symbol from
`start_trade_id`. The trade time is the wall clock in ms when the trade is generated.

With a `seed`, the sequence of trades (symbols, ids, prices, quantities, sides) is reproducible; their
timestamps are not (they are wall-clock). `tps <= 0` makes the market on-demand: it produces only as fast
as the slowest subscribed client drains (for benchmarks).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Mapping, Sequence

from simulator.symbols import SymbolForm, normalize_symbol
from simulator.trades import MarketTrade, TradeTape

UNITS = 100_000_000  # strings carry 8 decimals: amounts are kept as integers of 1e-8
DEFAULT_START_PRICES: dict[str, float] = {
    "BTC": 60_000.0, "ETH": 3_000.0, "BNB": 550.0, "SOL": 150.0, "XRP": 0.55, "DOGE": 0.12,
    "ADA": 0.45, "LTC": 80.0, "DOT": 7.0, "TRX": 0.12, "LINK": 15.0, "AVAX": 35.0,
}  # fmt: skip
MAX_BATCH = 50_000
MIN_TICK_S = 0.001  # paced generation wakes at most once per millisecond
MEAN_NOTIONAL = 400.0  # quote units per fill, on average
VOLATILITY_PER_CLUSTER = 2e-5  # relative standard deviation of the price move between clusters


def format_units(units: int) -> str:
    """Integer amount of 1e-8 -> '123.45000000'."""
    return f"{units // UNITS}.{units % UNITS:08d}"


def _tick_units(price: float) -> int:
    """Price grid: about 5-6 significant digits, between 1e-8 and 0.01."""
    exponent = math.floor(math.log10(price)) - 5
    tick: float = 10 ** (exponent + 8)  # a fraction of a unit for prices below 1e-3 (then 1 unit)
    return max(1, min(UNITS // 100, round(tick)))


def _lot_units(price: float) -> int:
    """Quantity step: 1e-5 for ~10^4-priced assets up to 1 for sub-unit coins."""
    exponent = max(-5, min(0, -math.floor(math.log10(price)) - 1))
    lot: int = 10 ** (exponent + 8)  # exponent + 8 >= 3: an integer
    return lot


class _Walk:
    """One symbol's state: next trade id and price in ticks."""

    __slots__ = ("lot", "next_id", "price_ticks", "symbol", "tick")

    def __init__(self, symbol: str, start_price: float, next_id: int) -> None:
        self.symbol = symbol
        self.tick = _tick_units(start_price)
        self.lot = _lot_units(start_price)
        self.price_ticks = max(10, round(start_price * UNITS / self.tick))
        self.next_id = next_id


class SyntheticMarket:
    """Random-walk trades for `symbols` at `tps` trades per second in total (see the module docstring).

    `symbol_form` spells the symbols the way the simulated venue does (default: no separator, BTCUSDT).
    `next_trade_ids` continues symbols' ids past those given (e.g. what a database already holds), so a
    restarted simulator never reuses an id.
    """

    kind = "synthetic"

    def __init__(
        self,
        symbols: Sequence[str],
        *,
        tps: float = 50.0,
        seed: int | None = None,
        start_trade_id: int = 1_000_000,
        next_trade_ids: Mapping[str, int] | None = None,
        start_prices: Mapping[str, float] | None = None,
        symbol_form: SymbolForm = normalize_symbol,
    ) -> None:
        names = list(dict.fromkeys(symbol_form(s) for s in symbols))
        if not names:
            raise ValueError("a synthetic market needs at least one symbol")
        prices = {symbol_form(k): v for k, v in (start_prices or {}).items()}
        next_ids = {symbol_form(k): v for k, v in (next_trade_ids or {}).items()}
        self._walks = [
            _Walk(s, prices.get(s) or _default_price(s), max(start_trade_id, next_ids.get(s, 0)))
            for s in names
        ]
        self.tps = tps
        self._rng = random.Random(seed)
        self._arrivals = random.Random(None if seed is None else seed ^ 0x5EED)
        self._mean_cluster = 2.0

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(w.symbol for w in self._walks)

    @property
    def on_demand(self) -> bool:
        return self.tps <= 0

    def generate(self, count: int, time_ms: int) -> list[MarketTrade]:
        """At least `count` trades (whole clusters), all stamped `time_ms`."""
        trades: list[MarketTrade] = []
        while len(trades) < count:
            self._cluster(time_ms, trades)
        return trades

    async def run(self, sink: TradeTape) -> None:
        if self.on_demand:
            while True:
                wanted = await sink.demand()
                sink.publish(self.generate(min(wanted, MAX_BATCH), _now_ms()))
                await asyncio.sleep(0)
        await self._run_paced(sink)

    async def _run_paced(self, sink: TradeTape) -> None:
        loop = asyncio.get_running_loop()
        next_due = loop.time()
        while True:
            cluster_rate = self.tps / self._mean_cluster  # tps may change while running (a fault)
            now = loop.time()
            if now - next_due > 1.0:  # far behind (the loop was blocked): do not replay the backlog
                next_due = now
            batch: list[MarketTrade] = []
            time_ms = _now_ms()
            while next_due <= now and len(batch) < MAX_BATCH:
                self._cluster(time_ms, batch)
                next_due += self._arrivals.expovariate(cluster_rate)
            if batch:
                sink.publish(batch)
            await asyncio.sleep(max(MIN_TICK_S, next_due - loop.time()))

    def _cluster(self, time_ms: int, out: list[MarketTrade]) -> None:
        rng = self._rng
        walk = self._walks[rng.randrange(len(self._walks))]
        price_units = walk.price_ticks * walk.tick
        sigma_ticks = max(1.0, price_units * VOLATILITY_PER_CLUSTER / walk.tick)
        walk.price_ticks = max(10, walk.price_ticks + round(rng.gauss(0.0, sigma_ticks)))
        taker_sells = rng.random() < 0.5
        step = -1 if taker_sells else 1
        fills = 1
        while rng.random() < 1.0 - 1.0 / self._mean_cluster and fills < 50:
            fills += 1
        mean_lots = max(1.0, MEAN_NOTIONAL * UNITS / (walk.price_ticks * walk.tick) * UNITS / walk.lot)
        price = format_units(walk.price_ticks * walk.tick)
        symbol, lot, next_id = walk.symbol, walk.lot, walk.next_id
        for _ in range(fills):
            lots = max(1, round(rng.expovariate(1.0 / mean_lots)))
            out.append(MarketTrade(symbol, next_id, price, format_units(lots * lot), time_ms, taker_sells))
            next_id += 1
            if rng.random() < 0.3:  # the sweep walks the book by a tick
                walk.price_ticks = max(10, walk.price_ticks + step)
                price = format_units(walk.price_ticks * walk.tick)
        walk.next_id = next_id


def _default_price(symbol: str) -> float:
    for base, price in DEFAULT_START_PRICES.items():
        if symbol.startswith(base):
            return price
    return 100.0


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
