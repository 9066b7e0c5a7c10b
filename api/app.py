"""The application factory: `create_app(store, cache, ...)` wires routes, error handlers and middleware.

The store and cache belong to the caller, who opens them before serving and closes them after; the app
closes them on shutdown only when `settings.close_dependencies` is set.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute, Route, WebSocketRoute
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from api.deps import ApiContext
from api.errors import install_error_handlers
from api.limits import RequestLimitMiddleware
from api.middleware import MetricsMiddleware, RequestContextMiddleware
from api.openapi import install_openapi
from api.ratelimit import RateLimitMiddleware, TokenBucketLimiter
from api.routes import health as health_routes
from api.routes import market, stream
from api.routes.web import install_web
from api.settings import ApiSettings
from api.symbols import SymbolDirectory
from core.ports import FeedBoard, MarketCache, MarketStore
from monitoring import tracing
from monitoring.health import Health
from monitoring.metrics import METRICS, PlatformMetrics

PROBES = frozenset({"/livez", "/readyz", "/metrics"})  # never rate-limited nor refused as overload

__all__ = ["ApiSettings", "create_app"]


def create_app(
    store: MarketStore,
    cache: MarketCache,
    *,
    metrics: PlatformMetrics = METRICS,
    settings: ApiSettings | None = None,
    health: Health | None = None,
    feeds: FeedBoard | None = None,
) -> FastAPI:
    """The API over `store` (bars, trades, symbols), `cache` (latest bars, the live bar stream) and `feeds`
    (the collectors' feed statuses; /api/v1/feeds answers 503 without it).

    `metrics` receives the HTTP, websocket and rate-limit metrics and is what /metrics exposes. `health`,
    when given, makes /livez follow its event-loop heartbeat (start it first) and adds its registered
    checks to /readyz.
    """
    settings = settings or ApiSettings()
    context = ApiContext(
        store=store,
        cache=cache,
        metrics=metrics,
        settings=settings,
        symbols=SymbolDirectory(store, ttl=settings.symbols_ttl),
        health=health,
        feeds=feeds,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        if settings.close_dependencies:
            await cache.close()
            await store.close()

    app = FastAPI(
        title=settings.title,
        version="1",
        lifespan=lifespan,
        docs_url=None,  # /docs and /redoc come from api.routes.web, with their assets served locally
        redoc_url=None,
        description="Bars, indicators and trades collected from crypto exchanges. Prices are exact strings.",
    )
    app.state.api = context
    app.include_router(market.router)
    app.include_router(stream.router)
    app.include_router(health_routes.router)
    web = install_web(app)
    install_error_handlers(app)
    install_openapi(app, settings)
    _install_middleware(app, settings, metrics, extra_routes=web.routes)
    if tracing.ENABLED:
        _instrument(app)
    return app


def _instrument(app: FastAPI) -> None:
    """OpenTelemetry's FastAPI instrumentation: a server span per request (outermost, so the request
    context middleware adds the request id to it); probes and scrapes are not traced."""
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=tracing.tracer_provider(), excluded_urls="/metrics,/livez,/readyz"
    )


def _flat_routes(app: FastAPI, extra: list[BaseRoute]) -> list[BaseRoute]:
    """The app's own routes (openapi.json), those of the included routers and `extra`, for labelling 429s."""
    own = [r for r in app.router.routes if isinstance(r, Route | WebSocketRoute)]
    return [*own, *market.router.routes, *stream.router.routes, *health_routes.router.routes, *extra]


def _install_middleware(
    app: FastAPI, settings: ApiSettings, metrics: PlatformMetrics, *, extra_routes: list[BaseRoute]
) -> None:
    """Added innermost first: CORS, rate limiting, request limits, metrics, the request context, then
    (outermost, when proxies are trusted) the client address from X-Forwarded-For."""
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET"],
            allow_headers=["*"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    if settings.rate_limit_per_second > 0:
        limiter = TokenBucketLimiter(
            settings.rate_limit_per_second,
            settings.rate_limit_burst,
            max_clients=settings.rate_limit_max_clients,
        )
        app.add_middleware(
            RateLimitMiddleware,
            limiter=limiter,
            metrics=metrics,
            routes=_flat_routes(app, extra_routes),
            exempt=PROBES,
        )
    app.add_middleware(
        RequestLimitMiddleware,
        max_body_bytes=settings.max_body_bytes,
        max_requests=settings.max_concurrent_requests,
        max_websockets=settings.max_websockets,
        exempt=PROBES,
        shed=metrics.http_shed,
    )
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(RequestContextMiddleware)
    if settings.trusted_proxies:
        # Only these peers may say who the client is; the rate limit keys on the result.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
