"""Markets the simulated exchange can trade: synthetic random walks and CSV replays.

Both implement `MarketSource` (simulator/trades.py): they produce `MarketTrade`s into a `TradeTape`.
"""

from simulator.replay import COLUMNS as REPLAY_COLUMNS
from simulator.replay import ReplayMarket
from simulator.synthetic import SyntheticMarket
from simulator.trades import MarketSource, MarketTrade, TradeTape

__all__ = ["REPLAY_COLUMNS", "MarketSource", "MarketTrade", "ReplayMarket", "SyntheticMarket", "TradeTape"]
