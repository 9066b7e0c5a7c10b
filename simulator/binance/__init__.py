"""A simulated Binance Spot exchange: market streams and REST on one port, with fault injection."""

from simulator.binance.server import BinanceSimulator

__all__ = ["BinanceSimulator"]
