"""Structured events: log records with an `event_type` and their fields, routine ones sampled.

    from monitoring.events import emit, security_event
    emit("api_response", "GET /api/v1/bars 200", method="GET", path="/api/v1/bars", status=200, ...)
    security_event("security_rate_limited", "rate limited 10.0.0.7", client="10.0.0.7", path="/api/v1/bars")

Routine high-volume events (`ROUTINE_EVENTS`) below WARNING are written at `LOG_SAMPLE_RATE` (0..1,
default 1: all); the decision is made before a record exists, so a sampled-out event costs a hash and
a counter increment (`log_events_sampled_out_total{event_type}`). With a `request_id`, the decision is a
hash of it, so a request and its response are kept or dropped together. Warnings, errors and security
events are never sampled. Security events (`event_type` starting with `security_`, logged at WARNING)
also go to their own daily file, kept longer (see monitoring.logger).
"""

from __future__ import annotations

import random
import zlib
from typing import Any

from loguru import logger
from prometheus_client import Counter

from monitoring.metrics import METRICS, PlatformMetrics

SECURITY_PREFIX = "security_"
ROUTINE_EVENTS = frozenset({"api_request", "api_response"})
"""Event types sampled at LOG_SAMPLE_RATE (only below WARNING)."""
_WARNING_NO = 30
_LEVEL_NO = {"TRACE": 5, "DEBUG": 10, "INFO": 20, "SUCCESS": 25, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}

_rate = 1.0
_min_level_no = 0  # the lowest level any sink writes (setup_logging sets it)
_threshold = 1 << 32  # crc32 values below it are kept
_metrics: PlatformMetrics = METRICS
_sampled_out: dict[str, Counter] = {}


def set_sample_rate(rate: float, metrics: PlatformMetrics = METRICS) -> None:
    """The share (0..1) of routine events written; sampled-out ones are counted on `metrics`."""
    global _rate, _threshold, _metrics
    if not 0.0 <= rate <= 1.0:
        from core.errors import ConfigError

        raise ConfigError(f"log sample rate {rate} is not between 0 and 1")
    _rate, _threshold = rate, int(rate * (1 << 32))
    if metrics is not _metrics:
        _metrics = metrics
        _sampled_out.clear()


def sample_rate() -> float:
    return _rate


def set_min_level(level_no: int) -> None:
    """The lowest level written anywhere; events below it are dropped before a record is made."""
    global _min_level_no
    _min_level_no = level_no


def enabled_for(level: str) -> bool:
    """Whether an event at `level` would be written at all (cheaper than building one)."""
    return _LEVEL_NO.get(level, _WARNING_NO) >= _min_level_no


def keep(event_type: str, key: str | None = None, level: str = "INFO") -> bool:
    """Whether to write this event; counts it as sampled out when not. Only routine events below
    WARNING are ever dropped; `key` (a request id) makes the decision the same for every event of it."""
    if _rate >= 1.0 or event_type not in ROUTINE_EVENTS or _LEVEL_NO.get(level, _WARNING_NO) >= _WARNING_NO:
        return True
    kept = (zlib.crc32(key.encode()) < _threshold) if key else random.random() < _rate
    if not kept:
        counter = _sampled_out.get(event_type)
        if counter is None:
            counter = _sampled_out[event_type] = _metrics.log_events_sampled_out.labels(event_type)
        counter.inc()
    return kept


def emit(
    event_type: str, message: str, *, level: str = "INFO", component: str = "events", **fields: Any
) -> bool:
    """Log one structured event (unless sampled out: False). `message` is written as given (no
    formatting), `fields` become the record's fields next to `event_type`."""
    if _LEVEL_NO.get(level, _WARNING_NO) < _min_level_no or not keep(
        event_type, fields.get("request_id"), level
    ):
        return False
    logger.bind(component=component, event_type=event_type, **fields).opt(depth=1).log(level, message)
    return True


def security_event(event_type: str, message: str, *, component: str = "security", **fields: Any) -> None:
    """A security event: WARNING, never sampled, also in the security file. `event_type` must start
    with `security_`."""
    if not event_type.startswith(SECURITY_PREFIX):
        raise ValueError(f"security event types start with {SECURITY_PREFIX!r}: {event_type!r}")
    logger.bind(component=component, event_type=event_type, **fields).opt(depth=1).warning(message)


__all__ = [
    "ROUTINE_EVENTS",
    "SECURITY_PREFIX",
    "emit",
    "keep",
    "sample_rate",
    "security_event",
    "set_sample_rate",
]
