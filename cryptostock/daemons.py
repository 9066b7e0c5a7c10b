"""The long-running processes. Each takes its settings object, logs through monitoring, serves metrics and
health on its own port, and on SIGTERM/SIGINT stops reading, flushes open work and returns (exit 0)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

from loguru import logger

from core.ports import MarketCache, MarketStore, TradeBus
from core.timeframes import NS_PER_SECOND
from cryptostock.daemon import SHUTDOWN_TIMEOUT, DaemonContext, daemon_context
from cryptostock.processing import ProcessorService
from cryptostock.settings import (
    ApiDaemonSettings,
    CollectorSettings,
    CommonSettings,
    ProcessorSettings,
    RunSettings,
    SimulateSettings,
)
from cryptostock.wiring import (
    CollectorRunner,
    open_bus_for,
    open_cache_for,
    open_store_for,
    serve_api,
    simulator_settings,
)
from simulator.serve import start_simulator


async def migrate_database(settings: CommonSettings) -> None:
    """`cryptostock db migrate`: apply pending migrations and exit."""
    store = await open_store_for(settings, sqlite_name="cryptostock.db")
    try:
        await store.migrate()
    finally:
        await store.close()
    print("migrations applied")


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
    async with daemon_context("collector", settings) as ctx:
        bus = await open_bus_for(settings, role="collector")
        try:
            session = CollectorRunner(settings.exchange, settings, sink=bus)
            ctx.health.add_check("bus", bus.ping)
            await _run_until_stopped(ctx, {"collector": (session.run, session.stop)})
        finally:
            await bus.close()


async def run_processor(settings: ProcessorSettings) -> None:
    async with daemon_context("processor", settings) as ctx:
        store = await open_store_for(settings, sqlite_name="cryptostock.db")
        bus = await open_bus_for(settings, role="processor")
        cache = await open_cache_for(settings)
        try:
            await store.migrate()
            service = _processor(settings, bus, store, cache)
            _add_checks(ctx, store=store, bus=bus, cache=cache)
            await _run_until_stopped(ctx, {"processor": (service.run, service.stop)})
        finally:
            await _close_all(bus, cache, store)


async def run_api(settings: ApiDaemonSettings) -> None:
    async with daemon_context("api", settings) as ctx:
        store = await open_store_for(settings, sqlite_name="cryptostock.db")
        cache = await open_cache_for(settings)
        try:
            await store.migrate()
            _add_checks(ctx, store=store, cache=cache)
            server = serve_api(store, cache, host=settings.host, port=settings.port, health=ctx.health)
            await _run_until_stopped(ctx, {"api": (server.serve, server.stop)})
        finally:
            await _close_all(cache, store)


async def run_all(settings: RunSettings) -> None:
    """`cryptostock run`: the whole platform in one process, on embedded defaults unless told otherwise."""
    async with daemon_context("platform", settings) as ctx:
        log = logger.bind(component="platform")
        store = await open_store_for(settings, sqlite_name=f"{settings.source}.db")
        bus = await open_bus_for(settings, role="processor")
        cache = await open_cache_for(settings)
        simulator = None
        try:
            await store.migrate()
            await store.ensure_source(settings.source)
            ws_url = rest_url = None  # the settings' endpoints, else Binance's own (with --live)
            if settings.uses_simulator:
                simulator = await start_simulator(simulator_settings(settings))
                ws_url, rest_url = simulator.ws_url, simulator.rest_url
                log.info("simulated {} on {}", simulator.venue.name, ws_url)
            collector = CollectorRunner("binance", settings, sink=bus, ws_url=ws_url, rest_url=rest_url)
            service = _processor(settings, bus, store, cache)
            api = serve_api(store, cache, host=settings.api_host, port=settings.api_port, health=ctx.health)
            _add_checks(ctx, store=store, bus=bus, cache=cache)
            log.info(
                "platform up: API http://{}:{}/docs, metrics {}, data source {} in {}",
                settings.api_host,
                settings.api_port,
                ctx.metrics_url,
                settings.source,
                settings.data_dir,
            )
            await _run_until_stopped(
                ctx,
                {
                    "collector": (collector.run, collector.stop),
                    "processor": (service.run, service.stop),
                    "api": (api.serve, api.stop),
                },
                order=("collector", "processor", "api"),
            )
        finally:
            if simulator is not None:
                await simulator.stop()
            await _close_all(bus, cache, store)


def _processor(
    settings: ProcessorSettings, bus: TradeBus, store: MarketStore, cache: MarketCache
) -> ProcessorService:
    return ProcessorService(
        bus,
        store,
        cache,
        timeframes=settings.timeframes,
        grace_ns=int(settings.grace_seconds * NS_PER_SECOND),
        consumer=settings.consumer,
        read_batch=settings.read_batch,
        store_batch=settings.store_batch,
        tick_interval=settings.tick_interval,
        drain_on_stop=settings.redis_url is None,  # an in-process bus dies with the process: drain it
    )


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


Component = tuple[Callable[[], Coroutine[Any, Any, None]], Callable[[], object]]


async def _run_until_stopped(
    ctx: DaemonContext, components: dict[str, Component], order: tuple[str, ...] | None = None
) -> None:
    """Run components until a signal (or one of them ends), then stop them in order: upstream first, so
    that what was read is flushed downstream before downstream stops."""
    tasks = {name: asyncio.create_task(run(), name=name) for name, (run, _) in components.items()}
    stop_waiter = asyncio.create_task(ctx.stop.wait(), name="stop-signal")
    try:
        done, _ = await asyncio.wait([stop_waiter, *tasks.values()], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not stop_waiter and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    finally:
        stop_waiter.cancel()
        for name in order or tuple(components):
            components[name][1]()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(tasks[name]), SHUTDOWN_TIMEOUT)
        for task in tasks.values():
            if not task.done():
                task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)


async def _close_all(*resources: TradeBus | MarketCache | MarketStore) -> None:
    for resource in resources:
        with contextlib.suppress(Exception):
            await resource.close()


async def _always_ready() -> bool:
    return True
