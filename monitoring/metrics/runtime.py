"""Families of every process: circuit breakers, log sampling, build info.

Each family is created once per `PlatformMetrics` (monitoring.metrics), on its registry.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Info

CIRCUIT_STATES = {"closed": 0, "open": 1, "half_open": 2}
"""The value circuit_breaker_state holds for each state."""


class RuntimeMetrics:
    """Part of `PlatformMetrics`: creates these families on registry `r`."""

    def __init__(self, r: CollectorRegistry) -> None:
        # Circuit breaker
        self.circuit_breaker_state = Gauge(
            "circuit_breaker_state", "Circuit state: 0 closed, 1 open, 2 half-open", ["component"], registry=r
        )
        self.circuit_breaker_transitions = Counter(
            "circuit_breaker_transitions",
            "Circuit state transitions",
            ["component", "from_state", "to_state"],
            registry=r,
        )
        self.circuit_breaker_failures = Counter(
            "circuit_breaker_failures", "Failures counted by a circuit breaker", ["component"], registry=r
        )
        # Logging
        self.log_events_sampled_out = Counter(
            "log_events_sampled_out",
            "Routine log events not written because of sampling (LOG_SAMPLE_RATE)",
            ["event_type"],
            registry=r,
        )
        # Build
        self.build_info = Info("build", "Platform build and runtime versions", registry=r)
