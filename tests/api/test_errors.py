"""Failures behind the API: a closed store (503), an open circuit breaker (503 with Retry-After) and an
unexpected exception (500 JSON with the request id, traceback logged)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from loguru import logger

from api.app import create_app
from api.settings import ApiSettings
from core.types import Trade
from monitoring.metrics import PlatformMetrics
from storage.memory_cache import MemoryCache
from storage.sqlite import SQLiteStore


async def test_closed_store_is_503_with_a_clear_message(
    client: httpx.AsyncClient, store: SQLiteStore
) -> None:
    assert (await client.get("/api/v1/symbols")).status_code == 200  # warms the symbol directory
    await store.close()
    response = await client.get("/api/v1/bars", params={"symbol": "BTC-USDT"})
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "storage_unavailable"
    assert error["message"].startswith("storage is unavailable")
    assert error["request_id"] == response.headers["x-request-id"]


class ExplodingStore(SQLiteStore):
    """The real store with one read that fails in a way nobody planned for."""

    async def trades(
        self, exchange: str, symbol: str, *, limit: int = 100, since_ns: int | None = None
    ) -> list[Trade]:
        raise RuntimeError("boom")


@pytest.fixture
async def exploding(metrics: PlatformMetrics, store: SQLiteStore) -> AsyncIterator[SQLiteStore]:
    db = ExplodingStore(store.path, metrics=metrics)
    yield db
    await db.close()


async def test_unexpected_error_is_500_json_with_request_id_and_traceback_logged(
    exploding: SQLiteStore, cache: MemoryCache, metrics: PlatformMetrics
) -> None:
    app = create_app(exploding, cache, metrics=metrics, settings=ApiSettings(rate_limit_per_second=0))
    logged: list[str] = []
    sink = logger.add(logged.append, level="ERROR")
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            response = await http.get(
                "/api/v1/trades", params={"symbol": "BTC-USDT"}, headers={"X-Request-ID": "r500"}
            )
    finally:
        logger.remove(sink)
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "r500"
    assert response.json() == {
        "error": {
            "code": "internal_error",
            "message": "internal server error; quote the request id",
            "request_id": "r500",
        }
    }
    assert any("RuntimeError: boom" in line and "Traceback" in line for line in logged)
    sample = metrics.registry.get_sample_value
    assert (
        sample("http_requests_total", {"method": "GET", "endpoint": "/api/v1/trades", "status": "500"}) == 1.0
    )


async def test_open_circuit_is_503_with_retry_after(client: httpx.AsyncClient, store: SQLiteStore) -> None:
    assert (await client.get("/api/v1/symbols")).status_code == 200
    await store.close()
    responses = [await client.get("/api/v1/trades", params={"symbol": "BTC-USDT"}) for _ in range(6)]
    assert {r.status_code for r in responses} == {503}
    assert "retry-after" not in responses[0].headers  # a plain storage failure: no estimate
    last = responses[-1]  # the breaker opened after 5 failures and now refuses without trying
    assert 1 <= int(last.headers["retry-after"]) <= 30
    assert last.json()["error"]["message"] == "storage is unavailable, try again later (CircuitOpenError)"
