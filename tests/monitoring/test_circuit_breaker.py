"""Every circuit-breaker transition, driven by an injected monotonic clock, and its metrics."""

from __future__ import annotations

import asyncio

import pytest

from core.errors import CircuitOpenError
from monitoring.circuit_breaker import CircuitBreaker, CircuitState
from monitoring.metrics import PlatformMetrics


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


class Dependency:
    """An async dependency whose next outcome the test chooses; counts the calls that reached it."""

    def __init__(self) -> None:
        self.calls = 0
        self.fail_with: BaseException | None = None

    async def __call__(self) -> str:
        self.calls += 1
        if self.fail_with is not None:
            raise self.fail_with
        return "ok"


def state_gauge(metrics: PlatformMetrics, component: str = "db") -> float | None:
    return metrics.registry.get_sample_value("circuit_breaker_state", {"component": component})


def transitions(metrics: PlatformMetrics, old: str, new: str) -> float:
    value = metrics.registry.get_sample_value(
        "circuit_breaker_transitions_total", {"component": "db", "from_state": old, "to_state": new}
    )
    return value or 0.0


def failures(metrics: PlatformMetrics) -> float:
    return metrics.registry.get_sample_value("circuit_breaker_failures_total", {"component": "db"}) or 0.0


@pytest.fixture
def clock() -> FakeMonotonic:
    return FakeMonotonic()


@pytest.fixture
def breaker(metrics: PlatformMetrics, clock: FakeMonotonic) -> CircuitBreaker:
    return CircuitBreaker(
        "db",
        failure_threshold=3,
        reset_timeout=30.0,
        failure_exceptions=(ConnectionError, TimeoutError),
        metrics=metrics,
        monotonic=clock,
    )


async def fail_times(breaker: CircuitBreaker, dep: Dependency, n: int) -> None:
    dep.fail_with = ConnectionError("down")
    for _ in range(n):
        with pytest.raises(ConnectionError):
            await breaker.call(dep)
    dep.fail_with = None


async def open_circuit(breaker: CircuitBreaker, dep: Dependency) -> None:
    await fail_times(breaker, dep, breaker.failure_threshold)
    assert breaker.state is CircuitState.OPEN


async def test_closed_until_threshold_then_open(breaker: CircuitBreaker, metrics: PlatformMetrics) -> None:
    dep = Dependency()
    assert state_gauge(metrics) == 0
    await fail_times(breaker, dep, 2)
    assert breaker.state is CircuitState.CLOSED and breaker.consecutive_failures == 2
    assert state_gauge(metrics) == 0 and failures(metrics) == 2
    await fail_times(breaker, dep, 1)
    assert breaker.state is CircuitState.OPEN
    assert state_gauge(metrics) == 1
    assert transitions(metrics, "closed", "open") == 1
    assert failures(metrics) == 3


async def test_success_resets_the_consecutive_count(breaker: CircuitBreaker) -> None:
    dep = Dependency()
    await fail_times(breaker, dep, 2)
    assert await breaker.call(dep) == "ok"
    await fail_times(breaker, dep, 2)
    assert breaker.state is CircuitState.CLOSED


async def test_open_refuses_without_calling(breaker: CircuitBreaker, clock: FakeMonotonic) -> None:
    dep = Dependency()
    await open_circuit(breaker, dep)
    clock.now += 10
    with pytest.raises(CircuitOpenError) as refused:
        await breaker.call(dep)
    assert dep.calls == 3
    assert refused.value.component == "db"
    assert refused.value.retry_in == pytest.approx(20.0)


async def test_open_to_half_open_after_reset_timeout(
    breaker: CircuitBreaker, clock: FakeMonotonic, metrics: PlatformMetrics
) -> None:
    await open_circuit(breaker, Dependency())
    clock.now += 29.999
    assert breaker.state is CircuitState.OPEN
    clock.now += 0.001
    assert breaker.state is CircuitState.HALF_OPEN
    assert state_gauge(metrics) == 2
    assert transitions(metrics, "open", "half_open") == 1


async def test_half_open_success_closes(
    breaker: CircuitBreaker, clock: FakeMonotonic, metrics: PlatformMetrics
) -> None:
    dep = Dependency()
    await open_circuit(breaker, dep)
    clock.now += 30
    assert await breaker.call(dep) == "ok"
    assert breaker.state is CircuitState.CLOSED and breaker.consecutive_failures == 0
    assert state_gauge(metrics) == 0
    assert transitions(metrics, "half_open", "closed") == 1


