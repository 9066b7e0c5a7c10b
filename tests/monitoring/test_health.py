"""Health: heartbeat liveness, readiness checks, and /livez, /readyz over real HTTP."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest

from monitoring.health import Health
from monitoring.metrics import PlatformMetrics
from monitoring.server import start_metrics_server


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_liveness_follows_the_heartbeat() -> None:
    clock = FakeMonotonic()
    health = Health(heartbeat_interval=0.01, max_heartbeat_age=10.0, monotonic=clock)
    assert not health.live()  # not started
    async with health:
        await asyncio.sleep(0)
        assert health.live()
        clock.now += 10.5  # no tick for 10.5 s of (fake) time
        assert not health.live()
        assert health.heartbeat_age() == pytest.approx(10.5)
        await asyncio.sleep(0.05)  # the loop runs again: the heartbeat ticks
        assert health.live()
    assert not health.live()


async def test_readiness_reports_each_check() -> None:
    health = Health(check_timeout=0.2)

    async def database() -> bool:
        return True

    async def cache() -> bool:
        raise ConnectionError("redis://:s3cret@cache:6379 refused")

    async def bus() -> bool:
        return False

    async def slow() -> bool:
        await asyncio.sleep(5)
        return True

    assert (await health.ready()).ok  # no checks: ready
    health.add_check("database", database)
    assert (await health.ready()).to_dict() == {
        "status": "ok",
        "checks": {"database": {"status": "ok", "duration_ms": pytest.approx(0, abs=50), "detail": None}},
    }
    for name, fn in (("cache", cache), ("bus", bus), ("slow", slow)):
        health.add_check(name, fn)
    report = await health.ready()
    assert not report.ok
    errors = {c.name: c.error for c in report.checks}
    assert errors == {
        "database": None,
        "cache": "ConnectionError: redis://:***@cache:6379 refused",
        "bus": "check returned False",
        "slow": "no answer within 0.2s",
    }
    assert {c.name: c.status for c in report.checks} == {
        "database": "ok", "cache": "fail", "bus": "fail", "slow": "timeout",
    }  # fmt: skip
    assert report.to_dict()["status"] == "unavailable"


async def test_livez_and_readyz_over_http(metrics: PlatformMetrics) -> None:
    health = Health(check_timeout=0.5)
    ready = True

    async def database() -> bool:
        return ready

    health.add_check("database", database)
    server = start_metrics_server(port=0, addr="127.0.0.1", registry=metrics.registry, health=health)
    try:
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            not_started = await client.get("/readyz")
            assert not_started.status_code == 503
            assert (await client.get("/livez")).status_code == 503
            await health.start()
            live = await client.get("/livez")
            assert live.status_code == 200 and live.json()["status"] == "ok"
            ok = await client.get("/readyz")
            assert ok.status_code == 200
            assert ok.json()["checks"]["database"]["status"] == "ok"
            ready = False
            failing = await client.get("/readyz")
            assert failing.status_code == 503
            assert failing.json()["checks"]["database"] == {
                "status": "fail",
                "duration_ms": failing.json()["checks"]["database"]["duration_ms"],
                "detail": "check returned False",
            }
            await health.stop()
            assert (await client.get("/livez")).status_code == 503
    finally:
        await health.stop()
        server.stop()


async def test_blocked_event_loop_is_not_live_and_not_ready(metrics: PlatformMetrics) -> None:
    health = Health(heartbeat_interval=0.05, max_heartbeat_age=0.3, check_timeout=0.2)
    server = start_metrics_server(port=0, addr="127.0.0.1", registry=metrics.registry, health=health)
    answers: dict[str, int] = {}
    done = threading.Event()

    def probe() -> None:
        time.sleep(0.5)  # the loop has been blocked for at least this long
        for path in ("/livez", "/readyz"):
            answers[path] = httpx.get(server.base_url + path, timeout=5).status_code
        done.set()

    async with health:
        await asyncio.sleep(0.1)
        assert health.live()
        prober = threading.Thread(target=probe)
        prober.start()
        done.wait(10)  # deliberately blocks the event loop until the probe has its answers
        prober.join()
    server.stop()
    assert answers == {"/livez": 503, "/readyz": 503}


async def test_ready_threadsafe_refuses_the_loop_thread() -> None:
    async with Health() as health:
        with pytest.raises(RuntimeError, match="event loop thread"):
            health.ready_threadsafe()
