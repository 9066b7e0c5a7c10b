"""Jittered exponential backoff for reconnects and retries (pure; randomness injected)."""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """Delays initial, 2x, 4x ... capped at `maximum` seconds, each scaled by a jitter factor.

    The factor is `1 - jitter * rng()` with rng() in [0, 1): "equal jitter" spreads reconnect storms
    while keeping the delay at least (1 - jitter) of the nominal one. `reset()` once data flows again.
    """

    def __init__(
        self,
        initial: float,
        maximum: float,
        *,
        jitter: float = 0.5,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if initial <= 0 or maximum < initial:
            raise ValueError("backoff needs 0 < initial <= maximum")
        if not 0.0 <= jitter <= 1.0:
            raise ValueError("jitter must be within [0, 1]")
        self.initial = initial
        self.maximum = maximum
        self.jitter = jitter
        self._rng = rng
        self._attempt = 0

    @property
    def attempt(self) -> int:
        """Delays handed out since the last reset."""
        return self._attempt

    def next_delay(self) -> float:
        nominal = min(self.initial * (2.0**self._attempt), self.maximum)
        self._attempt = min(self._attempt + 1, 64)
        return nominal * (1.0 - self.jitter * self._rng())

    def reset(self) -> None:
        self._attempt = 0
