"""An asyncio circuit breaker: closed -> open after `failure_threshold` consecutive failures, open ->
half-open once `reset_timeout` seconds have passed, half-open -> closed on a success (or back to open on
a failure). Only one trial call runs while half-open. Transitions update the circuit-breaker metrics and
are logged. It wraps database, Redis and exchange REST calls.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import ParamSpec, TypeVar

from loguru import logger

from core.errors import CircuitOpenError
from monitoring.metrics import CIRCUIT_STATES, METRICS, PlatformMetrics

P = ParamSpec("P")
T = TypeVar("T")


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Guards calls to one dependency (`component` labels its metrics: database, redis, binance_rest...).

    `failure_exceptions` are the errors that count as the dependency failing; anything else passes
    through without touching the state (a bad query is not an outage). Time comes from `monotonic`,
    injectable for tests.
    """

    def __init__(
        self,
        component: str,
        *,
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        failure_exceptions: tuple[type[BaseException], ...] = (Exception,),
        metrics: PlatformMetrics = METRICS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if reset_timeout <= 0:
            raise ValueError("reset_timeout must be positive")
        self.component = component
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self.failure_exceptions = failure_exceptions
        self._metrics = metrics
        self._monotonic = monotonic
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_running = False
        self._log = logger.bind(component="circuit_breaker", circuit=component)
        metrics.circuit_breaker_state.labels(component).set(CIRCUIT_STATES["closed"])

    @property
    def state(self) -> CircuitState:
        """Current state; an open circuit whose timeout has passed reports half-open."""
        if self._state is CircuitState.OPEN and self._monotonic() - self._opened_at >= self.reset_timeout:
            self._transition(CircuitState.HALF_OPEN)
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    async def call(self, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `fn` through the breaker; CircuitOpenError when refused."""
        trial = self._before_call()
        try:
            result = await fn(*args, **kwargs)
        except asyncio.CancelledError:
            if trial:
                self._trial_running = False
            raise
        except self.failure_exceptions:
            self._after_call(trial, ok=False)
            raise
        except BaseException:
            if trial:
                self._trial_running = False
            raise
        self._after_call(trial, ok=True)
        return result

    def _before_call(self) -> bool:
        """Admit or refuse a call; True when the admitted call is the half-open trial."""
        state = self.state
        if state is CircuitState.OPEN:
            retry_in = self.reset_timeout - (self._monotonic() - self._opened_at)
            raise CircuitOpenError(self.component, max(retry_in, 0.0))
        if state is CircuitState.HALF_OPEN:
            if self._trial_running:
                raise CircuitOpenError(self.component, 0.0)
            self._trial_running = True
            return True
        return False

    def _after_call(self, trial: bool, *, ok: bool) -> None:
        if self._state is CircuitState.HALF_OPEN and not trial:
            # Admitted before the circuit opened: a stale outcome. Only the trial decides half-open,
            # and it must keep its slot (a second trial would run concurrently).
            if not ok:
                self._metrics.circuit_breaker_failures.labels(self.component).inc()
            return
        if ok:
            self.record_success()
        else:
            self.record_failure()

    def record_success(self) -> None:
        self._trial_running = False
        self._failures = 0
        if self._state is not CircuitState.CLOSED:
            self._transition(CircuitState.CLOSED)

    def record_failure(self) -> None:
        self._trial_running = False
        self._failures += 1
        self._metrics.circuit_breaker_failures.labels(self.component).inc()
        if self._state is CircuitState.HALF_OPEN or (
            self._state is CircuitState.CLOSED and self._failures >= self.failure_threshold
        ):
            self._opened_at = self._monotonic()
            self._transition(CircuitState.OPEN)

    def _transition(self, new: CircuitState) -> None:
        old = self._state
        if old is new:
            return
        self._state = new
        self._metrics.circuit_breaker_state.labels(self.component).set(CIRCUIT_STATES[new.value])
        self._metrics.circuit_breaker_transitions.labels(self.component, old.value, new.value).inc()
        log = self._log.warning if new is CircuitState.OPEN else self._log.info
        log(
            "circuit {} {} -> {} (consecutive failures: {})",
            self.component,
            old.value,
            new.value,
            self._failures,
            from_state=old.value,
            to_state=new.value,
        )
