"""The registry of simulated venues (name -> protocol class): a new venue is one module and one line here."""

from __future__ import annotations

from core.errors import ConfigError
from simulator.binance.protocol import BinanceProtocol
from simulator.binance.public_files import DESCRIPTION as BINANCE_PUBLIC_FILES
from simulator.binance.public_files import public_file_format as binance_public_file
from simulator.replay_formats import FileFormat
from simulator.venue import VenueOptions, VenueProtocol
from simulator.venues.bybit import BybitProtocol
from simulator.venues.coinbase import CoinbaseProtocol
from simulator.venues.kraken import KrakenProtocol
from simulator.venues.okx import OkxProtocol

DEFAULT_VENUE = "binance"  # what a simulator speaks when no exchange is named
# The venues' public trade files a replay reads besides ours: (reader, what it accepts).
REPLAY_FILE_FORMATS: tuple[tuple[FileFormat, str], ...] = ((binance_public_file, BINANCE_PUBLIC_FILES),)
VENUES: dict[str, type[VenueProtocol]] = {
    "binance": BinanceProtocol,
    "coinbase": CoinbaseProtocol,
    "okx": OkxProtocol,
    "kraken": KrakenProtocol,
    "bybit": BybitProtocol,
}


def venue_class(name: str) -> type[VenueProtocol]:
    """The protocol class registered as `name`; ConfigError naming the known ones otherwise."""
    try:
        return VENUES[name]
    except KeyError:
        raise ConfigError(f"unknown exchange {name!r}; known: {', '.join(sorted(VENUES))}") from None


def make_venue(name: str, options: VenueOptions | None = None) -> VenueProtocol:
    return venue_class(name)(options or VenueOptions())
