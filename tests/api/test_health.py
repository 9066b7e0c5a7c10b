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
from monitoring.server import start_metrics_server
from storage.memory_cache import MemoryCache
from storage.sqlite import SQLiteStore


async def test_livez(client: httpx.AsyncClient) -> None:
    response = await client.get("/livez")
    assert (response.status_code, response.json()) == (200, {"status": "ok", "heartbeat_age_s": None})


async def test_readyz_ok_when_store_and_cache_answer(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert {name: check["status"] for name, check in body["checks"].items()} == {"store": "ok", "cache": "ok"}
    assert body["checks"]["store"]["detail"] is None and body["checks"]["store"]["duration_ms"] >= 0


async def test_readyz_503_when_the_store_is_closed(client: httpx.AsyncClient, store: SQLiteStore) -> None:
    await store.close()
    response = await client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert (body["checks"]["store"]["status"], body["checks"]["store"]["detail"]) == (
        "fail", "check returned False",
    )  # fmt: skip
    assert body["checks"]["cache"]["status"] == "ok"
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
    store_check = response.json()["checks"]["store"]
    assert (store_check["status"], store_check["detail"]) == ("timeout", "no answer within 0.05s")


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
    assert 0.0 <= live.json()["heartbeat_age_s"] < 5.0


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
    assert checks["store"]["status"] == checks["cache"]["status"] == "ok"
    assert (checks["bus"]["status"], checks["bus"]["detail"]) == ("fail", "ConnectionError: bus refused")


async def test_the_api_and_a_metrics_port_answer_probes_in_one_shape(
    store: SQLiteStore, cache: MemoryCache, metrics: PlatformMetrics
) -> None:
    async def bus_down() -> bool:
        return False

    health = Health()
    health.add_check("bus", bus_down)
    app = await _app_with(health, store, cache, metrics)
    server = start_metrics_server(port=0, addr="127.0.0.1", registry=metrics.registry, health=health)
    try:
        async with health:
            answers = {}
            for name, base in (("api", None), ("metrics", server.base_url)):
                transport = None if base else httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url=base or "http://t") as http:
                    live, ready = await http.get("/livez"), await http.get("/readyz")
                answers[name] = (live.status_code, sorted(live.json()), ready.status_code, ready.json())
    finally:
        server.stop()
    api, on_metrics = answers["api"], answers["metrics"]
    assert api[:3] == on_metrics[:3] == (200, ["heartbeat_age_s", "status"], 503)
    assert api[3]["status"] == on_metrics[3]["status"] == "unavailable"
    assert sorted(api[3]["checks"]["bus"]) == sorted(on_metrics[3]["checks"]["bus"]) == [
        "detail", "duration_ms", "status",
    ]  # fmt: skip
    assert api[3]["checks"]["bus"]["detail"] == on_metrics[3]["checks"]["bus"]["detail"]
