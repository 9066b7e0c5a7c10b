"""Opt-in distributed tracing on OpenTelemetry, configured by the standard `OTEL_*` variables.

Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) or
`OTEL_TRACES_EXPORTER` is set (`OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none` keep it off).
While off, `ENABLED` is False and every helper returns at once without touching OpenTelemetry: hot
paths test `tracing.ENABLED` (one module attribute) before doing anything for a trace.

    from monitoring.tracing import trace_operation, add_span_attributes, get_trace_id
    with trace_operation("backfill", attributes={"exchange": "binance"}):
        add_span_attributes(trades=120)
        log.info("trace {}", get_trace_id())

Sampling: `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` as the SDK reads them; unset, 10% of new
traces (`parentbased_traceidratio`, 0.1), and a span whose parent was sampled is always sampled, so a
trace is kept or dropped whole across processes. Export: OTLP over HTTP/protobuf to
`OTEL_EXPORTER_OTLP_ENDPOINT` (Jaeger, Tempo or an OpenTelemetry Collector: port 4318), in batches on
the SDK's background thread; `OTEL_TRACES_EXPORTER=console` prints spans instead. Service name:
`OTEL_SERVICE_NAME`, else the daemon's name.

Context crosses processes as W3C `traceparent` strings: `current_traceparent()` on the sending side,
`continue_trace(traceparent, name)` on the receiving side.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.sdk.trace.sampling import Sampler
    from opentelemetry.trace import Span, Tracer

P = ParamSpec("P")
T = TypeVar("T")

ENABLED = False
"""True once `configure_tracing` switched tracing on; hot paths read it before any tracing work."""

DEFAULT_SAMPLE_RATIO = 0.1
MAX_LINKS = 32  # a processor batch links at most this many other traces
TRACER_NAME = "cryptostock"
_NOOP: contextlib.nullcontext[None] = contextlib.nullcontext()
_provider: TracerProvider | None = None
_tracer: Tracer | None = None


def tracing_requested(env: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment asks for tracing (see the module docstring)."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    return bool(
        exporter
        or env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
        or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    )


def configure_tracing(
    service: str,
    *,
    exporter: SpanExporter | None = None,
    sampler: Sampler | None = None,
    env: Mapping[str, str] = os.environ,
) -> bool:
    """Switch tracing on for this process when the environment asks for it (or an `exporter` is given:
    tests pass the SDK's InMemorySpanExporter, exported synchronously). Returns whether it is on.
    Calling it again replaces the previous configuration (its spans are flushed first)."""
    global ENABLED, _provider, _tracer
    if exporter is None and not tracing_requested(env):
        shutdown_tracing()
        return False
    from opentelemetry import trace
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    shutdown_tracing()
    attributes = {} if env.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service}
    provider = TracerProvider(resource=Resource.create(attributes), sampler=sampler or _sampler(env))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        for chosen in _exporters(env):
            provider.add_span_processor(BatchSpanProcessor(chosen))
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(provider)  # once per process: libraries that ask the global one
    _provider, _tracer = provider, provider.get_tracer(TRACER_NAME)
    ENABLED = True
    return True


def shutdown_tracing() -> None:
    """Export what is pending and switch tracing off."""
    global ENABLED, _provider, _tracer
    ENABLED = False
    provider, _provider, _tracer = _provider, None, None
    if provider is not None:
        provider.shutdown()


def tracer_provider() -> TracerProvider | None:
    """The provider `configure_tracing` installed (None while off), e.g. for FastAPI's instrumentation."""
    return _provider


def _sampler(env: Mapping[str, str]) -> Sampler:
    from opentelemetry.sdk.trace import sampling

    name = env.get("OTEL_TRACES_SAMPLER", "").strip().lower()
    if not name:
        return sampling.ParentBased(sampling.TraceIdRatioBased(DEFAULT_SAMPLE_RATIO))
    arg = env.get("OTEL_TRACES_SAMPLER_ARG", "").strip()
    ratio = float(arg) if arg else 1.0
    samplers: dict[str, Callable[[], Sampler]] = {
        "always_on": lambda: sampling.ALWAYS_ON,
        "always_off": lambda: sampling.ALWAYS_OFF,
        "traceidratio": lambda: sampling.TraceIdRatioBased(ratio),
        "parentbased_always_on": lambda: sampling.ParentBased(sampling.ALWAYS_ON),
        "parentbased_always_off": lambda: sampling.ParentBased(sampling.ALWAYS_OFF),
        "parentbased_traceidratio": lambda: sampling.ParentBased(sampling.TraceIdRatioBased(ratio)),
    }
    if name not in samplers:
        from core.errors import ConfigError

        raise ConfigError(f"OTEL_TRACES_SAMPLER={name!r} is not one of {sorted(samplers)}")
    return samplers[name]()


def _exporters(env: Mapping[str, str]) -> list[SpanExporter]:
    names = [n.strip().lower() for n in env.get("OTEL_TRACES_EXPORTER", "otlp").split(",") if n.strip()]
    out: list[SpanExporter] = []
    for name in names or ["otlp"]:
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            out.append(OTLPSpanExporter())  # endpoint, headers, timeout: OTEL_EXPORTER_OTLP_* itself
        elif name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            out.append(ConsoleSpanExporter())
        elif name != "none":
            from core.errors import ConfigError

            raise ConfigError(f"OTEL_TRACES_EXPORTER={name!r}: use otlp, console or none")
    return out


# -- spans -------------------------------------------------------------------------------------------


def _clean(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """OpenTelemetry takes str, bool, int, float (or sequences of one of them); anything else as str."""
    return {
        k: v if isinstance(v, str | bool | int | float) else str(v)
        for k, v in attributes.items()
        if v is not None
    }


def trace_operation(
    name: str, attributes: Mapping[str, Any] | None = None, *, start_time_ns: int | None = None
) -> contextlib.AbstractContextManager[Span | None]:
    """A span around the block, child of the current one (`with trace_operation("x") as span:`);
    the span is None while tracing is off. An exception escaping the block is recorded on it.
    `start_time_ns`: when it began, if earlier than now (ns UTC, e.g. a websocket read's receipt)."""
    if not ENABLED or _tracer is None:
        return _NOOP
    return _tracer.start_as_current_span(name, attributes=_clean(attributes or {}), start_time=start_time_ns)


def continue_trace(
    traceparent: str,
    name: str,
    attributes: Mapping[str, Any] | None = None,
    links: Sequence[str] = (),
) -> contextlib.AbstractContextManager[Span | None]:
    """A span whose parent is the remote span `traceparent` (W3C; empty: a child of the current span,
    or a new trace), linked to the spans in `links` (other traceparents, at most MAX_LINKS)."""
    if not ENABLED or _tracer is None:
        return _NOOP
    from opentelemetry import trace

    context = _context_of(traceparent) if traceparent else None
    span_links = []
    for other in links[:MAX_LINKS]:
        span_context = trace.get_current_span(_context_of(other)).get_span_context()
        if span_context.is_valid:
            span_links.append(trace.Link(span_context))
    return _tracer.start_as_current_span(
        name, context=context, attributes=_clean(attributes or {}), links=span_links
    )


def continue_traces(
    traceparents: Sequence[str], name: str, attributes: Mapping[str, Any] | None = None
) -> contextlib.AbstractContextManager[Span | None]:
    """A span for work on a batch that came from several traces: child of the first, linked to the
    others (empty strings are skipped)."""
    if not ENABLED:
        return _NOOP
    distinct = list(dict.fromkeys(t for t in traceparents if t))
    if not distinct:
        return continue_trace("", name, attributes)
    return continue_trace(distinct[0], name, attributes, links=distinct[1:])


def _context_of(traceparent: str) -> Any:
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator().extract({"traceparent": traceparent})


def add_span_attributes(**attributes: Any) -> None:
    """Set attributes on the current span (nothing while tracing is off or no span records)."""
    if not ENABLED:
        return
    from opentelemetry import trace

    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes(_clean(attributes))


def trace_function(name: str | None = None) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Decorator: each call of a sync function runs in a span `name` (default: its qualified name)."""

    def decorate(fn: Callable[P, T]) -> Callable[P, T]:
        span_name = name or fn.__qualname__

        @functools.wraps(fn)
        def traced(*args: P.args, **kwargs: P.kwargs) -> T:
            if not ENABLED:
                return fn(*args, **kwargs)
            with trace_operation(span_name):
                return fn(*args, **kwargs)

        return traced

    return decorate


def trace_async_function(
    name: str | None = None,
) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Awaitable[T]]]:
    """Decorator: each await of an async function runs in a span `name` (default: its qualified name)."""

    def decorate(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        span_name = name or fn.__qualname__

        @functools.wraps(fn)
        async def traced(*args: P.args, **kwargs: P.kwargs) -> T:
            if not ENABLED:
                return await fn(*args, **kwargs)
            with trace_operation(span_name):
                return await fn(*args, **kwargs)

        return traced

    return decorate


# -- ids -----------------------------------------------------------------------------------------------


def _current_context() -> Any:
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    return context if context.is_valid else None


def get_trace_id() -> str | None:
    """The current trace id (32 hex digits), None while tracing is off or outside a span."""
    if not ENABLED:
        return None
    context = _current_context()
    return f"{context.trace_id:032x}" if context is not None else None


def get_span_id() -> str | None:
    """The current span id (16 hex digits), None while tracing is off or outside a span."""
    if not ENABLED:
        return None
    context = _current_context()
    return f"{context.span_id:016x}" if context is not None else None


def current_traceparent() -> str:
    """The current span as a W3C `traceparent` ("" while off, outside a span, or not sampled: an
    unsampled trace is not carried on, which keeps bus entries free of it)."""
    if not ENABLED:
        return ""
    context = _current_context()
    if context is None or not context.trace_flags.sampled:
        return ""
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-01"


def log_ids() -> dict[str, str]:
    """`trace_id` and `span_id` of the current span, for a log record ({} while off or outside one)."""
    if not ENABLED:
        return {}
    context = _current_context()
    if context is None:
        return {}
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}


__all__ = [
    "DEFAULT_SAMPLE_RATIO",
    "ENABLED",
    "add_span_attributes",
    "configure_tracing",
    "continue_trace",
    "continue_traces",
    "current_traceparent",
    "get_span_id",
    "get_trace_id",
    "log_ids",
    "shutdown_tracing",
    "trace_async_function",
    "trace_function",
    "trace_operation",
    "tracer_provider",
    "tracing_requested",
]
