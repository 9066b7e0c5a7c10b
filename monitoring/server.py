"""The metrics HTTP server (`/metrics`, `/livez`, `/readyz`), `track_time` and `set_build_info`.

The server runs on its own thread, so it answers from sync and async programs alike and keeps
answering `/metrics` while the event loop is busy; `/readyz` is evaluated on the loop through
`Health.ready_threadsafe`.
"""

from __future__ import annotations

import errno
import functools
import inspect
import json
import os
import platform
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata
from types import TracebackType
from typing import Any, ParamSpec, Protocol, TypeVar

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import choose_encoder

from core.errors import ConfigError
from monitoring.health import Health, liveness
from monitoring.metrics import METRICS, PlatformMetrics

DEFAULT_METRICS_PORT = 9091
P = ParamSpec("P")
T = TypeVar("T")


class Observer(Protocol):
    """A histogram or summary child (`hist.labels(...)`, or an unlabelled one): `observe(seconds)`."""

    def observe(self, amount: float) -> None: ...


class track_time:  # lower-case: used like a function, `@track_time(h)` and `with track_time(h):`
    """Observe elapsed seconds (perf_counter) into `metric`, also when the body raises.

    Decorates sync and async functions (the await is timed, not the coroutine creation) and works as a
    sync context manager. Each `with` should use its own `track_time(...)` object; decorated functions
    can run concurrently.
    """

    def __init__(self, metric: Observer) -> None:
        self.metric = metric
        self._starts: list[float] = []

    def __enter__(self) -> track_time:
        self._starts.append(time.perf_counter())
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.metric.observe(time.perf_counter() - self._starts.pop())

    def __call__(self, fn: Callable[P, T]) -> Callable[P, T]:
        metric = self.metric
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def timed_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                start = time.perf_counter()
                try:
                    return await fn(*args, **kwargs)
                finally:
                    metric.observe(time.perf_counter() - start)

            return timed_async  # type: ignore[return-value]

        @functools.wraps(fn)
        def timed(*args: P.args, **kwargs: P.kwargs) -> T:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                metric.observe(time.perf_counter() - start)

        return timed


def set_build_info(service: str, metrics: PlatformMetrics = METRICS) -> dict[str, str]:
    """Fill `build_info{version,python,service}`; version from the installed 'cryptostock' package."""
    try:
        version = metadata.version("cryptostock")
    except metadata.PackageNotFoundError:
        version = "unknown"
    info = {"version": version, "python": platform.python_version(), "service": service}
    metrics.build_info.info(info)
    return info


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    registry: CollectorRegistry
    health: Health | None


class _IPv6Server(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            self._send(200, content_type, encoder(self.server.registry))
        elif path == "/livez" and self.server.health is not None:
            self._send_json(*liveness(self.server.health))
        elif path == "/readyz" and self.server.health is not None:
            report = self.server.health.ready_threadsafe()
            self._send_json(report.http_status, report.to_dict())
        else:
            self._send(404, "text/plain; charset=utf-8", b"not found\n")

    def _send_json(self, status: int, body: dict[str, Any]) -> None:
        self._send(status, "application/json", json.dumps(body).encode())

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # scrapes every few seconds would flood the logs


class MetricsServer:
    """Handle of a running metrics server: `.port` (actual), `.url` (of /metrics), `.stop()`."""

    def __init__(self, server: _Server, thread: threading.Thread, addr: str) -> None:
        self._server = server
        self._thread = thread
        self.addr = addr
        self.port: int = server.server_address[1]
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(addr, addr)
        self.base_url = f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"
        self.url = f"{self.base_url}/metrics"

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent)."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_metrics_server(
    port: int | None = None,
    addr: str = "127.0.0.1",
    registry: CollectorRegistry = REGISTRY,
    health: Health | None = None,
) -> MetricsServer:
    """Serve `/metrics` (and `/livez`, `/readyz` when `health` is given) on a background thread.

    `port`: None = env METRICS_PORT, else 9091; 0 = any free port (read `.port`). A port in use (or an
    address that cannot be bound) raises ConfigError with a one-line message.
    """
    if port is None:
        raw = os.environ.get("METRICS_PORT") or str(DEFAULT_METRICS_PORT)
        try:
            port = int(raw)
        except ValueError:
            raise ConfigError(f"METRICS_PORT must be an integer, got {raw!r}") from None
    server_cls = _IPv6Server if ":" in addr else _Server
    try:
        server = server_cls((addr, port), _Handler)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            msg = f"metrics port {port} on {addr} is already in use; set METRICS_PORT or --metrics-port"
        else:
            msg = f"cannot serve metrics on {addr}:{port}: {exc.strerror or exc}"
        raise ConfigError(msg) from None
    server.registry = registry
    server.health = health
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, name=f"metrics-server-{port}", daemon=True
    )
    thread.start()
    return MetricsServer(server, thread, addr)
