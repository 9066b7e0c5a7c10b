"""Probes and metrics.

/livez: the process answers (and, when a `monitoring.health.Health` was given, its event-loop heartbeat
is fresh). /readyz: store and cache answer a ping within `readiness_timeout` seconds, plus the Health
object's own registered checks. Both answer in the shape every metrics port uses (monitoring.health).
/metrics: Prometheus text exposition (0.0.4) of the injected registry.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from api.deps import ContextDep
from api.schemas import LivenessOut, ReadinessOut
from monitoring.health import CheckResult, HealthReport, liveness, run_check

router = APIRouter(tags=["health"])


@router.get(
    "/livez",
    summary="The process is alive",
    response_model=LivenessOut,
    responses={503: {"model": LivenessOut, "description": "the event-loop heartbeat stopped"}},
)
async def livez(context: ContextDep) -> JSONResponse:
    status, body = liveness(context.health)
    return JSONResponse(body, status_code=status)


@router.get(
    "/readyz",
    summary="Store and cache answer",
    response_model=ReadinessOut,
    responses={503: {"model": ReadinessOut, "description": "a dependency is down"}},
)
async def readyz(context: ContextDep) -> JSONResponse:
    timeout = context.settings.readiness_timeout
    store, cache = await asyncio.gather(
        run_check("store", context.store.ping, timeout), run_check("cache", context.cache.ping, timeout)
    )
    checks: dict[str, CheckResult] = {"store": store, "cache": cache}
    if context.health is not None:
        for check in (await context.health.ready()).checks:
            checks.setdefault(check.name, check)
    report = HealthReport(all(c.ok for c in checks.values()), tuple(checks.values()))
    return JSONResponse(report.to_dict(), status_code=report.http_status)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_PLAIN_0_0_4: {}}}},
)
async def metrics(context: ContextDep) -> Response:
    return Response(generate_latest(context.metrics.registry), media_type=CONTENT_TYPE_PLAIN_0_0_4)
