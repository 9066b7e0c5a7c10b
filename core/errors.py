"""The platform's one exception tree. Library errors are translated into these at I/O edges."""

from __future__ import annotations


class PlatformError(Exception):
    """Base of every error the platform raises on purpose."""


class ConfigError(PlatformError):
    """Settings or arguments that cannot work (unknown exchange, bad timeframe, port in use...)."""


class ParseError(PlatformError):
    """An exchange frame or REST body that does not match the protocol.

    `error_type` is a short bounded label for `collector_errors_total{error_type}`;
    `raw` is the offending input, kept for a truncated log copy.
    """

    def __init__(self, message: str, *, error_type: str = "malformed", raw: bytes | str = b"") -> None:
        super().__init__(message)
        self.error_type = error_type
        self.raw = raw


class ValidationError(PlatformError):
    """A value that parses but cannot be a real trade (NaN, negative size, unknown symbol...)."""


class ExchangeError(PlatformError):
    """The exchange (or simulator) answered with an error, or the transport failed."""


class RateLimitedError(ExchangeError):
    """HTTP 429/418 from an exchange; `retry_after` in seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StorageError(PlatformError):
    """The database failed or refused a write or read."""


class RejectedData(PlatformError):
    """The store refused the data itself (a value out of its range, a violated constraint): unlike an
    outage, retrying the same data cannot help. Not counted by the circuit breaker."""


class BusError(PlatformError):
    """The message bus (Redis Streams or in-process) failed."""


class CircuitOpenError(PlatformError):
    """A call was refused because its circuit breaker is open."""

    def __init__(self, component: str, retry_in: float) -> None:
        super().__init__(f"circuit '{component}' is open; retry in {retry_in:.1f}s")
        self.component = component
        self.retry_in = retry_in
