"""The API server's own limits, through the real server (api.server.ApiServer over a real store) and raw
sockets: header, body and send timeouts, the connection limit, body sizes, concurrency, websockets."""

from __future__ import annotations

import asyncio
import json
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from api.settings import ApiSettings
from tests.api.live import LiveApi
from tests.api.rawhttp import HALF_REQUEST, closed_by_server, connect, read_response, trickle


def _settings(**limits: object) -> ApiSettings:
    return ApiSettings(rate_limit_per_second=0, **limits)  # type: ignore[arg-type]


@pytest.fixture
def quick(tmp_path: Path) -> Iterator[LiveApi]:
    """Short timeouts, so that the tests wait fractions of a second."""
    settings = _settings(header_timeout=0.5, body_timeout=0.5, send_timeout=0.5, keep_alive_timeout=0.5)
    with LiveApi(tmp_path, settings) as api:
        yield api


def test_headers_that_never_finish_are_cut_off(quick: LiveApi) -> None:
    started = time.monotonic()
    with connect(quick.port, HALF_REQUEST) as sock:
        assert closed_by_server(sock, within=5) == b""  # closed, nothing answered
    assert 0.4 < time.monotonic() - started < 2
    assert quick.shed("header_timeout") == 1


def test_a_trickle_of_bytes_does_not_extend_the_header_timeout(quick: LiveApi) -> None:
    started = time.monotonic()
    with connect(quick.port) as sock:
        assert not trickle(sock, HALF_REQUEST * 10, interval=0.05), "a 16 s trickle was allowed"
    assert time.monotonic() - started < 2.5
    assert quick.shed("header_timeout") == 1


def test_each_request_on_a_kept_alive_connection_has_its_own_header_timeout(quick: LiveApi) -> None:
    with connect(quick.port, b"GET /livez HTTP/1.1\r\nHost: api\r\n\r\n") as sock:
        assert read_response(sock).startswith(b"HTTP/1.1 200")
        sock.sendall(HALF_REQUEST)  # the next request never finishes
        assert closed_by_server(sock, within=5) == b""
    with connect(quick.port, b"GET /livez HTTP/1.1\r\nHost: api\r\n\r\n") as sock:
        assert read_response(sock).startswith(b"HTTP/1.1 200")
        assert closed_by_server(sock, within=5) == b""  # idle: uvicorn's keep-alive timeout
    assert quick.shed("header_timeout") == 1


def test_bodies_that_never_finish_are_cut_off(quick: LiveApi) -> None:
    head = b"GET /livez HTTP/1.1\r\nHost: api\r\nContent-Length: 100\r\n\r\n"
    with connect(quick.port, head + b"x" * 10) as sock:
        answered = closed_by_server(sock, within=5)
    assert answered is not None and answered.startswith(b"HTTP/1.1 200")  # then closed
    assert quick.shed("body_timeout") == 1


def test_a_declared_body_above_the_limit_gets_413_and_a_closed_connection(tmp_path: Path) -> None:
    with LiveApi(tmp_path, _settings(max_body_bytes=1000)) as api:
        response = httpx.request("GET", f"{api.url}/api/v1/symbols", content=b"x" * 1001)
        assert response.status_code == 413
        assert response.headers["connection"] == "close"
        error = response.json()["error"]
        assert (error["code"], error["message"]) == (
            "body_too_large",
            "request body too large: at most 1000 bytes",
        )
        assert httpx.request("GET", f"{api.url}/api/v1/symbols", content=b"x" * 1000).status_code == 200
        assert api.shed("body_too_large") == 1


def test_a_streamed_body_past_the_limit_closes_the_connection(tmp_path: Path) -> None:
    with LiveApi(tmp_path, _settings(max_body_bytes=1000)) as api:
        head = b"GET /livez HTTP/1.1\r\nHost: api\r\nTransfer-Encoding: chunked\r\n\r\n"
        with connect(api.port, head) as sock:
            chunk = b"100\r\n" + b"x" * 256 + b"\r\n"
            for _ in range(50):
                try:
                    sock.sendall(chunk)
                except OSError:
                    break
                time.sleep(0.01)
            assert closed_by_server(sock, within=5) is not None
        assert api.shed("body_too_large") == 1


