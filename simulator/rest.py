"""The REST side every simulated venue shares: request metrics, the `rate_limit` fault, the venue's errors
turned into responses, and the admin endpoints (GET /admin/state, POST /admin/faults).

Middleware order, outermost first: metrics (counts the final status of every request, websocket upgrades
included), the venue's own middleware if any (e.g. request-weight headers), then faults and errors
(only on the venue's REST routes: admin and websocket paths are never rate-limited).
"""

from __future__ import annotations

from typing import Any, Protocol

import msgspec
import pydantic
from aiohttp import web

from simulator.faults import FaultRequest, FaultState
from simulator.venue import ExchangeView, Handler, VenueProtocol


class RestRefusal(Exception):
    """A REST request the venue refuses: HTTP `status` with the venue's JSON `body`."""

    def __init__(self, status: int, body: object) -> None:
        super().__init__(status)
        self.status, self.body = status, body


def json_response(body: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=msgspec.json.encode(body), status=status, headers=headers, content_type="application/json"
    )


def int_param(request: web.Request, name: str) -> int | None:
    """The query parameter `name` as a non-negative integer, None if absent or empty; ValueError(name) if
    it is not digits (at most 20)."""
    value = request.query.get(name)
    if not value:
        return None
    if not value.isdigit() or len(value) > 20:
        raise ValueError(name)
    return int(value)


def cursor_params(request: web.Request, *, default: int, maximum: int) -> tuple[int, int | None, int | None]:
    """(limit, after, before) of a newest-first id cursor request (see SymbolHistory.page). limit: `default`
    when absent, clamped to `maximum`; ValueError(name) for a parameter that is not an integer >= 1."""
    limit, after, before = (int_param(request, name) for name in ("limit", "after", "before"))
    if limit is not None and limit < 1:
        raise ValueError("limit")
    return min(limit or default, maximum), after, before


class RestHost(ExchangeView, Protocol):
    """What the REST front needs of the exchange."""

    faults: FaultState

    def count_request(self, method: str, endpoint: str, status: int) -> None: ...

    def state(self) -> dict[str, Any]: ...

    def apply_faults(self, request: FaultRequest) -> None: ...


class RestFront:
    """Installs the venue's REST routes, the admin routes and the shared middlewares on an app."""

    def __init__(self, host: RestHost, venue: VenueProtocol) -> None:
        self._host, self._venue = host, venue
        self._venue_paths: set[str] = set()

    def install(self, app: web.Application) -> None:
        app.middlewares.append(self._count)
        venue_middleware = self._venue.rest_middleware(self._host)
        if venue_middleware is not None:
            app.middlewares.append(venue_middleware)
        app.middlewares.append(self._faults_and_errors)
        for path, handler in self._venue.rest_routes(self._host):
            app.router.add_get(path, handler)
            self._venue_paths.add(path)
        app.router.add_get("/admin/state", self._admin_state)
        app.router.add_post("/admin/faults", self._admin_faults)

    @web.middleware
    async def _count(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        endpoint = _endpoint(request)
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            self._host.count_request(request.method, endpoint, exc.status)
            raise
        self._host.count_request(request.method, endpoint, response.status)
        return response

    @web.middleware
    async def _faults_and_errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if _endpoint(request) not in self._venue_paths:
            return await handler(request)
        retry_after = self._host.faults.take_rate_limit()
        if retry_after is not None:
            headers = {"Retry-After": str(retry_after)}
            return json_response(self._venue.rate_limited_body, status=429, headers=headers)
        try:
            return await handler(request)
        except RestRefusal as exc:
            return json_response(exc.body, status=exc.status)

    async def _admin_state(self, request: web.Request) -> web.Response:
        return json_response(self._host.state())

    async def _admin_faults(self, request: web.Request) -> web.Response:
        try:
            faults = FaultRequest.model_validate_json(await request.read())
        except pydantic.ValidationError as exc:
            return json_response({"error": exc.errors(include_url=False, include_context=False)}, status=400)
        try:
            self._host.apply_faults(faults)
        except ValueError as exc:
            return json_response({"error": str(exc)}, status=400)
        return json_response(self._host.state())


def _endpoint(request: web.Request) -> str:
    """The route's pattern (bounded label values for metrics), or 'unmatched'."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"
