"""monitoring.tracing on the real OpenTelemetry SDK, spans caught by its in-memory exporter."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, TraceIdRatioBased

from core.errors import ConfigError
from monitoring import tracing
from monitoring.logger import LoggingSetup
from monitoring.tracing import (
    add_span_attributes,
    configure_tracing,
    continue_trace,
    continue_traces,
    current_traceparent,
    get_span_id,
    get_trace_id,
    shutdown_tracing,
    trace_async_function,
    trace_function,
    trace_operation,
    tracing_requested,
)
from tests.monitoring.conftest import current_file, read_json, read_lines


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    assert configure_tracing("test", exporter=exporter, sampler=ALWAYS_ON)
    yield exporter
    shutdown_tracing()


def by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {span.name: span for span in exporter.get_finished_spans()}


def test_off_by_default_and_every_helper_is_inert() -> None:
    assert not configure_tracing("test", env={})
    assert tracing.ENABLED is False
    with trace_operation("x", attributes={"a": 1}) as span:
        assert span is None
        add_span_attributes(b=2)
        assert get_trace_id() is None and get_span_id() is None and current_traceparent() == ""
    with continue_trace("00-" + "1" * 32 + "-" + "2" * 16 + "-01", "y") as span:
        assert span is None


@pytest.mark.parametrize(
    ("env", "wanted"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318"}, False),
        ({"OTEL_TRACES_SAMPLER": "always_on"}, False),
    ],
)
def test_switched_on_by_an_exporter_or_endpoint(env: dict[str, str], wanted: bool) -> None:
    assert tracing_requested(env) is wanted


def test_sampler_defaults_to_ten_percent_and_follows_otel_variables() -> None:
    default = tracing._sampler({})
    assert isinstance(default, ParentBased)
    assert "TraceIdRatioBased{0.1}" in default.get_description()
    ratio = tracing._sampler({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"})
    assert isinstance(ratio, TraceIdRatioBased) and ratio.rate == 0.25
    assert tracing._sampler({"OTEL_TRACES_SAMPLER": "always_on"}) is ALWAYS_ON
    with pytest.raises(ConfigError):
        tracing._sampler({"OTEL_TRACES_SAMPLER": "sometimes"})


def test_service_name_from_otel_service_name_else_the_daemon() -> None:
    assert configure_tracing("collector", env={"OTEL_TRACES_EXPORTER": "none"}) is False
    exporter = InMemorySpanExporter()
    configure_tracing("collector", exporter=exporter, sampler=ALWAYS_ON, env={})
    with trace_operation("a"):
        pass
    shutdown_tracing()
    assert exporter.get_finished_spans()[0].resource.attributes["service.name"] == "collector"


def test_operations_nest_and_carry_attributes(spans: InMemorySpanExporter) -> None:
    with trace_operation("outer", attributes={"exchange": "binance", "ignored": None}) as outer:
        assert outer is not None
        trace_id = get_trace_id()
        with trace_operation("inner"):
            add_span_attributes(trades=3, symbol="BTC-USDT", obj=ConfigError("x"))
            assert get_trace_id() == trace_id
            assert get_span_id() != format(outer.get_span_context().span_id, "016x")
    found = by_name(spans)
    assert found["inner"].parent is not None
    assert found["inner"].parent.span_id == found["outer"].context.span_id
    assert found["inner"].attributes == {"trades": 3, "symbol": "BTC-USDT", "obj": "x"}
    assert found["outer"].attributes == {"exchange": "binance"}
    assert trace_id == format(found["outer"].context.trace_id, "032x")


def test_exceptions_are_recorded(spans: InMemorySpanExporter) -> None:
    with pytest.raises(ValueError), trace_operation("failing"):
        raise ValueError("boom")
    span = by_name(spans)["failing"]
    assert not span.status.is_ok
    assert span.events[0].name == "exception"


async def test_function_decorators(spans: InMemorySpanExporter) -> None:
    @trace_function("sync-op")
    def double(x: int) -> int:
        return 2 * x

    @trace_async_function()
    async def wait() -> str:
        await asyncio.sleep(0)
        return get_trace_id() or ""

    assert double(2) == 4
    trace_id = await wait()
    found = by_name(spans)
    assert "sync-op" in found
    name = next(n for n in found if n.endswith("wait"))
    assert format(found[name].context.trace_id, "032x") == trace_id


def test_traceparent_continues_a_trace_and_links_others(spans: InMemorySpanExporter) -> None:
    with trace_operation("sender"):
        parent = current_traceparent()
    with trace_operation("other"):
        other = current_traceparent()
    assert parent.startswith("00-") and parent.endswith("-01")
    with continue_traces(["", parent, other, parent], "receiver"):
        pass
    found = by_name(spans)
    receiver, sender = found["receiver"], found["sender"]
    assert receiver.context.trace_id == sender.context.trace_id
    assert receiver.parent is not None and receiver.parent.span_id == sender.context.span_id
    assert [link.context.span_id for link in receiver.links] == [found["other"].context.span_id]


def test_unsampled_traces_are_not_carried_on() -> None:
    exporter = InMemorySpanExporter()
    configure_tracing("test", exporter=exporter, sampler=ParentBased(TraceIdRatioBased(0.0)))
    try:
        with trace_operation("dropped"):
            assert current_traceparent() == ""
    finally:
        shutdown_tracing()
    assert exporter.get_finished_spans() == ()


@pytest.mark.parametrize("json_format", [True, False])
def test_log_records_inside_a_span_carry_its_ids(
    spans: InMemorySpanExporter, configure_logging: Callable[..., LoggingSetup], json_format: bool
) -> None:
    from loguru import logger

    setup = configure_logging(json=json_format)
    logger.info("outside")
    with trace_operation("op"):
        trace_id, span_id = get_trace_id(), get_span_id()
        logger.info("inside")
    path = current_file(setup.app_file)
    if json_format:
        records = {r["message"]: r for r in read_json(path)}
        assert records["inside"]["trace_id"] == trace_id and records["inside"]["span_id"] == span_id
        assert "trace_id" not in records["outside"]
    else:
        inside, outside = (
            next(line for line in read_lines(path) if m in line) for m in ("| inside", "| outside")
        )
        assert f"trace_id={trace_id}" in inside and f"span_id={span_id}" in inside
        assert "trace_id" not in outside
