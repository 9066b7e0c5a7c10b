"""Per-client-IP token-bucket rate limiting as pure ASGI middleware.

A client starts with `burst` tokens; each HTTP request takes one; tokens refill at `rate` per second up to
`burst`. A request without a token gets a 429 JSON error with Retry-After (whole seconds) and counts in
rate_limit_exceeded_total{endpoint}. Memory is bounded: a bucket idle long enough to be full again is
indistinguishable from a new one and is dropped, and at most `max_clients` buckets are kept (least
recently seen dropped first). The client is the peer's address (an IPv6 one by its /64, which one host
usually holds whole), or, behind a proxy listed in `ApiSettings.trusted_proxies`, the address it
forwarded (api.app installs that middleware; the server never believes X-Forwarded-For itself).
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import request_id_of, send_error
from api.middleware import match_route, route_template
from monitoring.events import security_event
from monitoring.metrics import PlatformMetrics


class TokenBucketLimiter:
    """Token buckets keyed by client; `rate` tokens per second, at most `burst` held."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        max_clients: int = 10_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1 or max_clients < 1:
            raise ValueError("rate must be > 0, burst and max_clients >= 1")
        self.rate = rate
        self.burst = burst
        self._max_clients = max_clients
        self._monotonic = monotonic
        self._refill_seconds = burst / rate
        # key -> (tokens, time of last update); least recently seen first
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def acquire(self, key: str) -> float:
        """Take a token for `key`: 0.0 if granted, else the seconds until one will be available."""
        now = self._monotonic()
        held = self._buckets.pop(key, None)
        self._evict(now)
        tokens = float(self.burst) if held is None else min(self.burst, held[0] + (now - held[1]) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[key] = (tokens, now)
        return wait

    def _evict(self, now: float) -> None:
        buckets = self._buckets
        while buckets:
            oldest_key, (_, updated) = next(iter(buckets.items()))
            if len(buckets) < self._max_clients and now - updated < self._refill_seconds:
                return
            del buckets[oldest_key]


def client_key(scope: Scope) -> str:
    """The bucket of the request's client: its IPv4 address, or the /64 of its IPv6 address."""
    client = scope.get("client")
    if not client:
        return "unknown"
    host = str(client[0])
    if ":" not in host:
        return host
    try:
        return str(ipaddress.IPv6Network((host, 64), strict=False))
    except ValueError:
        return host


class RateLimitMiddleware:
    """Refuses HTTP requests beyond the limiter's budget; `exempt` paths (probes, metrics) pass freely."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limiter: TokenBucketLimiter,
        metrics: PlatformMetrics,
        routes: Iterable[BaseRoute],
        exempt: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self._limiter = limiter
        self._exceeded = metrics.rate_limit_exceeded
        self._routes = routes
        self._exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self._exempt:
            await self.app(scope, receive, send)
            return
        wait = self._limiter.acquire(client_key(scope))
        if wait == 0.0:
            await self.app(scope, receive, send)
            return
        route = match_route(self._routes, scope)
        if route is not None:
            scope["route"] = route  # so the request metrics label the 429 with its route template
        self._exceeded.labels(route_template(route)).inc()
        security_event(
            "security_rate_limited",
            f"rate limited {scope['method']} {route_template(route)}",
            client=client_key(scope),
            method=scope["method"],
            path=route_template(route),
            request_id=request_id_of(scope),
        )
        await self._refuse(scope, send, max(1, math.ceil(wait)))

    async def _refuse(self, scope: Scope, send: Send, retry_after: int) -> None:
        limiter = self._limiter
        message = (
            f"rate limit exceeded ({limiter.rate:g} requests/s, burst {limiter.burst}); "
            f"retry in {retry_after} s"
        )
        retry = [(b"retry-after", str(retry_after).encode())]
        await send_error(send, 429, "rate_limited", message, request_id=request_id_of(scope), headers=retry)
