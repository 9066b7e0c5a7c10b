"""Liveness, readiness (real store ping; 503 when it fails) and the Prometheus exposition."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from api.settings import ApiSettings
from monitoring.health import Health
from monitoring.metrics import PlatformMetrics
from storage.memory_cache import MemoryCache
from storage.sqlite import SQLiteStore


async def test_livez(client: httpx.AsyncClient) -> None:
    response = await client.get("/livez")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_readyz_ok_when_store_and_cache_answer(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"store": {"status": "ok"}, "cache": {"status": "ok"}},
    }


async def test_readyz_503_when_the_store_is_closed(client: httpx.AsyncClient, store: SQLiteStore) -> None:
    await store.close()
    response = await client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["store"] == {"status": "fail", "detail": "ping failed"}
    assert body["checks"]["cache"] == {"status": "ok"}
    assert response.headers["x-request-id"]


class HangingStore(SQLiteStore):
    """The real store whose ping never answers (a wedged database)."""

    async def ping(self) -> bool:
        await asyncio.Event().wait()
        return True


async def test_readyz_times_out_a_hanging_dependency(
    store: SQLiteStore, cache: MemoryCache, metrics: PlatformMetrics
) -> None:
    hanging = HangingStore(store.path, metrics=metrics)
    settings = ApiSettings(readiness_timeout=0.05, rate_limit_per_second=0)
    app = create_app(hanging, cache, metrics=metrics, settings=settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        response = await http.get("/readyz")
    await hanging.close()
    assert response.status_code == 503
    assert response.json()["checks"]["store"] == {"status": "timeout", "detail": "no answer within 0.05s"}


async def test_metrics_exposition_parses_and_counts_requests(client: httpx.AsyncClient) -> None:
    await client.get("/api/v1/symbols")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    requests = families["http_requests"]
    assert any(
        s.name == "http_requests_total"
        and s.labels == {"method": "GET", "endpoint": "/api/v1/symbols", "status": "200"}
        and s.value == 1.0
        for s in requests.samples
    )
    assert {"http_request_duration_seconds", "websocket_connections", "rate_limit_exceeded"} <= set(families)


async def _app_with(
    health: Health, store: SQLiteStore, cache: MemoryCache, metrics: PlatformMetrics
) -> FastAPI:
    return create_app(
        store, cache, metrics=metrics, settings=ApiSettings(rate_limit_per_second=0), health=health
    )


async def test_livez_follows_the_health_heartbeat(
    store: SQLiteStore, cache: MemoryCache, metrics: PlatformMetrics
) -> None:
    health = Health(heartbeat_interval=0.01)
    app = await _app_with(health, store, cache, metrics)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        assert (await http.get("/livez")).status_code == 503  # heartbeat not started
        async with health:
            live = await http.get("/livez")
    assert live.status_code == 200
    assert live.json()["status"] == "ok"
    assert 0.0 <= live.json()["heartbeat_age"] < 5.0


async def test_readyz_includes_the_health_checks(
    store: SQLiteStore, cache: MemoryCache, metrics: PlatformMetrics
) -> None:
    async def bus_down() -> bool:
        raise ConnectionError("bus refused")

    health = Health()
    health.add_check("bus", bus_down)
    app = await _app_with(health, store, cache, metrics)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        response = await http.get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["store"] == checks["cache"] == {"status": "ok"}
    assert checks["bus"] == {"status": "fail", "detail": "ConnectionError: bus refused"}
