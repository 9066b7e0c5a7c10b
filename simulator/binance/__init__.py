"""A simulated Binance Spot exchange: market streams and REST on one port, with fault injection."""

from __future__ import annotations

from typing import Any

from simulator.binance.protocol import BinanceProtocol
from simulator.exchange import SimulatedExchange
from simulator.trades import MarketSource
from simulator.venue import VenueOptions

__all__ = ["BinanceProtocol", "BinanceSimulator"]


class BinanceSimulator(SimulatedExchange):
    """The shared simulated exchange speaking Binance Spot (times in seconds; weight_limit: REST weight
    per minute before 429, None = unlimited). Other keywords: see SimulatedExchange."""

    def __init__(
        self,
        market: MarketSource,
        *,
        ping_interval: float = 20.0,
        ping_timeout: float = 60.0,
        weight_limit: int | None = None,
        **kwargs: Any,
    ) -> None:
        options = VenueOptions(
            ping_interval=ping_interval, ping_timeout=ping_timeout, weight_limit=weight_limit
        )
        super().__init__(market, BinanceProtocol(options), **kwargs)
