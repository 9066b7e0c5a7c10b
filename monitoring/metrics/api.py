"""The API's families: HTTP requests by route template, websocket clients, the rate limiter and
the server's load shedding.

Each family is created once per `PlatformMetrics` (monitoring.metrics), on its registry.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from monitoring.metrics.histogram import LATENCY_BUCKETS, SymbolFreeHistogram


class ApiMetrics:
    """Part of `PlatformMetrics`: creates these families on registry `r`."""

    def __init__(self, r: CollectorRegistry) -> None:
        self.http_requests = Counter(
            "http_requests",
            "HTTP requests by route template and status",
            ["method", "endpoint", "status"],
            registry=r,
        )
        self.http_request_duration = SymbolFreeHistogram(
            "http_request_duration_seconds",
            "HTTP request duration by route template",
            ["method", "endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.websocket_connections = Gauge(
            "websocket_connections", "Open API websocket connections", registry=r
        )
        self.websocket_messages_sent = Counter(
            "websocket_messages_sent", "Messages sent to API websocket clients", registry=r
        )
        self.rate_limit_exceeded = Counter(
            "rate_limit_exceeded", "Requests refused by the API rate limiter", ["endpoint"], registry=r
        )
        self.http_shed = Counter(
            "http_shed",
            "API connections closed and requests refused by the server's limits "
            "(header/body/send timeout, connection limit, body too large, overloaded, websocket limit)",
            ["reason"],
            registry=r,
        )
