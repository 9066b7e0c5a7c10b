"""The long-running processes. Each takes its settings object, logs through monitoring, serves metrics and
health on its own port, and on SIGTERM/SIGINT stops reading, flushes open work and returns (exit 0)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

import msgspec
from loguru import logger

from collectors.registry import ADAPTERS
from core.errors import BusError, CircuitOpenError, StorageError
from core.ports import FeedBoard, MarketCache, MarketStore, ResumeSource, TradeBus
from core.supervisor import Part, supervise
from core.timeframes import NS_PER_SECOND
from cryptostock.bar_verifier import BarVerifier
from cryptostock.lifecycle import SHUTDOWN_TIMEOUT, DaemonContext, daemon_context, setup_logging_from
from cryptostock.outcome import report_success
from cryptostock.progress import run_status
from cryptostock.progress_bar import spinning
from cryptostock.settings import (
    ApiDaemonSettings,
    CollectorSettings,
    CommonSettings,
    DeadLettersSettings,
    ProcessorSettings,
    RunSettings,
    SimulateSettings,
)
from cryptostock.wiring import (
    CollectorRunner,
    newest_resume_points,
    open_bus_for,
    open_cache_for,
    open_store_for,
    serve_api,
    simulator_settings,
    spool_for,
)
from monitoring.logger import flush_logs
from processor.service import ProcessorService
from simulator.exchange import SimulatedExchange
from simulator.serve import start_simulator
from storage.factory import Cache
from storage.spool import Spool, republish

REPLAY_SETTLE_S = 0.5


async def migrate_database(settings: CommonSettings) -> None:
    """`cryptostock db migrate`: apply pending migrations and exit. The details go to the log files
    (logs/migrate/); the console gets one line, the outcome, as text or JSON (LOG_FORMAT)."""
    as_json = settings.log_format == "json"
    setup_logging_from(settings, "migrate", console=False)
    store = await open_store_for(settings, sqlite_name="cryptostock.db")
    try:
        async with spinning("applying migrations"):
            await store.migrate()
            versions = await store.applied_migrations()
    finally:
        await store.close()
        flush_logs()
    report_success("db migrate", f"schema up to date (migrations {versions})", as_json=as_json)


async def show_dead_letters(settings: DeadLettersSettings) -> None:
    """`cryptostock dead-letters`: the most recent bus content set aside as unstorable, as JSON lines."""
    bus = await open_bus_for(settings, role="inspect")
    try:
        for letter in await bus.dead_letters(settings.limit):
            print(msgspec.json.encode(letter).decode())
    finally:
        await bus.close()


async def run_simulator(settings: SimulateSettings) -> None:
    async with daemon_context("simulator", settings) as ctx:
        simulator = await start_simulator(simulator_settings(settings))
        ctx.health.add_check("simulator", _always_ready)
        logger.bind(component="simulator").info(
            "simulated {} on {} (REST {})", simulator.venue.name, simulator.ws_url, simulator.rest_url
        )
        try:
            await ctx.stop.wait()
        finally:
            await simulator.stop()


async def run_collector(settings: CollectorSettings) -> None:
    """One exchange's collector. It resumes each symbol from what reached the bus before (a restart loses
    nothing the venue's REST still has), publishes its spool first, and spools at stop what the bus could
    not take (exit 1 if even that fails)."""
    async with daemon_context("collector", settings) as ctx:
        spool = spool_for(settings, f"collector-{settings.exchange}")
        bus = await open_bus_for(settings, role="collector", spool=spool)
        cache = await open_cache_for(settings)
        collector = CollectorRunner(
            settings.exchange, settings, publisher=bus, feed_board=cache, resume_sources=[bus]
        )
        try:
            ctx.health.add_check("bus", bus.ping)
            await _run_until_stopped(
                ctx, [_republisher(spool, bus), Part("collector", collector.run, collector.stop)]
            )
        finally:
            await _close_all(cache)
            await bus.close(leftover=collector.unpublished)


async def run_processor(settings: ProcessorSettings) -> None:
    async with daemon_context("processor", settings) as ctx:
        store = await open_store_for(settings, sqlite_name="cryptostock.db")
        bus = await open_bus_for(settings, role="processor")
        cache = await open_cache_for(settings)
        try:
            _add_checks(ctx, store=store, bus=bus, cache=cache)
            if not await _until_done(ctx, "database migration", store.migrate):
                return
            service = _processor(settings, bus, store, cache)
            parts = [Part("processor", service.run, service.stop)]
            urls = {name: settings.verify_rest_urls.get(name) for name in ADAPTERS}
            _add_verifier(parts, settings, store, urls)
            await _run_until_stopped(ctx, parts)
        finally:
            await _close_all(bus, cache, store)


async def run_api(settings: ApiDaemonSettings) -> None:
    async with daemon_context("api", settings) as ctx:
        store = await open_store_for(settings, sqlite_name="cryptostock.db")
        cache = await open_cache_for(settings)
        try:
            _add_checks(ctx, store=store, cache=cache)
            if not await _until_done(ctx, "database migration", store.migrate):
                return
            server = serve_api(
                store, cache, host=settings.host, port=settings.port, health=ctx.health, options=settings
            )
            await _run_until_stopped(ctx, [Part("api", server.serve, server.stop)])
        finally:
            await _close_all(cache, store)


async def run_all(settings: RunSettings) -> None:
    """`cryptostock run`: the whole platform in one process, on embedded defaults unless told otherwise:
    per exchange a simulator (unless collecting live or from given endpoints) and a collector; one
    processor and one API for all of them."""
    async with daemon_context("platform", settings) as ctx:
        log = logger.bind(component="platform")
        store = await open_store_for(settings, sqlite_name=settings.database_file)
        spool = spool_for(settings, "platform")
        bus = await open_bus_for(settings, role="processor", spool=spool)
        cache = await open_cache_for(settings)
        simulators: list[SimulatedExchange] = []
        collectors: dict[str, CollectorRunner] = {}
        try:
            await store.migrate()
            await store.ensure_source(settings.source)
            collectors = await _start_venues(settings, bus, cache, simulators, resume_sources=[store, bus])
            service = _processor(settings, bus, store, cache)
            api = serve_api(
                store,
                cache,
                host=settings.api_host,
                port=settings.api_port,
                health=ctx.health,
                options=settings,
            )
            _add_checks(ctx, store=store, bus=bus, cache=cache)
            log.info(
                "platform up: API http://{}:{}/docs, metrics {}, data source {} in {}, exchanges {}",
                settings.api_host,
                settings.api_port,
                ctx.metrics_url,
                settings.source,
                settings.data_dir,
                ",".join(settings.exchange),
            )
            status = run_status(settings, api, ctx.metrics_url)
            # Stopped in this order: upstream first, so what one part read is handed on before the next stops.
            parts = [Part("status", status.run, status.stop), _republisher(spool, bus)]
            parts += [Part(f"collector:{name}", c.run, c.stop) for name, c in collectors.items()]
            if settings.replay is not None and simulators:
                parts.append(
                    _replay_end(dict(zip(collectors, simulators, strict=True)), collectors, service, bus)
                )
            parts += [Part("processor", service.run, service.stop), Part("api", api.serve, api.stop)]
            _add_verifier(parts, settings, store, _rest_urls(settings, simulators))
            await _run_until_stopped(ctx, parts)
        finally:
            for simulator in simulators:
                await simulator.stop()
            await _close_all(cache, store)
            await bus.close(leftover=[item for c in collectors.values() for item in c.unpublished])


async def _start_venues(
    settings: RunSettings,
    bus: TradeBus,
    feed_board: FeedBoard,
    simulators: list[SimulatedExchange],
    *,
    resume_sources: Sequence[ResumeSource],
) -> dict[str, CollectorRunner]:
    """A collector per exchange, each with its own simulator when the run is simulated (started here and
    appended to `simulators`, which the caller stops)."""
    collectors: dict[str, CollectorRunner] = {}
    for index, exchange in enumerate(settings.exchange):
        ws_url = rest_url = None  # the settings' endpoints, else the exchange's own (with --live)
        if settings.uses_simulator:
            stored = await newest_resume_points(resume_sources, exchange)
            simulator = await start_simulator(simulator_settings(settings, exchange, index, stored))
            simulators.append(simulator)
            ws_url, rest_url = simulator.ws_url, simulator.rest_url
            logger.bind(component="platform").info("simulated {} on {}", simulator.venue.name, ws_url)
        collectors[exchange] = CollectorRunner(
            exchange,
            settings,
            publisher=bus,
            ws_url=ws_url,
            rest_url=rest_url,
            feed_board=feed_board,
            resume_sources=resume_sources,
        )
    return collectors


def _processor(
    settings: ProcessorSettings, bus: TradeBus, store: MarketStore, cache: Cache
) -> ProcessorService:
    return ProcessorService(
        bus,
        store,
        cache,
        feeds=cache,  # bars close on the clock only for symbols whose collector reports a live feed
        timeframes=settings.timeframes,
        grace_ns=int(settings.grace_seconds * NS_PER_SECOND),
        consumer=settings.consumer,
        read_batch=settings.read_batch,
        store_batch=settings.store_batch,
        tick_interval=settings.tick_interval,
        drain_on_stop=settings.redis_url is None,  # an in-process bus dies with the process: drain it
    )


def _rest_urls(settings: RunSettings, simulators: Sequence[SimulatedExchange]) -> dict[str, str | None]:
    """Each exchange's REST base URL in this run: its simulator's, else --rest-url, else its own."""
    if settings.uses_simulator:
        return {ex: sim.rest_url for ex, sim in zip(settings.exchange, simulators, strict=True)}
    return {ex: settings.verify_rest_urls.get(ex, settings.rest_url) for ex in settings.exchange}


def _add_verifier(
    parts: list[Part],
    settings: ProcessorSettings,
    store: MarketStore,
    rest_urls: Mapping[str, str | None],
) -> None:
    """The periodic bar verification, when `verify_interval` is set (cryptostock/bar_verifier.py). Not for
    a replay: it checks minutes from now on, and a replay's trades are from the file's time
    (`cryptostock verify` checks a replay's bars)."""
    if settings.verify_interval <= 0 or (isinstance(settings, RunSettings) and settings.replay is not None):
        return
    verifier = BarVerifier(
        store,
        rest_urls,
        interval=settings.verify_interval,
        delay=settings.verify_delay,
        max_minutes=settings.verify_max_minutes,
        since_ns=time.time_ns(),  # the minute the collectors start in is partial: not checked
    )
    parts.append(Part("verifier", verifier.run, verifier.stop))


def _add_checks(
    ctx: DaemonContext,
    *,
    store: MarketStore | None = None,
    bus: TradeBus | None = None,
    cache: MarketCache | None = None,
) -> None:
    for name, dependency in (("database", store), ("bus", bus), ("cache", cache)):
        if dependency is not None:
            ctx.health.add_check(name, dependency.ping)


async def _run_until_stopped(ctx: DaemonContext, parts: list[Part]) -> None:
    """Run the parts until a signal (or until one of them ends or fails), then stop them in their order
    within the daemon's one shutdown deadline (core/supervisor.py)."""
    await supervise(parts, until=ctx.stop, deadline=SHUTDOWN_TIMEOUT, owner=ctx.service)


def _replay_end(
    simulators: dict[str, SimulatedExchange],
    collectors: dict[str, CollectorRunner],
    service: ProcessorService,
    bus: TradeBus,
) -> Part:
    """A part that tells the processor when a venue's replay has ended: its simulator has played
    the file to its end and sent everything, and its collector has handed every trade on to the bus (and
    the bus has flushed them), has no gap left to repair and has read nothing new for REPLAY_SETTLE_S.
    The processor then closes the venue's open bars (the last bars of a finite replay would otherwise
    wait for an event clock that no longer moves)."""
    stopped = asyncio.Event()

    def settled_state(exchange: str) -> int | None:
        simulator, collector = simulators[exchange], collectors[exchange]
        if simulator.finished and simulator.all_sent and collector.idle:
            return collector.reads
        return None

    async def run() -> None:
        pending = set(simulators)
        seen: dict[str, int | None] = {}
        while pending and not stopped.is_set():
            for exchange in sorted(pending):
                state = settled_state(exchange)
                if state is not None and seen.get(exchange) == state:
                    await bus.flush()  # what the collector handed on is in the bus itself, not a buffer
                    pending.discard(exchange)
                    logger.bind(component="platform").info("replay of {} ended: closing its bars", exchange)
                    service.source_ended(exchange)
                seen[exchange] = state
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopped.wait(), REPLAY_SETTLE_S)
        await stopped.wait()

    return Part("replay-end", run, stopped.set)


def _republisher(spool: Spool, bus: TradeBus) -> Part:
    """A part that publishes the spool left by the last stop (at once, beside collecting), then idles until
    stopped like the parts beside it."""
    stopped = asyncio.Event()

    async def run() -> None:
        await republish(spool, bus)
        await stopped.wait()

    return Part("spool", run, stopped.set)


async def _until_done(ctx: DaemonContext, what: str, step: Callable[[], Awaitable[None]]) -> bool:
    """Run `step` until it succeeds (True) or the daemon is told to stop (False). A dependency that is
    down at start is waited for, not a reason to exit: /readyz reports it meanwhile."""
    delay = 0.5
    while True:
        try:
            await step()
            return True
        except (StorageError, BusError, CircuitOpenError) as exc:
            logger.bind(component="daemon").warning("{} failed, retrying in {:.1f}s: {}", what, delay, exc)
        try:
            await asyncio.wait_for(ctx.stop.wait(), delay)
            return False
        except TimeoutError:
            delay = min(delay * 2, 10.0)


async def _close_all(*resources: TradeBus | MarketCache | MarketStore) -> None:
    for resource in resources:
        with contextlib.suppress(Exception):
            await resource.close()


async def _always_ready() -> bool:
    return True