async def test_half_open_failure_reopens_for_a_full_timeout(
    breaker: CircuitBreaker, clock: FakeMonotonic, metrics: PlatformMetrics
) -> None:
    dep = Dependency()
    await open_circuit(breaker, dep)
    clock.now += 30
    await fail_times(breaker, dep, 1)
    assert breaker.state is CircuitState.OPEN
    assert state_gauge(metrics) == 1
    assert transitions(metrics, "half_open", "open") == 1
    assert transitions(metrics, "closed", "open") == 1
    clock.now += 29
    with pytest.raises(CircuitOpenError):
        await breaker.call(dep)
    clock.now += 1
    assert breaker.state is CircuitState.HALF_OPEN
    assert transitions(metrics, "open", "half_open") == 2


class Gate:
    """A dependency call that waits until released, then succeeds or fails."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.fail = False

    async def __call__(self) -> str:
        self.entered.set()
        await self.release.wait()
        if self.fail:
            raise ConnectionError("still down")
        return "ok"


async def test_only_one_trial_call_in_half_open(breaker: CircuitBreaker, clock: FakeMonotonic) -> None:
    dep = Dependency()
    await open_circuit(breaker, dep)
    clock.now += 30
    trial = Gate()
    async with asyncio.TaskGroup() as tg:
        running = tg.create_task(breaker.call(trial))
        await trial.entered.wait()
        with pytest.raises(CircuitOpenError) as refused:
            await breaker.call(dep)
        assert refused.value.retry_in == 0.0
        assert dep.calls == 3  # the second caller never reached the dependency
        trial.release.set()
    assert running.result() == "ok"
    assert breaker.state is CircuitState.CLOSED


async def test_stale_call_finishing_in_half_open_does_not_steal_the_trial(
    breaker: CircuitBreaker, clock: FakeMonotonic, metrics: PlatformMetrics
) -> None:
    dep = Dependency()
    stale, trial = Gate(), Gate()
    async with asyncio.TaskGroup() as tg:
        old = tg.create_task(breaker.call(stale))  # admitted while closed
        await stale.entered.wait()
        await open_circuit(breaker, dep)
        clock.now += 30
        probe = tg.create_task(breaker.call(trial))
        await trial.entered.wait()
        stale.release.set()
        assert await old == "ok"  # a success from before the outage does not close the circuit ...
        assert breaker.state is CircuitState.HALF_OPEN
        with pytest.raises(CircuitOpenError):  # ... nor frees the trial slot
            await breaker.call(dep)
        trial.release.set()
    assert probe.result() == "ok"
    assert breaker.state is CircuitState.CLOSED
    assert transitions(metrics, "half_open", "closed") == 1


async def test_non_failure_exceptions_do_not_count(
    breaker: CircuitBreaker, clock: FakeMonotonic, metrics: PlatformMetrics
) -> None:
    dep = Dependency()
    dep.fail_with = ValueError("bad query")
    for _ in range(10):
        with pytest.raises(ValueError):
            await breaker.call(dep)
    assert breaker.state is CircuitState.CLOSED and breaker.consecutive_failures == 0
    assert failures(metrics) == 0
    dep.fail_with = None
    await open_circuit(breaker, dep)
    clock.now += 30
    dep.fail_with = ValueError("bad query")
    with pytest.raises(ValueError):  # a non-failure trial neither closes nor reopens, and frees the slot
        await breaker.call(dep)
    assert breaker.state is CircuitState.HALF_OPEN
    dep.fail_with = None
    assert await breaker.call(dep) == "ok"
    assert breaker.state is CircuitState.CLOSED


async def test_cancelled_trial_frees_the_slot(breaker: CircuitBreaker, clock: FakeMonotonic) -> None:
    await open_circuit(breaker, Dependency())
    clock.now += 30
    trial = Gate()
    task = asyncio.create_task(breaker.call(trial))
    await trial.entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.state is CircuitState.HALF_OPEN
    assert await breaker.call(Dependency()) == "ok"
    assert breaker.state is CircuitState.CLOSED


def test_invalid_settings_are_rejected(metrics: PlatformMetrics) -> None:
    with pytest.raises(ValueError):
        CircuitBreaker("db", failure_threshold=0, metrics=metrics)
    with pytest.raises(ValueError):
        CircuitBreaker("db", reset_timeout=0, metrics=metrics)
