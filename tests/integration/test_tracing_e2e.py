"""Tracing end to end: simulator -> collector -> Redis -> processor -> PostgreSQL as real processes,
exporting OTLP/HTTP to a real receiver on loopback (an aiohttp server decoding the protobuf
ExportTraceServiceRequest). One trade batch must be one connected trace from the collector's read to
the stored bar, and its trace id must be in the logs of both processes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.conftest import free_port
from tests.integration.conftest import Platform
from tests.integration.procs import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str


class OtlpReceiver:
    """POST /v1/traces (application/x-protobuf), as an OpenTelemetry Collector or Jaeger receives it."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.requests = 0

    async def handle(self, request: web.Request) -> web.Response:
        assert request.content_type == "application/x-protobuf"
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            import gzip

            body = gzip.decompress(body)
        message = ExportTraceServiceRequest.FromString(body)
        self.requests += 1
        for resource_spans in message.resource_spans:
            attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            service = attributes.get("service.name", "")
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append(
                        ReceivedSpan(
                            service,
                            span.name,
                            span.trace_id.hex(),
                            span.span_id.hex(),
                            span.parent_span_id.hex(),
                        )
                    )
        reply = ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=reply, content_type="application/x-protobuf")

    def complete_trace(self) -> list[ReceivedSpan] | None:
        """The spans of a trace that reaches from a collector batch to a stored bar, connected parent to
        child: processor.store_bars <- processor.apply <- collector.publish <- collector.batch."""
        by_id = {s.span_id: s for s in self.spans}
        for bars in (s for s in self.spans if s.name == "processor.store_bars"):
            chain = [bars]
            while chain[-1].parent_id and chain[-1].parent_id in by_id:
                chain.append(by_id[chain[-1].parent_id])
            if [s.name for s in chain] == [
                "processor.store_bars",
                "processor.apply",
                "collector.publish",
                "collector.batch",
            ]:
                return chain
        return None


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[OtlpReceiver, str]]:
    otlp = OtlpReceiver()
    app = web.Application()
    app.router.add_post("/v1/traces", otlp.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    yield otlp, f"http://127.0.0.1:{port}"
    await runner.cleanup()


def log_lines_with(log_dir: Path, service: str, needle: str) -> list[dict[str, object]]:
    out = []
    for path in sorted((log_dir / service).glob("app_*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if needle in line:
                out.append(json.loads(line))
    return out


async def test_one_batch_is_one_trace_from_collector_to_stored_bar(
    platform: Platform, receiver: tuple[OtlpReceiver, str], dump_logs: Callable[[], str]
) -> None:
    otlp, endpoint = receiver
    simulator = platform.simulator(tps=200)
    await simulator.wait_ready()
    platform.extra_env.update(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_TRACES_SAMPLER": "always_on",
            "OTEL_BSP_SCHEDULE_DELAY": "200",  # ms: export soon, for the test
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "DEBUG",
        }
    )
    processor = platform.processor()
    collector = platform.collector()
    await processor.wait_ready()
    await collector.wait_ready()
    chain: list[ReceivedSpan] = []

    async def traced() -> bool:
        chain[:] = otlp.complete_trace() or []
        return bool(chain)

    await wait_until(traced, 60, f"a complete trace ({len(otlp.spans)} spans received)\n{dump_logs()}")
    bars, apply, publish, batch = chain
    assert len({s.trace_id for s in chain}) == 1
    assert (batch.service, publish.service) == ("collector", "collector")
    assert (apply.service, bars.service) == ("processor", "processor")
    stored = [s for s in otlp.spans if s.trace_id == batch.trace_id and s.name == "processor.store_trades"]
    assert stored and stored[0].parent_id == publish.span_id
    log_dir = platform.tmp / "logs"
    found: dict[str, list[dict[str, object]]] = {}

    async def logged() -> bool:
        for service in ("collector", "processor"):
            found[service] = log_lines_with(log_dir, service, batch.trace_id)
        return all(found.values())

    await wait_until(logged, 20, f"trace {batch.trace_id} in both logs\n{dump_logs()}")
    assert any(r.get("span_id") == batch.span_id for r in found["collector"])
    assert all(r["trace_id"] == batch.trace_id for r in found["processor"])
    for daemon in (collector, processor, simulator):
        code, _ = daemon.stop()
        assert code == 0, dump_logs()
