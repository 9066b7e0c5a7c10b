"""The metrics HTTP server (`/metrics`, `/livez`, `/readyz`), `track_time` and `set_build_info`.

The server runs on its own thread, so it answers from sync and async programs alike and keeps
answering `/metrics` while the event loop is busy; `/readyz` is evaluated on the loop through
`Health.ready_threadsafe`.

A thread serves each connection, so idle or half-sent requests would each hold a thread and a file
descriptor for ever, and a few hundred of them starve the whole process (its API and database
connections included). So: a request's headers must arrive within `header_timeout` seconds of the
connection opening or of the previous response (a trickle of bytes does not extend it), a blocked read
or write gives up after `SEND_TIMEOUT`, and at most `max_connections` are open: at the limit, the one
waiting for a request the longest is closed to make room.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import platform
import socket
import threading
import time
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import choose_encoder

from core.errors import ConfigError
from monitoring.health import Health, liveness
from monitoring.metrics import METRICS, PlatformMetrics
from monitoring.timing import Observer as Observer
from monitoring.timing import track_time as track_time

DEFAULT_METRICS_PORT = 9091
HEADER_TIMEOUT = 10.0  # s for a request's headers, counted from the connection or the previous response
SEND_TIMEOUT = 30.0  # s one blocked read or write of a connection may take
MAX_CONNECTIONS = 64  # a scrape or a probe holds one for milliseconds


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
    request_queue_size = 128  # listen backlog: socketserver's 5 drops connection bursts (1 s SYN retries)
    registry: CollectorRegistry
    health: Health | None
    header_timeout = HEADER_TIMEOUT
    max_connections = MAX_CONNECTIONS

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._waiting: OrderedDict[socket.socket, float] = OrderedDict()  # since when, oldest first
        super().__init__(address, handler)

    def waiting(self, connection: socket.socket) -> None:
        with self._lock:
            if connection in self._open:
                self._waiting[connection] = time.monotonic()
                self._waiting.move_to_end(connection)

    def busy(self, connection: socket.socket) -> None:
        with self._lock:
            self._waiting.pop(connection, None)

    def process_request(self, request: Any, client_address: Any) -> None:
        if self._admit(request):
            super().process_request(request, client_address)
        else:
            self.shutdown_request(request)  # every connection is busy answering: refuse this one

    def _admit(self, connection: socket.socket) -> bool:
        with self._lock:
            if len(self._open) >= self.max_connections:
                if not self._waiting:
                    return False
                victim, _ = self._waiting.popitem(last=False)
                self._open.discard(victim)
                _hang_up(victim)
            self._open.add(connection)
            self._waiting[connection] = time.monotonic()
        return True

    def service_actions(self) -> None:
        """Run by serve_forever between polls: close connections overdue with their request headers."""
        deadline = time.monotonic() - self.header_timeout
        with self._lock:
            while self._waiting:
                connection, since = next(iter(self._waiting.items()))
                if since > deadline:
                    break
                del self._waiting[connection]
                _hang_up(connection)

    def shutdown_request(self, request: Any) -> None:
        with self._lock:
            self._open.discard(request)
            self._waiting.pop(request, None)
        super().shutdown_request(request)

    def server_close(self) -> None:
        super().server_close()
        with self._lock:
            for connection in self._open:
                _hang_up(connection)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client gone or hung up; socketserver would print a traceback to stderr


def _hang_up(connection: socket.socket) -> None:
    """End a connection served by another thread: its blocked read returns at once."""
    with contextlib.suppress(OSError):
        connection.shutdown(socket.SHUT_RDWR)


class _IPv6Server(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = SEND_TIMEOUT  # set on the socket: bounds each blocked read and write

    def handle_one_request(self) -> None:
        self.server.waiting(self.connection)
        super().handle_one_request()

    def parse_request(self) -> bool:
        parsed = super().parse_request()  # reads the headers
        self.server.busy(self.connection)
        return parsed

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
    *,
    header_timeout: float = HEADER_TIMEOUT,
    max_connections: int = MAX_CONNECTIONS,
) -> MetricsServer:
    """Serve `/metrics` (and `/livez`, `/readyz` when `health` is given) on a background thread.

    `port`: None = env METRICS_PORT, else 9091; 0 = any free port (read `.port`). A port in use (or an
    address that cannot be bound) raises ConfigError with a one-line message. `header_timeout` (s) and
    `max_connections`: see the module docstring.
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
    server.header_timeout = header_timeout
    server.max_connections = max_connections
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, name=f"metrics-server-{port}", daemon=True
    )
    thread.start()
    return MetricsServer(server, thread, addr)
