"""Probes and metrics.

/livez: the process answers (and, when a `monitoring.health.Health` was given, its event-loop heartbeat
is fresh). /readyz: store and cache answer a ping within `readiness_timeout` seconds, plus the Health
object's own registered checks. /metrics: Prometheus text exposition (0.0.4) of the injected registry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from loguru import logger
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from api.deps import ContextDep
from api.schemas import DependencyStatus, LivenessOut, ReadinessOut
from monitoring.health import Health

router = APIRouter(tags=["health"])


@router.get(
    "/livez",
    summary="The process is alive",
    responses={503: {"model": LivenessOut, "description": "the event-loop heartbeat stopped"}},
)
async def livez(context: ContextDep) -> JSONResponse:
    health = context.health
    if health is None:
        return JSONResponse(LivenessOut().model_dump(exclude_none=True))
    age = health.heartbeat_age()
    body = LivenessOut(status="ok" if health.live() else "fail", heartbeat_age=age)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=200 if body.status == "ok" else 503)


async def _probe(name: str, ping: Callable[[], Awaitable[bool]], timeout: float) -> DependencyStatus:
    try:
        ok = await asyncio.wait_for(ping(), timeout)
    except TimeoutError:
        return DependencyStatus(status="timeout", detail=f"no answer within {timeout:g}s")
    except Exception as exc:  # a probe reports any failure of its dependency; it must not crash
        logger.warning("readiness: {} ping raised {}: {}", name, type(exc).__name__, exc)
        return DependencyStatus(status="fail", detail=f"{type(exc).__name__}: {str(exc)[:200]}")
    return DependencyStatus(status="ok") if ok else DependencyStatus(status="fail", detail="ping failed")


async def _health_checks(health: Health | None) -> dict[str, DependencyStatus]:
    if health is None:
        return {}
    report = await health.ready()
    return {
        check.name: DependencyStatus(status="ok")
        if check.ok
        else DependencyStatus(
            status="timeout" if (check.error or "").startswith("timed out") else "fail", detail=check.error
        )
        for check in report.checks
    }


@router.get(
    "/readyz",
    summary="Store and cache answer",
    response_model=ReadinessOut,
    responses={503: {"model": ReadinessOut, "description": "a dependency is down"}},
)
async def readyz(context: ContextDep) -> JSONResponse:
    timeout = context.settings.readiness_timeout
    store, cache, extra = await asyncio.gather(
        _probe("store", context.store.ping, timeout),
        _probe("cache", context.cache.ping, timeout),
        _health_checks(context.health),
    )
    checks = {"store": store, "cache": cache}
    for name, status in extra.items():
        checks.setdefault(name, status)
    ready = all(check.status == "ok" for check in checks.values())
    body = ReadinessOut(status="ok" if ready else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=200 if ready else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_PLAIN_0_0_4: {}}}},
)
async def metrics(context: ContextDep) -> Response:
    return Response(generate_latest(context.metrics.registry), media_type=CONTENT_TYPE_PLAIN_0_0_4)
