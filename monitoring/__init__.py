"""monitoring: logging, metrics, the metrics/health server, circuit breaker and health checks.

The names below are the public API; see docs/monitoring.md.
"""

from monitoring.circuit_breaker import CircuitBreaker, CircuitState
from monitoring.health import CheckResult, Health, HealthReport
from monitoring.logger import (
    InterceptHandler,
    LoggingSetup,
    flush_logs,
    get_logger,
    log_context,
    log_performance,
    log_trade,
    setup_logging,
    shutdown_logging,
)
from monitoring.metrics import CIRCUIT_STATES, METRICS, PlatformMetrics
from monitoring.server import MetricsServer, set_build_info, start_metrics_server, track_time

__all__ = [
    "CIRCUIT_STATES",
    "METRICS",
    "CheckResult",
    "CircuitBreaker",
    "CircuitState",
    "Health",
    "HealthReport",
    "InterceptHandler",
    "LoggingSetup",
    "MetricsServer",
    "PlatformMetrics",
    "flush_logs",
    "get_logger",
    "log_context",
    "log_performance",
    "log_trade",
    "set_build_info",
    "setup_logging",
    "shutdown_logging",
    "start_metrics_server",
    "track_time",
]
