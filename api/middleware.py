"""Pure ASGI middleware (no BaseHTTPMiddleware: it is slow and breaks streaming and websockets).

RequestContextMiddleware (outermost): gives every request an id (a sane incoming X-Request-ID is kept,
otherwise a uuid4 hex), binds it to the log context, returns it on every response (errors, 404s and
429s included) and turns an unexpected exception into a logged 500 JSON error.

MetricsMiddleware: http_requests_total{method,endpoint,status} and
http_request_duration_seconds{method,endpoint}, where endpoint is the matched route's template
("/api/v1/bars"), read from the scope after routing, or "unmatched"; label sets stay bounded. It also
logs the request events: `api_request` (DEBUG, on arrival: method, raw path) and `api_response` (INFO:
method, path template, status, duration_ms, request_id), both sampled at LOG_SAMPLE_RATE.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterable, Sequence

from loguru import logger
from prometheus_client import Counter, Histogram
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import request_id_of, send_error
from monitoring import tracing
from monitoring.events import emit, enabled_for
from monitoring.metrics import PlatformMetrics

REQUEST_ID_HEADER = b"x-request-id"
UNMATCHED = "unmatched"
_SANE_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_template(route: object) -> str:
    """The path template of a matched route, or "unmatched"."""
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return template if isinstance(template, str) and template else UNMATCHED


def match_route(routes: Iterable[BaseRoute], scope: Scope) -> BaseRoute | None:
    """The route whose path matches `scope` (for answers given before routing; methods ignored).

    `routes` must be flat (Route/APIRoute/WebSocketRoute objects, not included routers)."""
    path = scope["path"]
    for route in routes:
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(path):
            return route
    return None


def _incoming_request_id(headers: Sequence[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == REQUEST_ID_HEADER:
            return value.decode("ascii") if _SANE_REQUEST_ID.match(value) else None
    return None


def _with_header(message: Message, header: tuple[bytes, bytes]) -> Message:
    headers = [h for h in message.get("headers", []) if h[0].lower() != header[0]]
    headers.append(header)
    return {**message, "headers": headers}


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope.get("headers", [])) or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        if tracing.ENABLED:
            tracing.add_span_attributes(request_id=request_id)
        header = (REQUEST_ID_HEADER, request_id.encode("ascii"))
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] in ("http.response.start", "websocket.accept"):
                started = True
                message = _with_header(message, header)
            await send(message)

        with logger.contextualize(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            except Exception:
                logger.exception("unhandled error on {} {}", scope.get("method", "WS"), scope.get("path"))
                if started or scope["type"] != "http":
                    raise
                message = "internal server error; quote the request id"
                await send_error(send_with_id, 500, "internal_error", message, request_id=request_id)


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, *, metrics: PlatformMetrics) -> None:
        self.app = app
        self._requests = metrics.http_requests
        self._duration = metrics.http_request_duration
        self._counters: dict[tuple[str, str, int], Counter] = {}
        self._timers: dict[tuple[str, str], Histogram] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # unless a response starts: an exception escaping the app becomes a 500
        start = time.perf_counter()
        request_id = request_id_of(scope)
        if enabled_for("DEBUG"):
            emit(
                "api_request",
                f"{scope['method']} {scope['path']}",
                level="DEBUG",
                component="api",
                method=scope["method"],
                path=scope["path"],
                request_id=request_id,
            )

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            endpoint = route_template(scope.get("route"))
            elapsed = time.perf_counter() - start
            self._timer(method, endpoint).observe(elapsed)
            self._counter(method, endpoint, status).inc()
            emit(
                "api_response",
                f"{method} {endpoint} {status}",
                component="api",
                method=method,
                path=endpoint,
                status=status,
                duration_ms=round(elapsed * 1000, 3),
                request_id=request_id,
            )

    def _counter(self, method: str, endpoint: str, status: int) -> Counter:
        key = (method, endpoint, status)
        child = self._counters.get(key)
        if child is None:
            child = self._counters[key] = self._requests.labels(method, endpoint, str(status))
        return child

    def _timer(self, method: str, endpoint: str) -> Histogram:
        key = (method, endpoint)
        child = self._timers.get(key)
        if child is None:
            child = self._timers[key] = self._duration.labels(method, endpoint)
        return child
