"""Zero loss across the platform's own failures, as real processes over PostgreSQL and Redis: a collector
killed or stopped while Redis is down loses nothing (it resumes from what reached the bus and repairs the
rest over REST; what it could not hand over is spooled), and daemons started while a dependency is down
wait for it instead of exiting."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from tests.conftest import free_port
from tests.integration.conftest import Platform
from tests.integration.procs import Daemon, wait_until
from tests.integration.test_platform import (
    assert_contiguous,
    start_pipeline,
    stored_ids,
    trade_count,
    wait_metric,
)
from tests.storage.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


async def sim_last_ids(platform: Platform) -> dict[str, int]:
    async with httpx.AsyncClient(timeout=5) as client:
        state = (await client.get(f"{platform.sim_url}/admin/state")).json()
    return {symbol: info["last_trade_id"] for symbol, info in state["symbols"].items()}


async def assert_everything_stored(
    platform: Platform, last: dict[str, int], dump_logs: Callable[[], str]
) -> None:
    """Every id from the first stored to the exchange's last is stored once (waits for the pipeline: a
    repair whose hold timed out under load stores its trades after newer ones)."""

    async def caught_up() -> bool:
        ids = await stored_ids(platform.pg_url)
        stored_to_last = all(ids.get(s) and ids[s][-1] >= last[s] for s in last)
        return bool(stored_to_last) and all(len(got) == got[-1] - got[0] + 1 for got in ids.values())

    await wait_until(caught_up, 60, f"stored up to {last}\n{dump_logs()}")
    assert_contiguous(await stored_ids(platform.pg_url))


async def test_a_killed_collector_resumes_and_repairs_the_time_it_was_down(
    platform: Platform, dump_logs: Callable[[], str]
) -> None:
    simulator, collector, _ = await start_pipeline(platform)
    await wait_metric(collector, "trades_received_total", 200)
    collector.kill()  # SIGKILL: no flush; trades keep coming while nobody collects
    await asyncio.sleep(3.0)
    restarted = platform.collector()
    await restarted.wait_ready()
    await wait_metric(restarted, "trades_backfilled_total", 100)  # the downtime, fetched over REST
    assert await restarted.metric("trade_gaps_total") >= 2  # one per symbol: the time it was away
    simulator.stop()
    await assert_everything_stored(platform, await _last_ids_after_stop(platform), dump_logs)
    code, _ = await asyncio.to_thread(restarted.stop)
    assert code == 0, dump_logs()


async def _last_ids_after_stop(platform: Platform) -> dict[str, int]:
    """What the exchange made, read from the store's view of the simulator's own seed run: the simulator
    is stopped, so its REST is gone; the newest stored id per symbol is awaited to stop moving instead."""
    previous: dict[str, int] = {}
    for _ in range(60):
        ids = await stored_ids(platform.pg_url)
        newest = {s: v[-1] for s, v in ids.items()}
        if newest and newest == previous:
            return newest
        previous = newest
        await asyncio.sleep(0.5)
    return previous


async def test_a_collector_stopped_while_redis_is_down_spools_and_publishes_at_the_next_start(
    platform: Platform, dump_logs: Callable[[], str]
) -> None:
    proxy = TcpProxy("127.0.0.1", 6379, free_port())
    await proxy.start()
    direct_redis = platform.redis_url
    platform.redis_url = direct_redis.replace(":6379/", f":{proxy.port}/")
    try:
        simulator = platform.simulator(tps=200)
        await simulator.wait_ready()
        collector = platform.collector()
        await collector.wait_ready()
        await wait_metric(collector, "trades_received_total", 100)
        await proxy.stop()  # Redis unreachable for the collector: it buffers
        await asyncio.sleep(1.5)
        received = await collector.metric("trades_received_total")
        code, _ = await asyncio.to_thread(collector.stop)
        assert code == 0, collector.output()  # everything it held was saved to the spool
        assert "spooled" in collector.output()
        last = await sim_last_ids(platform)
        await proxy.start()
        platform.redis_url = direct_redis
        processor = platform.processor()
        restarted = platform.collector()
        await processor.wait_ready()
        await restarted.wait_ready()
        assert "published" in await _until_logged(restarted, "spooled trades from")
        await assert_everything_stored(platform, last, dump_logs)
        assert await trade_count(platform.pg_url) >= received
    finally:
        await proxy.stop()


async def _until_logged(daemon: object, text: str) -> str:
    async def logged() -> bool:
        return text in daemon.output()  # type: ignore[attr-defined]

    await wait_until(logged, 30, f"log line {text!r}")
    return daemon.output()  # type: ignore[attr-defined,no-any-return]


async def _readiness_is(daemon: Daemon, status: int) -> bool:
    daemon.assert_running()
    try:
        async with httpx.AsyncClient(timeout=3) as client:
            return (await client.get(f"{daemon.metrics_url}/readyz")).status_code == status
    except httpx.HTTPError:
        return False


async def test_processor_and_api_started_while_the_database_is_down_wait_for_it(
    platform: Platform, dump_logs: Callable[[], str]
) -> None:
    proxy = TcpProxy("127.0.0.1", 5432, free_port())  # not started: PostgreSQL is unreachable
    platform.pg_url = platform.pg_url.replace(":5432/", f":{proxy.port}/")
    processor = platform.processor()
    api = platform.api()
    try:
        for daemon in (processor, api):
            await wait_until(lambda d=daemon: _readiness_is(d, 503), 30, f"{daemon.name} up, not ready")
        await asyncio.sleep(2.0)
        for daemon in (processor, api):
            daemon.assert_running()  # waiting, not exited
            assert await _readiness_is(daemon, 503)
        await proxy.start()
        await processor.wait_ready()
        await api.wait_ready()

        async def serves() -> bool:
            try:
                async with httpx.AsyncClient(timeout=3) as client:
                    return (await client.get(f"{platform.api_url}/api/v1/symbols")).status_code == 200
            except httpx.HTTPError:
                return False

        await wait_until(serves, 20, "the API serving")
    finally:
        await proxy.stop()
    for daemon in (processor, api):
        code, _ = await asyncio.to_thread(daemon.stop)
        assert code == 0, dump_logs()
