"""The simulated exchange's own trade record and the seam between a market and the server.

A market (synthetic or replayed) produces `MarketTrade`s in order and writes them to the exchange's
`TradeTape`: the server records them in per-symbol history (served over REST) and fans them out to
websocket clients.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import msgspec


class MarketTrade(msgspec.Struct, frozen=True, gc=False):
    """One trade on the simulated exchange.

    symbol: the exchange's own uppercase symbol (BTCUSDT). trade_id: per-symbol id (increasing, but a
    replayed file may repeat one or play a lower one late).
    price/quantity: exact decimal strings, sent unchanged. time_ms: trade time in integer milliseconds
    since the Unix epoch (UTC); the simulator also uses it as the event time `E`.
    is_buyer_maker: the buy order was the resting one (true means the taker sold).
    """

    symbol: str
    trade_id: int
    price: str
    quantity: str
    time_ms: int
    is_buyer_maker: bool


class TradeTape(Protocol):
    """Where a market delivers its trades (implemented by the simulator)."""

    def publish(self, trades: Sequence[MarketTrade]) -> None:
        """Record trades (in order) and make them visible to websocket clients."""
        ...

    def record_past(self, trades: Sequence[MarketTrade]) -> None:
        """Record trades the exchange had before this run (served over REST, never sent live)."""
        ...

    async def subscribed(self) -> None:
        """Wait until a client has subscribed (a paced market starts then, so nothing is played to
        nobody)."""
        ...

    async def demand(self) -> int:
        """For on-demand markets (speed 0): wait until at least one subscribed client has drained
        what was produced, then return how many more trades to produce (always >= 1)."""
        ...


class MarketSource(Protocol):
    """A source of trades for the simulated exchange.

    `run` produces until the market is finished (a replay reached the end of its file) or it is
    cancelled. An on-demand market (`on_demand` true) calls `sink.demand()` before each batch and
    produces only what the slowest subscribed client can take; a paced market follows the wall clock.
    """

    kind: str

    @property
    def symbols(self) -> tuple[str, ...]:
        """Every symbol the market trades, uppercase, in a stable order."""
        ...

    @property
    def on_demand(self) -> bool: ...

    async def run(self, sink: TradeTape) -> None: ...
