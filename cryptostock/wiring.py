"""Builds each stage from settings: the only module that knows which implementation backs which port."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from pathlib import Path

from loguru import logger

from api.app import create_app
from api.server import ApiServer
from collectors.adapter import ExchangeAdapter
from collectors.backfill import RestBackfiller, discover
from collectors.backoff import Backoff
from collectors.outbox import TradePublisher
from collectors.registry import DEFAULT_EXCHANGE, create_connector
from collectors.session import CollectorSession
from collectors.session_metrics import DISCOVERY_FAILED
from collectors.session_options import SessionOptions
from core.errors import ConfigError, ExchangeError, PlatformError
from core.ports import FeedBoard, ResumeSource
from core.types import BusItem, CoverageEvent, ResumePoint
from cryptostock.settings import (
    ApiOptions,
    CollectorOptions,
    CommonSettings,
    ProcessorSettings,
    RunSettings,
    SimulateSettings,
)
from monitoring.health import Health
from monitoring.metrics import METRICS, PlatformMetrics
from simulator.serve import SimulatorSettings
from storage.dead_letters import DeadLetterFile
from storage.factory import Bus, Cache, SqlStore, open_bus, open_cache, open_store
from storage.spool import Spool


async def open_store_for(settings: CommonSettings, *, sqlite_name: str) -> SqlStore:
    """PostgreSQL when DATABASE_URL is set, else SQLite file `sqlite_name` in the data directory."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return open_store(settings.database_dsn(), Path(settings.data_dir) / sqlite_name)


def spool_for(settings: CommonSettings, name: str) -> Spool:
    """The spool of one publishing process (`collector-<exchange>`, `platform`) in the data directory."""
    return Spool(Path(settings.data_dir) / "spool", name)


async def open_bus_for(settings: CommonSettings, *, role: str, spool: Spool | None = None) -> Bus:
    shard_index, shard_count = 0, 1
    if isinstance(settings, ProcessorSettings) and not isinstance(settings, RunSettings):
        shard_index, shard_count = settings.shard_index, settings.shard_count
    if shard_index >= shard_count:
        raise ConfigError(f"--shard-index {shard_index} must be below --shard-count {shard_count}")
    return open_bus(
        settings.redis_dsn(),
        prefix=settings.redis_prefix,
        shard_index=shard_index,
        shard_count=shard_count,
        spool=spool,
        dead_letter_file=DeadLetterFile(Path(settings.data_dir) / "dead-letters.jsonl"),
    )


async def open_cache_for(settings: CommonSettings) -> Cache:
    return open_cache(settings.redis_dsn(), prefix=settings.redis_prefix)


def simulator_settings(
    settings: SimulateSettings | RunSettings,
    exchange: str = DEFAULT_EXCHANGE,
    index: int = 0,
    stored: Sequence[ResumePoint] = (),
) -> SimulatorSettings:
    """The simulated exchange of `cryptostock simulate`, or the one `cryptostock run` starts for the
    `index`-th exchange it collects from (on sim_port + index), continuing each symbol's ids after the
    newest one `stored` (a restarted `make run` never reuses an id)."""
    if isinstance(settings, SimulateSettings):
        return settings.simulator()
    return SimulatorSettings(
        exchange=exchange,
        host="127.0.0.1",
        port=settings.sim_port + index if settings.sim_port else 0,
        symbols=None if settings.replay else settings.symbols_for(exchange),
        tps=settings.tps,
        replay=settings.replay,
        speed=settings.speed,
        next_trade_ids={p.raw_symbol: p.sequence + 1 for p in stored if p.sequence is not None},
    )


def resolve_symbols(adapter: ExchangeAdapter, wanted: list[str] | None) -> list[str]:
    """The venue's raw symbols for what the user asked (raw or canonical spellings; None: the venue's
    defaults); ConfigError naming what the venue does not list."""
    raw: list[str] = []
    for text in wanted or adapter.default_symbols:
        info = adapter.resolve_symbol(text)
        if info is None:
            raise ConfigError(f"{adapter.name} does not list the symbol {text!r}")
        raw.append(info.raw_symbol)
    return list(dict.fromkeys(raw))


async def newest_resume_points(sources: Sequence[ResumeSource], exchange: str) -> list[ResumePoint]:
    """The newest of the sources' resume points per symbol (the bus: what reached it; a store: what it
    holds). A source that cannot answer (Redis or the database down at start) is skipped with a warning:
    the collector starts anyway, and what it missed while away is then not known to be missing."""
    newest: dict[str, ResumePoint] = {}
    for source in sources:
        try:
            points = await source.resume_points(exchange)
        except PlatformError as exc:
            logger.bind(component="collector", exchange=exchange).warning(
                "resume points unavailable ({}): starting without them", exc
            )
            continue
        for point in points:
            known = newest.get(point.raw_symbol)
            if known is None or _later(point, known):
                newest[point.raw_symbol] = point
    return list(newest.values())


