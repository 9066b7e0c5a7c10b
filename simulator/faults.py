"""Fault injection for the simulated exchange: what is pending, and the request that sets it.

- drop: close every websocket at once, without a close frame (a network failure as the client sees it).
- stall: keep every websocket open and answering pings, but send no data for N seconds.
- malformed: send N broken frames of the venue's kinds on every websocket (see malformed.py).
- skip: the next N trade ids (of one symbol, or of each symbol) are recorded in history and served over
  REST but never sent on any websocket: the way a message goes missing on the real exchange.
- rate_limit: the next N REST calls answer HTTP 429 with Retry-After.
- outage: drop every websocket and refuse new ones (HTTP 503 on the upgrade) for N seconds while the market
  trades on and REST keeps serving: a reconnecting client misses whatever REST no longer reaches.
- tps: change a paced synthetic market's rate from now on (an overload drill: several times the rate the
  platform sustains, then back).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class FaultRequest(BaseModel):
    """Faults to inject now (POST /admin/faults) or at start (settings). Unset fields inject nothing."""

    model_config = ConfigDict(extra="forbid")

    drop: bool = False
    stall: float | None = Field(default=None, ge=0, description="seconds without data")
    malformed: int | None = Field(default=None, ge=0, description="broken frames per connection")
    skip: int | None = Field(default=None, ge=0, description="trade ids withheld from websockets")
    skip_symbol: str | None = Field(default=None, description="symbol for skip; default every symbol")
    rate_limit: int | None = Field(default=None, ge=0, description="REST calls answered 429")
    retry_after: int = Field(default=1, ge=0, description="Retry-After seconds of those 429s")
    outage: float | None = Field(default=None, ge=0, description="seconds without websockets")
    tps: float | None = Field(default=None, gt=0, description="new trades per second of a synthetic market")


class FaultState:
    """Faults pending right now. Times are event-loop seconds (`loop.time()`)."""

    def __init__(self) -> None:
        self.stall_until = 0.0
        self.outage_until = 0.0
        self.skip_pending: dict[str, int] = {}
        self.rate_limited = 0
        self.retry_after = 1
        self.trades_skipped = 0
        self.rate_limited_answered = 0

    def stalled_for(self, now: float) -> float:
        return max(0.0, self.stall_until - now)

    def outage_for(self, now: float) -> float:
        return max(0.0, self.outage_until - now)

    def add_skip(self, symbols: list[str], count: int) -> None:
        for symbol in symbols:
            self.skip_pending[symbol] = self.skip_pending.get(symbol, 0) + count

    def take_skip(self, symbol: str) -> bool:
        """True if this trade of `symbol` is to be withheld from websockets."""
        left = self.skip_pending.get(symbol, 0)
        if left <= 0:
            return False
        if left == 1:
            del self.skip_pending[symbol]
        else:
            self.skip_pending[symbol] = left - 1
        self.trades_skipped += 1
        return True

    def take_rate_limit(self) -> int | None:
        """Retry-After seconds if this REST call is to be refused with 429, else None."""
        if self.rate_limited <= 0:
            return None
        self.rate_limited -= 1
        self.rate_limited_answered += 1
        return self.retry_after

    def snapshot(self, now: float) -> dict[str, object]:
        return {
            "stall_remaining_s": round(self.stalled_for(now), 3),
            "outage_remaining_s": round(self.outage_for(now), 3),
            "skip_pending": dict(self.skip_pending),
            "rate_limit_pending": self.rate_limited,
            "trades_skipped": self.trades_skipped,
            "rate_limited_answered": self.rate_limited_answered,
        }
