"""Typed settings of the API application and its server (the daemons build them from flags and the
environment: `cryptostock.settings.ApiOptions`)."""

from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator


def split_list(value: object) -> object:
    """'a, b' -> ['a', 'b'] (what an environment variable or a flag holds); lists pass through."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _proxy_networks(value: object) -> object:
    """Each trusted proxy must be an IP address or network: anything else would be trusted by name."""
    items = split_list(value)
    if isinstance(items, list):
        for item in items:
            try:
                ipaddress.ip_network(str(item), strict=False)
            except ValueError:
                raise ValueError(
                    f"{item!r} is not an IP address or network (e.g. 127.0.0.1, 10.0.0.0/8, ::1)"
                ) from None
    return items


# The types of the settings a daemon passes on (cryptostock.settings.ApiOptions): constraints in one place.
Seconds = Annotated[float, Field(gt=0, le=3600)]
PerSecond = Annotated[float, Field(ge=0)]
AtLeastOne = Annotated[int, Field(ge=1)]
Bytes = Annotated[int, Field(ge=0)]
Origins = Annotated[list[str], BeforeValidator(split_list)]
Proxies = Annotated[list[str], BeforeValidator(_proxy_networks)]


class ApiSettings(BaseModel):
    """What the API allows and how it protects itself.

    Rate limiting is a token bucket per client IP (per /64 for IPv6): `rate_limit_per_second` tokens are
    added per second up to `rate_limit_burst`; 0 per second disables it. The client IP is the peer's
    address, or, for a peer listed in `trusted_proxies`, the last untrusted address of its
    X-Forwarded-For. Limits bound the rows one request may ask for. Times are seconds, sizes bytes.

    The server's limits: a request's headers must arrive within `header_timeout` of the connection
    opening (or of their first byte on a kept-alive connection), its body within `body_timeout` of the
    headers, and a response must not wait longer than `send_timeout` for the client to read. At most
    `max_connections` connections are open (fewer when the process's file-descriptor limit is low); at
    the limit the one idle or still sending its headers the longest is closed. At most
    `max_concurrent_requests` requests are served at once (probes and metrics not counted; beyond, 503)
    and `max_websockets` bar streams are open (beyond, close code 1013). Bodies above `max_body_bytes`
    get 413, headers above `max_header_bytes` 400.

    The store and cache belong to the caller: they are closed on application shutdown only when
    `close_dependencies` is set.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    default_exchange: str = "binance"
    default_timeframe: str = "1m"
    default_bars_limit: int = Field(default=500, ge=1)
    max_bars_limit: int = Field(default=5000, ge=1)
    default_trades_limit: int = Field(default=100, ge=1)
    max_trades_limit: int = Field(default=1000, ge=1)
    rate_limit_per_second: PerSecond = 20.0
    rate_limit_burst: AtLeastOne = 40
    rate_limit_max_clients: int = Field(default=10_000, ge=1)
    cors_origins: Origins = Field(default_factory=list)
    trusted_proxies: Proxies = Field(default_factory=list)
    header_timeout: Seconds = 10.0
    body_timeout: Seconds = 30.0
    send_timeout: Seconds = 30.0
    keep_alive_timeout: Seconds = 5.0
    max_connections: AtLeastOne = 1000
    max_concurrent_requests: AtLeastOne = 100
    max_websockets: Bytes = 500  # a count; 0 refuses every bar stream
    max_body_bytes: Bytes = 65_536
    max_header_bytes: int = Field(default=16_384, ge=1024)
    readiness_timeout: float = Field(default=2.0, gt=0)
    symbols_ttl: float = Field(default=30.0, ge=0)
    close_dependencies: bool = False
    title: str = "cryptostock market-data API"

    @model_validator(mode="after")
    def _defaults_within_limits(self) -> ApiSettings:
        if self.default_bars_limit > self.max_bars_limit:
            raise ValueError("default_bars_limit must not exceed max_bars_limit")
        if self.default_trades_limit > self.max_trades_limit:
            raise ValueError("default_trades_limit must not exceed max_trades_limit")
        return self
