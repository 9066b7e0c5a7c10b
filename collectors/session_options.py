"""How a collector session behaves: one typed, frozen object (built from settings in one place,
cryptostock/wiring.py), so that the session's constructor takes collaborators and this, not a list of
numbers."""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import ConfigError


@dataclass(frozen=True)
class SessionOptions:
    """A collector session's options. Times in seconds, sizes in trades.

    stale_timeout: a connection on which no frame arrived for this long is closed and reopened.
    backoff_initial / backoff_max: the first and the largest pause before reconnecting (doubled per
        failed attempt, jittered; reset once data flows).
    max_connection_age: when a connection is replaced by a successor (make before break); None: the
        venue's limit minus its margin (no replacement where the venue has no limit).
    gap_retry_initial / gap_retry_max: the pause between passes over the gaps still missing (doubled
        per failed pass; never shorter than a Retry-After the venue asked for).
    max_gap_attempts: failed passes on one gap before it is abandoned.
    max_repairs: gap repairs running at once.
    hold_max_trades / hold_max_s: how many trades, and for how long, a symbol's newer trades wait for a
        repair of its gap before they go on without it.
    publish_retry_max: the largest pause between attempts to hand trades to the bus.
    outbox_max_trades: trades waiting for the bus at most; beyond, they are shed (and repaired later).
    quiet_after: a connected symbol without a trade for this long is reported quiet.
    reader_grace_s: at stop, how long the readers get to finish before they are cancelled.
    stop_deadline_s: the one deadline for the whole stop (readers, repairs, the outbox's last
        deliveries); what still runs then is cancelled (the outbox keeps what it held for the spool).
        Below the daemon's own shutdown deadline (cryptostock/lifecycle.py, 8 s).
    """

    stale_timeout: float = 30.0
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    max_connection_age: float | None = None
    gap_retry_initial: float = 1.0
    gap_retry_max: float = 60.0
    max_gap_attempts: int = 20
    max_repairs: int = 4
    hold_max_trades: int = 100_000
    hold_max_s: float = 10.0
    publish_retry_max: float = 5.0
    outbox_max_trades: int = 200_000
    quiet_after: float = 10.0
    reader_grace_s: float = 2.0
    stop_deadline_s: float = 6.0

    def __post_init__(self) -> None:
        positive = {
            name: value
            for name, value in vars(self).items()
            if value is not None and name != "reader_grace_s" and value <= 0
        }
        if positive:
            raise ConfigError(f"session options must be positive: {positive}")
        if self.reader_grace_s < 0:
            raise ConfigError(f"reader_grace_s must not be negative: {self.reader_grace_s}")
        for low, high in (("backoff_initial", "backoff_max"), ("gap_retry_initial", "gap_retry_max")):
            if getattr(self, high) < getattr(self, low):
                raise ConfigError(f"{high} ({getattr(self, high):g} s) must be at least {low}")