async def describe_instruments(
    board: FeedBoard, adapter: ExchangeAdapter, raw_symbols: Sequence[str]
) -> None:
    """Tell the processors what a collector's instruments are (their assets: BTC-USDT-PERP is BTC and
    USDT), before any trade of theirs is published. Best effort: a processor that finds no description
    guesses from the canonical symbol (processor/warm_up.py), and logs it."""
    instruments = [info for raw in raw_symbols if (info := adapter.symbol_info(raw)) is not None]
    try:
        await board.put_instruments(instruments)
    except (PlatformError, OSError) as exc:
        logger.bind(component="collector", exchange=adapter.name).warning(
            "could not describe the instruments on the feed board: {}", exc
        )


def session_options(options: CollectorOptions) -> SessionOptions:
    """The collector session's options from the settings (the one place they are built); what the
    settings do not name keeps SessionOptions' default."""
    return SessionOptions(
        stale_timeout=options.stale_timeout,
        backoff_initial=options.backoff_initial,
        backoff_max=options.backoff_max,
        max_connection_age=options.max_connection_age,
    )


class CollectorRunner:
    """Discovers the exchange's instruments (retrying while it is unreachable), then runs the session.

    `ws_url` / `rest_url` override the options' endpoints (`cryptostock run` points them at its own
    simulator); None everywhere means the exchange's own."""

    def __init__(
        self,
        exchange: str,
        options: CollectorOptions,
        *,
        publisher: TradePublisher,
        ws_url: str | None = None,
        rest_url: str | None = None,
        feed_board: FeedBoard | None = None,
        resume_sources: Sequence[ResumeSource] = (),
        metrics: PlatformMetrics = METRICS,
    ) -> None:
        self._connector = create_connector(options.ws_client)
        self._feed_board = feed_board
        self._resume_sources = resume_sources
        self._exchange = exchange
        self._options = options
        self._ws_url = ws_url or options.ws_url
        self._rest_url = rest_url or options.rest_url
        self._publisher = publisher
        self._metrics = metrics
        self._stopping = asyncio.Event()
        self._session: CollectorSession | None = None
        self._log = logger.bind(component="collector", exchange=exchange)

    async def run(self) -> None:
        backfiller = await self._discover()
        if backfiller is None:
            return
        options = self._options
        try:
            symbols = resolve_symbols(backfiller.adapter, options.symbols_for(self._exchange))
            if self._feed_board is not None:
                await describe_instruments(self._feed_board, backfiller.adapter, symbols)
            resume = await self._resume_points()
            open_gaps = await self._open_gaps()
            self._session = CollectorSession(
                backfiller.adapter,
                symbols,
                publisher=self._publisher,
                options=session_options(options),
                ws_base_url=self._ws_url,
                backfiller=backfiller,
                metrics=self._metrics,
                connector=self._connector,
                feed_board=self._feed_board,
                resume=resume,
                open_gaps=open_gaps,
            )
            self._log.info("collecting {} over {}", ",".join(symbols), options.ws_client)
            if self._stopping.is_set():
                return
            await self._session.run()
        finally:
            await backfiller.close()

    def stop(self) -> None:
        self._stopping.set()
        if self._session is not None:
            self._session.stop()

    @property
    def idle(self) -> bool:
        """Collecting, with every trade read so far handed to the bus (see CollectorSession.idle)."""
        return self._session is not None and self._session.idle

    @property
    def reads(self) -> int:
        """Reads of frames so far (see CollectorSession.reads)."""
        return self._session.reads if self._session is not None else 0

    @property
    def unpublished(self) -> list[BusItem]:
        """What the session could not hand to the bus while stopping (for the bus's spool)."""
        return self._session.unpublished if self._session is not None else []

    async def _resume_points(self) -> list[ResumePoint]:
        return await newest_resume_points(self._resume_sources, self._exchange)

    async def _open_gaps(self) -> list[CoverageEvent]:
        """The gaps an earlier run left unresolved, from each source that can answer (see _resume_points;
        a range both report is reopened once)."""
        gaps: list[CoverageEvent] = []
        for source in self._resume_sources:
            try:
                gaps += await source.open_gaps(self._exchange)
            except PlatformError as exc:
                self._log.warning("open gaps of the last run unavailable ({}): not repaired again", exc)
        return gaps

    async def _discover(self) -> RestBackfiller | None:
        backoff = Backoff(0.5, 30.0)
        while not self._stopping.is_set():
            try:
                return await discover(self._exchange, self._rest_url, metrics=self._metrics)
            except ExchangeError as exc:
                delay = backoff.next_delay()
                self._log.warning("instrument discovery failed, retrying in {:.1f}s: {}", delay, exc)
                self._metrics.collector_errors.labels(self._exchange, DISCOVERY_FAILED).inc()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
        return None


def _later(a: ResumePoint, b: ResumePoint) -> bool:
    if a.sequence is not None and b.sequence is not None:
        return a.sequence > b.sequence
    return a.ts_event > b.ts_event


def serve_api(
    store: SqlStore, cache: Cache, *, host: str, port: int, health: Health, options: ApiOptions | None = None
) -> ApiServer:
    """The API over `store` and `cache` with the daemon's API settings (rate limit, CORS, trusted
    proxies, the server's limits); `options` None: the defaults."""
    settings = options.api_settings() if options is not None else None
    return ApiServer(create_app(store, cache, health=health, feeds=cache, settings=settings), host, port)
