"""Running a simulated exchange as a service: typed settings, and `serve` which runs until cancelled."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.errors import ConfigError
from monitoring.metrics import METRICS, PlatformMetrics
from simulator.exchange import (
    DEFAULT_MAX_BACKLOG,
    DEFAULT_MAX_HISTORY,
    DEFAULT_MAX_HISTORY_AGE_S,
    SimulatedExchange,
)
from simulator.faults import FaultRequest
from simulator.replay import ReplayMarket
from simulator.synthetic import SyntheticMarket
from simulator.trades import MarketSource
from simulator.venue import VenueOptions, VenueProtocol
from simulator.venues import DEFAULT_VENUE, VENUES, make_venue


class SimulatorSettings(BaseModel):
    """Settings of `cryptostock simulate` / `python -m simulator`.

    exchange: the venue to speak (a key of simulator.venues.VENUES: binance, coinbase, okx, kraken, bybit).
    symbols: for a synthetic market (default: the venue's, e.g. BTCUSDT,ETHUSDT on Binance); for a replay,
    restricts the file's symbols (default: every symbol in the file). Any spelling (btc-usdt, BTC/USDT,
    BTCUSDT) becomes the venue's. tps: synthetic trades per second in total across symbols (0 = as fast as
    the slowest subscribed client reads). replay: CSV path; when set, the market is a replay at `speed`
    (1 = original gaps, 0 = as fast as read). Seconds: ping_interval/ping_timeout (server pings: Binance,
    Coinbase), heartbeat_interval (Coinbase and Kraken heartbeat channels), idle_timeout (OKX closes 4004),
    subscribe_timeout (Coinbase closes a connection that has not subscribed). weight_limit: Binance REST
    weight per minute. faults: injected once at start. max_history: trades kept per symbol for REST;
    max_history_age: seconds of them kept by a paced synthetic market (bounds `make run`'s memory).
    next_trade_ids: per symbol, the id after the last one a database holds: a synthetic market continues
    from there, a replay resumes after that trade's row.
    """

    model_config = ConfigDict(extra="forbid")

    exchange: str = DEFAULT_VENUE
    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=0, le=65535)
    symbols: list[str] | None = None
    tps: float = Field(default=50.0, ge=0)
    seed: int | None = None
    start_trade_id: int = Field(default=1_000_000, ge=0)
    next_trade_ids: dict[str, int] = Field(default_factory=dict)
    replay: Path | None = None
    speed: float = Field(default=1.0, ge=0)
    ping_interval: float = Field(default=20.0, gt=0)
    ping_timeout: float = Field(default=60.0, gt=0)
    heartbeat_interval: float = Field(default=1.0, gt=0)
    idle_timeout: float = Field(default=30.0, gt=0)
    subscribe_timeout: float = Field(default=5.0, gt=0)
    max_history: int = Field(default=DEFAULT_MAX_HISTORY, ge=1)
    max_history_age: float = Field(default=DEFAULT_MAX_HISTORY_AGE_S, gt=0)  # s, by trade time
    max_backlog: int = Field(default=DEFAULT_MAX_BACKLOG, ge=1)
    weight_limit: int | None = Field(default=None, ge=1)
    faults: FaultRequest | None = None

    @field_validator("exchange")
    @classmethod
    def _known_exchange(cls, value: str) -> str:
        if value not in VENUES:
            raise ValueError(f"unknown exchange {value!r}; known: {', '.join(sorted(VENUES))}")
        return value

    @field_validator("faults", mode="before")
    @classmethod
    def _faults_json(cls, value: object) -> object:
        """A flag or environment value arrives as JSON text."""
        return FaultRequest.model_validate_json(value) if isinstance(value, str | bytes) else value

    @field_validator("symbols", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [s.strip() for s in value.split(",") if s.strip()]
        return value

    def venue_options(self) -> VenueOptions:
        return VenueOptions(**self.model_dump(include={f.name for f in dataclasses.fields(VenueOptions)}))


def build_venue(settings: SimulatorSettings) -> VenueProtocol:
    return make_venue(settings.exchange, settings.venue_options())


def build_market(settings: SimulatorSettings, venue: VenueProtocol | None = None) -> MarketSource:
    """The market of `settings`, its symbols spelled the way the venue spells them."""
    venue = venue or build_venue(settings)
    if settings.replay is not None:
        return ReplayMarket(
            settings.replay,
            speed=settings.speed,
            symbols=settings.symbols,
            symbol_form=venue.raw_symbol,
            resume_after={symbol: next_id - 1 for symbol, next_id in settings.next_trade_ids.items()},
        )
    return SyntheticMarket(
        settings.symbols or venue.default_symbols,
        tps=settings.tps,
        seed=settings.seed,
        start_trade_id=settings.start_trade_id,
        next_trade_ids=settings.next_trade_ids,
        symbol_form=venue.raw_symbol,
    )


def build_simulator(settings: SimulatorSettings, metrics: PlatformMetrics = METRICS) -> SimulatedExchange:
    """The simulated exchange of `settings`. A paced synthetic market (tps > 0, trades stamped with the
    wall clock) keeps `max_history_age` seconds of history; a replay or an on-demand market keeps its
    history by count only (their trade times are not the wall clock)."""
    venue = build_venue(settings)
    market = build_market(settings, venue)
    paced = isinstance(market, SyntheticMarket) and not market.on_demand
    return SimulatedExchange(
        market,
        venue,
        host=settings.host,
        port=settings.port,
        metrics=metrics,
        max_history=settings.max_history,
        max_history_age_s=settings.max_history_age if paced else None,
        max_backlog=settings.max_backlog,
    )


async def serve(
    settings: SimulatorSettings,
    metrics: PlatformMetrics = METRICS,
    *,
    on_ready: Callable[[SimulatedExchange], None] | None = None,
) -> None:
    """Run the simulated exchange until cancelled; then close every websocket with 1001 and return.

    `on_ready` is called with the started simulator (its `port` is the bound one when settings.port is 0).
    """
    simulator = await start_simulator(settings, metrics)
    try:
        if on_ready is not None:
            on_ready(simulator)
        await asyncio.Event().wait()
    finally:
        await simulator.stop()


async def start_simulator(
    settings: SimulatorSettings, metrics: PlatformMetrics = METRICS
) -> SimulatedExchange:
    """Build and start the simulated exchange, with the start-up faults injected; the caller stops it."""
    simulator = build_simulator(settings, metrics)
    await simulator.start()
    if settings.faults is not None:
        try:
            simulator.apply_faults(settings.faults)
        except ValueError as exc:
            await simulator.stop()
            raise ConfigError(f"faults at start: {exc}") from exc
    return simulator
