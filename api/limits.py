"""Per-request limits as pure ASGI middleware (the per-connection ones are in `api.protocol`).

- A request whose Content-Length exceeds `max_body_bytes` gets 413 before the application runs, and the
  connection is closed after it (the body is not read).
- At most `max_requests` HTTP requests are served at once; beyond, 503 with Retry-After: 1, so that a
  slow store sheds load instead of queueing it without bound. `exempt` paths (the probes, /metrics) are
  neither counted nor refused: they keep answering under load.
- At most `max_websockets` bar streams are open; beyond, the handshake is accepted and closed with code
  1013 (try again later).

Every refusal counts in http_shed_total{reason}.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import Counter
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import request_id_of, send_error
from api.ratelimit import client_key
from monitoring.events import security_event

BODY_TOO_LARGE = "body_too_large"
OVERLOADED = "overloaded"
WEBSOCKET_LIMIT = "websocket_limit"
TRY_AGAIN_LATER = 1013  # RFC 6455 close code
_CLOSE = (b"connection", b"close")


def declared_length(headers: Sequence[tuple[bytes, bytes]]) -> int | None:
    """The request's Content-Length, None when absent or unreadable (h11 has refused malformed ones)."""
    for name, value in headers:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


class RequestLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        max_requests: int,
        max_websockets: int,
        exempt: frozenset[str],
        shed: Counter,
    ) -> None:
        self.app = app
        self._max_body_bytes = max_body_bytes
        self._max_requests = max_requests
        self._max_websockets = max_websockets
        self._exempt = exempt
        self._shed = shed
        self._requests = 0
        self._websockets = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        elif scope["type"] != "http":
            await self.app(scope, receive, send)
        elif (declared_length(scope["headers"]) or 0) > self._max_body_bytes:
            self._shed.labels(BODY_TOO_LARGE).inc()
            message = f"request body too large: at most {self._max_body_bytes} bytes"
            request_id = request_id_of(scope)
            security_event(
                "security_rejected_request",
                f"rejected {scope['method']} {scope['path']}: {BODY_TOO_LARGE}",
                reason=BODY_TOO_LARGE,
                status=413,
                client=client_key(scope),
                method=scope["method"],
                path=scope["path"],
                request_id=request_id,
            )
            await send_error(send, 413, BODY_TOO_LARGE, message, request_id=request_id, headers=[_CLOSE])
        elif scope["path"] in self._exempt:
            await self.app(scope, receive, send)
        elif self._requests >= self._max_requests:
            self._shed.labels(OVERLOADED).inc()
            message = f"too many requests in progress (at most {self._max_requests}); retry in 1 s"
            retry = [(b"retry-after", b"1")]
            await send_error(send, 503, OVERLOADED, message, request_id=request_id_of(scope), headers=retry)
        else:
            self._requests += 1
            try:
                await self.app(scope, receive, send)
            finally:
                self._requests -= 1

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._websockets >= self._max_websockets:
            self._shed.labels(WEBSOCKET_LIMIT).inc()
            await receive()  # websocket.connect
            await send({"type": "websocket.accept"})
            reason = f"too many websocket clients (at most {self._max_websockets}); try again later"
            await send({"type": "websocket.close", "code": TRY_AGAIN_LATER, "reason": reason})
            return
        self._websockets += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self._websockets -= 1
