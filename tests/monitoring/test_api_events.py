"""The API's log events through the real app and logging pipeline: one api_response line per request
(method, path template, status, duration, request id), security events in the security file, and the
FastAPI instrumentation's span carrying the request id when tracing is on."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON

from api.app import create_app
from api.settings import ApiSettings
from monitoring import tracing
from monitoring.logger import LoggingSetup
from monitoring.metrics import PlatformMetrics
from storage.memory_cache import MemoryCache
from storage.sqlite import SQLiteStore
from tests.monitoring.conftest import current_file, read_json

Configure = Callable[..., LoggingSetup]


@pytest.fixture
async def store(tmp_path: Path, metrics: PlatformMetrics) -> AsyncIterator[SQLiteStore]:
    db = SQLiteStore(tmp_path / "api.db", metrics=metrics)
    await db.migrate()
    yield db
    await db.close()


def build(store: SQLiteStore, metrics: PlatformMetrics, **settings: object) -> FastAPI:
    return create_app(store, MemoryCache(metrics=metrics), metrics=metrics, settings=ApiSettings(**settings))


async def get(app: FastAPI, path: str, **kwargs: object) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as http:
        return await http.request(kwargs.pop("method", "GET"), path, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.configure_tracing("api-test", exporter=exporter, sampler=ALWAYS_ON)
    yield exporter
    tracing.shutdown_tracing()


async def test_one_json_line_per_request_with_template_status_duration_and_id(
    configure_logging: Configure, store: SQLiteStore, metrics: PlatformMetrics
) -> None:
    setup = configure_logging(json=True)
    app = build(store, metrics, rate_limit_per_second=0)
    reply = await get(
        app, "/api/v1/bars", params={"exchange": "binance", "symbol": "BTC-USDT", "timeframe": "1m"}
    )
    missing = await get(app, "/api/v1/nothing-here")
    records = [
        r for r in read_json(current_file(setup.app_file)) if r.get("event_type", "").startswith("api_")
    ]
    assert [r["event_type"] for r in records] == ["api_response", "api_response"]  # api_request is DEBUG
    first, second = records
    assert first["method"] == "GET" and first["path"] == "/api/v1/bars"
    assert first["status"] == reply.status_code and isinstance(first["duration_ms"], float)
    assert first["request_id"] == reply.headers["x-request-id"]
    assert first["level"] == "INFO" and first["message"] == f"GET /api/v1/bars {reply.status_code}"
    assert second["path"] == "unmatched" and second["status"] == 404 == missing.status_code


async def test_at_debug_the_request_is_logged_on_arrival_too(
    configure_logging: Configure, store: SQLiteStore, metrics: PlatformMetrics
) -> None:
    setup = configure_logging(json=True, level="DEBUG")
    reply = await get(build(store, metrics, rate_limit_per_second=0), "/api/v1/symbols")
    records = [
        r for r in read_json(current_file(setup.app_file)) if r.get("event_type", "").startswith("api_")
    ]
    assert [r["event_type"] for r in records] == ["api_request", "api_response"]
    assert {r["request_id"] for r in records} == {reply.headers["x-request-id"]}


async def test_rate_limited_and_rejected_requests_are_security_events(
    configure_logging: Configure, store: SQLiteStore, metrics: PlatformMetrics
) -> None:
    setup = configure_logging(json=True)
    app = build(store, metrics, rate_limit_per_second=0.001, rate_limit_burst=1, max_body_bytes=10)
    assert (await get(app, "/api/v1/symbols")).status_code == 200
    limited = await get(app, "/api/v1/symbols")
    assert limited.status_code == 429
    big = await get(app, "/api/v1/symbols", method="POST", content=b"x" * 100)
    assert big.status_code == 413
    security = read_json(current_file(setup.security_file))
    assert [r["event_type"] for r in security] == ["security_rate_limited", "security_rejected_request"]
    assert (
        security[0]["path"] == "/api/v1/symbols"
        and security[0]["request_id"] == limited.headers["x-request-id"]
    )
    assert security[0]["level"] == "WARNING" and security[0]["client"]
    assert security[1]["reason"] == "body_too_large" and security[1]["status"] == 413


async def test_requests_are_traced_with_their_request_id(
    configure_logging: Configure, store: SQLiteStore, metrics: PlatformMetrics, spans: InMemorySpanExporter
) -> None:
    setup = configure_logging(json=True)
    app = build(store, metrics, rate_limit_per_second=0)
    reply = await get(app, "/api/v1/symbols", headers={"X-Request-ID": "req-42"})
    assert reply.status_code == 200
    await get(app, "/metrics")
    server = [s for s in spans.get_finished_spans() if s.kind.name == "SERVER"]
    assert len(server) == 1, "one request traced; /metrics is not"
    assert (server[0].attributes or {}).get("request_id") == "req-42"
    trace_id = format(server[0].context.trace_id, "032x")
    response = next(
        r for r in read_json(current_file(setup.app_file)) if r.get("event_type") == "api_response"
    )
    assert response["request_id"] == "req-42"
    assert response["trace_id"] == trace_id
