"""Request ids, route-template metrics, rate limiting and the storage/unexpected error paths."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi import FastAPI
from loguru import logger

from api.app import create_app
from api.settings import ApiSettings
from monitoring.metrics import PlatformMetrics
from storage.memory_cache import MemoryCache
from storage.sqlite import SQLiteStore
from tests.api.conftest import Sample

UUID_HEX = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture
def settings() -> ApiSettings:
    return ApiSettings(rate_limit_per_second=0.001, rate_limit_burst=3)


async def test_request_id_generated_and_echoed_on_success(client: httpx.AsyncClient) -> None:
    generated = await client.get("/api/v1/symbols")
    assert UUID_HEX.match(generated.headers["x-request-id"])
    echoed = await client.get("/api/v1/symbols", headers={"X-Request-ID": "req-42.abc:7"})
    assert echoed.headers["x-request-id"] == "req-42.abc:7"


@pytest.mark.parametrize("bad", ["has space", "x" * 129, "semi;colon", "<script>"])
async def test_insane_request_id_is_replaced(client: httpx.AsyncClient, bad: str) -> None:
    response = await client.get("/livez", headers={"X-Request-ID": bad})
    assert UUID_HEX.match(response.headers["x-request-id"])


async def test_request_id_on_error_404_and_429(client: httpx.AsyncClient) -> None:
    error = await client.get("/api/v1/bars", params={"symbol": "BTC-USDT", "timeframe": "7x"})
    unknown = await client.get("/no/such/route")
    responses = [error, unknown]
    for _ in range(3):  # the burst of 3 is already spent by the two requests above plus this one
        responses.append(await client.get("/api/v1/symbols", headers={"X-Request-ID": "rl-check"}))
    assert [r.status_code for r in responses] == [422, 404, 200, 429, 429]
    for response in responses:
        assert response.headers["x-request-id"]
    assert error.json()["error"]["request_id"] == error.headers["x-request-id"]
    assert unknown.json()["error"]["request_id"] == unknown.headers["x-request-id"]
    limited = responses[-1]
    assert limited.headers["x-request-id"] == "rl-check"
    assert limited.json()["error"]["request_id"] == "rl-check"
    assert limited.json()["error"]["code"] == "rate_limited"
    assert int(limited.headers["retry-after"]) >= 1


async def test_rate_limit_counts_per_route_template_and_exempts_probes(
    client: httpx.AsyncClient, sample: Sample
) -> None:
    statuses = [
        (await client.get("/api/v1/bars", params={"symbol": s})).status_code for s in ("BTCUSDT",) * 4
    ]
    assert statuses == [200, 200, 200, 429]
    assert (await client.get("/api/v1/trades", params={"symbol": "BTCUSDT"})).status_code == 429
    for path in ("/livez", "/readyz", "/metrics"):
        assert (await client.get(path)).status_code == 200, path
    assert sample("rate_limit_exceeded_total", endpoint="/api/v1/bars") == 1.0
    assert sample("rate_limit_exceeded_total", endpoint="/api/v1/trades") == 1.0
    assert sample("http_requests_total", method="GET", endpoint="/api/v1/bars", status="429") == 1.0


async def test_rate_limit_is_per_client_ip(app: FastAPI, sample: Sample) -> None:
    for ip in ("10.0.0.1", "10.0.0.2"):
        transport = httpx.ASGITransport(app=app, client=(ip, 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            codes = [(await http.get("/api/v1/symbols")).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429], ip
    assert sample("rate_limit_exceeded_total", endpoint="/api/v1/symbols") == 2.0


async def test_request_metrics_use_the_route_template(client: httpx.AsyncClient, sample: Sample) -> None:
    # Two symbols (and a bad request) on one route: one endpoint label, never the raw path or query.
    await client.get("/api/v1/bars", params={"symbol": "BTC-USDT"})
    await client.get("/api/v1/bars", params={"symbol": "ETH-USDT"})
    await client.get("/api/v1/bars", params={"symbol": "ETH-USDT", "limit": "0"})
    assert sample("http_requests_total", method="GET", endpoint="/api/v1/bars", status="200") == 2.0
    assert sample("http_requests_total", method="GET", endpoint="/api/v1/bars", status="422") == 1.0
    assert sample("http_request_duration_seconds_count", method="GET", endpoint="/api/v1/bars") == 3.0


async def test_unmatched_paths_share_one_label(
    metrics: PlatformMetrics, store: SQLiteStore, cache: MemoryCache
) -> None:
    app = create_app(store, cache, metrics=metrics, settings=ApiSettings(rate_limit_per_second=0))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        for path in ("/a", "/b/c", "/api/v1/bars/x/y"):
            assert (await http.get(path)).status_code == 404
        await http.request("BREW", "/api/v1/bars")
    sample = metrics.registry.get_sample_value
    assert sample("http_requests_total", {"method": "GET", "endpoint": "unmatched", "status": "404"}) == 3.0
    assert (
        sample("http_requests_total", {"method": "OTHER", "endpoint": "/api/v1/bars", "status": "405"}) == 1.0
    )
    labels = {
        s.labels["endpoint"] for m in metrics.registry.collect() for s in m.samples if "endpoint" in s.labels
    }
    assert labels == {"unmatched", "/api/v1/bars"}


async def test_request_id_is_bound_to_the_log_context(client: httpx.AsyncClient) -> None:
    records: list[dict[str, object]] = []
    sink = logger.add(lambda m: records.append(dict(m.record["extra"])), level="INFO")
    try:
        await client.get("/api/v1/bars", params={"symbol": "NOPE"}, headers={"X-Request-ID": "trace-me"})
    finally:
        logger.remove(sink)
    assert any(r.get("request_id") == "trace-me" for r in records)
