"""Typed settings of the API application (the daemon builds them from flags and the environment)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ApiSettings(BaseModel):
    """What the API allows and how it protects itself.

    Rate limiting is a token bucket per client IP: `rate_limit_per_second` tokens are added per second up
    to `rate_limit_burst`; 0 per second disables it. Limits bound the rows one request may ask for.
    Times are seconds. The store and cache belong to the caller: they are closed on application shutdown
    only when `close_dependencies` is set.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    default_exchange: str = "binance"
    default_timeframe: str = "1m"
    default_bars_limit: int = Field(default=500, ge=1)
    max_bars_limit: int = Field(default=5000, ge=1)
    default_trades_limit: int = Field(default=100, ge=1)
    max_trades_limit: int = Field(default=1000, ge=1)
    rate_limit_per_second: float = Field(default=20.0, ge=0)
    rate_limit_burst: int = Field(default=40, ge=1)
    rate_limit_max_clients: int = Field(default=10_000, ge=1)
    cors_origins: list[str] = Field(default_factory=list)
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