def test_at_the_connection_limit_the_longest_waiting_is_closed_and_probes_answer(tmp_path: Path) -> None:
    with LiveApi(tmp_path, _settings(max_connections=20)) as api:
        attackers = [connect(api.port, HALF_REQUEST) for _ in range(60)]
        try:
            started = time.monotonic()
            assert httpx.get(f"{api.url}/livez", timeout=8).status_code == 200
            assert httpx.get(f"{api.url}/readyz", timeout=8).status_code == 200
            # Answered because the oldest attackers were shed, not because their 10 s header timeout
            # ran out (a loaded 2-core machine has taken 2 s to answer).
            assert time.monotonic() - started < 5
            assert closed_by_server(attackers[0], within=2) == b""  # the oldest went first
            assert closed_by_server(attackers[-1], within=0.2) is None  # the newest are still open
            assert api.shed("connection_limit") >= 40
        finally:
            for sock in attackers:
                sock.close()


def _slow_route(app: FastAPI) -> None:
    @app.get("/api/v1/slow")
    async def slow() -> dict[str, str]:
        await asyncio.sleep(1.5)
        return {"slow": "done"}


def test_beyond_the_concurrency_limit_requests_get_503_and_probes_still_answer(tmp_path: Path) -> None:
    with LiveApi(tmp_path, _settings(max_concurrent_requests=2), customize=_slow_route) as api:
        slow = [threading.Thread(target=httpx.get, args=(f"{api.url}/api/v1/slow",)) for _ in range(2)]
        for thread in slow:
            thread.start()
        time.sleep(0.3)
        refused = httpx.get(f"{api.url}/api/v1/symbols")
        probes = [httpx.get(f"{api.url}{path}").status_code for path in ("/livez", "/readyz", "/metrics")]
        for thread in slow:
            thread.join()
        after = httpx.get(f"{api.url}/api/v1/symbols")
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert refused.json()["error"]["code"] == "overloaded"
    assert probes == [200, 200, 200]
    assert after.status_code == 200
    assert api.shed("overloaded") == 1


def test_beyond_the_websocket_limit_the_stream_is_closed_with_1013(tmp_path: Path) -> None:
    with LiveApi(tmp_path, _settings(max_websockets=1)) as api:
        url = f"ws://127.0.0.1:{api.port}/api/v1/ws/bars"
        with ws_connect(url) as first:
            assert json.loads(first.recv(timeout=5))["type"] == "subscribed"
            with ws_connect(url) as second, pytest.raises(ConnectionClosed) as closed:
                second.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
        with ws_connect(url) as again:  # the slot is free again
            assert json.loads(again.recv(timeout=5))["type"] == "subscribed"
        assert api.shed("websocket_limit") == 1


def test_a_client_that_never_reads_its_response_is_cut_off(quick: LiveApi) -> None:
    # 8 pipelined requests for a 1 MB file: more than the kernel's buffers hold
    request = b"GET /static/vendor/redoc/redoc.standalone.js HTTP/1.1\r\nHost: api\r\n\r\n" * 8
    with connect(quick.port, request, receive_buffer=4096):
        deadline = time.monotonic() + 10
        while quick.shed("send_timeout") == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert quick.shed("send_timeout") == 1


def test_kept_alive_requests_are_not_delayed(quick: LiveApi) -> None:
    """Accepted connections get TCP_NODELAY: without it each response on a kept-alive connection waited
    ~40 ms for the client's delayed ACK."""
    latencies = []
    with httpx.Client(base_url=quick.url) as http:
        for _ in range(15):
            started = time.perf_counter()
            assert http.get("/livez").status_code == 200
            latencies.append(time.perf_counter() - started)
    assert statistics.median(latencies[1:]) < 0.02, latencies


def test_no_server_header_is_sent(quick: LiveApi) -> None:
    assert "server" not in httpx.get(f"{quick.url}/livez").headers
