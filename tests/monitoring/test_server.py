"""track_time, build info and the metrics server over real HTTP (port 0 = a free port)."""

from __future__ import annotations

import asyncio
import platform
import socket
import time
from importlib import metadata

import httpx
import pytest

from core.errors import ConfigError
from monitoring.metrics import PlatformMetrics
from monitoring.server import set_build_info, start_metrics_server, track_time
from tests.conftest import free_port


def count_and_sum(metrics: PlatformMetrics, name: str, labels: dict[str, str]) -> tuple[float, float]:
    count = metrics.registry.get_sample_value(f"{name}_count", labels)
    total = metrics.registry.get_sample_value(f"{name}_sum", labels)
    assert count is not None and total is not None
    return count, total


def test_track_time_decorates_sync_functions_even_when_they_raise(metrics: PlatformMetrics) -> None:
    @track_time(metrics.db_query_duration.labels("select"))
    def query(fail: bool) -> str:
        if fail:
            raise RuntimeError("boom")
        return "rows"

    assert query.__name__ == "query"
    assert query(False) == "rows"
    with pytest.raises(RuntimeError):
        query(True)
    assert count_and_sum(metrics, "db_query_duration_seconds", {"operation": "select"})[0] == 2


async def test_track_time_times_the_await_of_async_functions(metrics: PlatformMetrics) -> None:
    @track_time(metrics.feature_calculation_duration)
    async def compute(fail: bool) -> int:
        await asyncio.sleep(0.02)
        if fail:
            raise ValueError("bad bar")
        return 7

    assert asyncio.iscoroutinefunction(compute)
    assert await compute(False) == 7
    with pytest.raises(ValueError):
        await compute(True)
    count, total = count_and_sum(metrics, "feature_calculation_duration_seconds", {})
    assert count == 2
    assert total >= 0.04  # the awaited sleeps are inside the measurement


def test_track_time_as_context_manager_even_when_the_body_raises(metrics: PlatformMetrics) -> None:
    child = metrics.indicator_calculation_duration.labels("rsi")
    with track_time(child):
        pass
    with pytest.raises(KeyError), track_time(child):
        raise KeyError("x")
    assert count_and_sum(metrics, "indicator_calculation_duration_seconds", {"indicator": "rsi"})[0] == 2


def test_set_build_info(metrics: PlatformMetrics) -> None:
    info = set_build_info("collector", metrics)
    labels = {
        "version": metadata.version("cryptostock"),
        "python": platform.python_version(),
        "service": "collector",
    }
    assert info == labels
    assert metrics.registry.get_sample_value("build_info", labels) == 1.0


async def test_metrics_endpoint_over_http(metrics: PlatformMetrics) -> None:
    metrics.trades_received.labels("binance", "BTC-USDT").inc(3)
    server = start_metrics_server(port=0, addr="127.0.0.1", registry=metrics.registry)
    try:
        assert server.port > 0 and server.url == f"http://127.0.0.1:{server.port}/metrics"
        async with httpx.AsyncClient() as client:
            response = await client.get(server.url)
            missing = await client.get(f"{server.base_url}/nope")
            no_health = await client.get(f"{server.base_url}/readyz")
    finally:
        server.stop()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert 'trades_received_total{exchange="binance",symbol="BTC-USDT"} 3.0' in response.text
    assert missing.status_code == 404 and no_health.status_code == 404
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url)


def test_port_from_env(monkeypatch: pytest.MonkeyPatch, metrics: PlatformMetrics) -> None:
    port = free_port()
    monkeypatch.setenv("METRICS_PORT", str(port))
    with start_metrics_server(addr="127.0.0.1", registry=metrics.registry) as server:
        assert server.port == port
        assert httpx.get(server.url).status_code == 200


def test_port_in_use_is_one_clear_line(metrics: PlatformMetrics) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ConfigError) as caught:
            start_metrics_server(port=port, addr="127.0.0.1", registry=metrics.registry)
    message = str(caught.value)
    assert message == (
        f"metrics port {port} on 127.0.0.1 is already in use; set METRICS_PORT or --metrics-port"
    )
    assert "\n" not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_bad_metrics_port_env_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METRICS_PORT", "ninety")
    with pytest.raises(ConfigError, match="METRICS_PORT must be an integer"):
        start_metrics_server()


def test_binds_loopback_by_default(metrics: PlatformMetrics) -> None:
    with start_metrics_server(port=0, registry=metrics.registry) as server:
        assert server.addr == "127.0.0.1"
        assert httpx.get(f"http://127.0.0.1:{server.port}/metrics").status_code == 200
        with socket.socket() as probe:  # no other interface answers (when the host has one)
            probe.settimeout(1)
            other = _non_loopback_address()
            if other is not None:
                assert probe.connect_ex((other, server.port)) != 0


def _non_loopback_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        try:
            udp.connect(("192.0.2.1", 9))  # no packet is sent; this only picks the outgoing interface
        except OSError:
            return None
        address = str(udp.getsockname()[0])
    return None if address.startswith("127.") else address


HALF_REQUEST = b"GET /metrics HTTP/1.1\r\nHost: m\r\n"


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """True when the server closes `sock` (EOF or reset) within `seconds`; what it sends is read past."""
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except OSError:
        return True
    return True


def _open(port: int, payload: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(payload)
    return sock


def test_requests_whose_headers_never_finish_are_closed(metrics: PlatformMetrics) -> None:
    with start_metrics_server(port=0, registry=metrics.registry, header_timeout=0.5) as server:
        started = time.monotonic()
        with _open(server.port, HALF_REQUEST) as half, _open(server.port, b"") as silent:
            assert _closed_within(half, 5) and _closed_within(silent, 5)
        assert time.monotonic() - started < 3
        with _open(server.port, b"") as trickled:  # a byte at a time does not extend the deadline
            started = time.monotonic()
            for byte in HALF_REQUEST * 5:
                try:
                    trickled.sendall(bytes([byte]))
                except OSError:
                    break
                time.sleep(0.05)
            assert time.monotonic() - started < 3
        with _open(server.port, b"GET /metrics HTTP/1.1\r\nHost: m\r\n\r\n") as kept:  # idle after it
            assert kept.recv(12) == b"HTTP/1.1 200"
            assert _closed_within(kept, 5)
        assert httpx.get(server.url).status_code == 200


def test_at_the_connection_limit_the_longest_waiting_is_closed(metrics: PlatformMetrics) -> None:
    with start_metrics_server(port=0, registry=metrics.registry, max_connections=8) as server:
        idle = [_open(server.port, HALF_REQUEST) for _ in range(30)]
        try:
            started = time.monotonic()
            assert httpx.get(server.url, timeout=5).status_code == 200
            assert time.monotonic() - started < 2
            assert _closed_within(idle[0], 2)  # the oldest made room
            assert not _closed_within(idle[-1], 0.2)  # the newest still wait
        finally:
            for sock in idle:
                sock.close()
