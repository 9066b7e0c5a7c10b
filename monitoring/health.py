"""Liveness and readiness of one process.

Liveness: the process's event loop is alive. A heartbeat task stamps `monotonic()` every
`heartbeat_interval` seconds; the process is live while the last stamp is at most `max_heartbeat_age`
seconds old. A blocked or dead loop stops the stamps.

Readiness: every registered dependency check (name -> async callable returning bool, or raising) answers
True within `check_timeout` seconds. Checks run concurrently on the event loop. Other threads (the metrics
server's) ask through `ready_threadsafe()`, which schedules `ready()` on the loop.

Every port answers the probes in one shape (the API's and each metrics server's), built here:
    GET /livez  -> 200|503 {"status": "ok"|"fail", "heartbeat_age_s": 0.2 (null when not watched)}
    GET /readyz -> 200|503 {"status": "ok"|"unavailable",
                            "checks": {name: {"status": "ok"|"fail"|"timeout", "duration_ms": 0.4,
                                              "detail": null or why}}}
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from monitoring.redaction import redact_text

HealthCheck = Callable[[], Awaitable[bool]]


@dataclass(frozen=True)
class CheckResult:
    """One dependency check: `duration_ms` is wall time spent; `error` is None when it passed;
    `timed_out` when it did not answer in time."""

    name: str
    ok: bool
    duration_ms: float
    error: str | None = None
    timed_out: bool = False

    @property
    def status(self) -> str:
        return "ok" if self.ok else "timeout" if self.timed_out else "fail"


@dataclass(frozen=True)
class HealthReport:
    """Overall readiness: ok only when every check passed (no checks = ok)."""

    ok: bool
    checks: tuple[CheckResult, ...]

    def to_dict(self) -> dict[str, Any]:
        """The /readyz body (see the module docstring)."""
        return {
            "status": "ok" if self.ok else "unavailable",
            "checks": {
                c.name: {"status": c.status, "duration_ms": round(c.duration_ms, 3), "detail": c.error}
                for c in self.checks
            },
        }

    @property
    def http_status(self) -> int:
        return 200 if self.ok else 503


def liveness(health: Health | None) -> tuple[int, dict[str, Any]]:
    """The /livez status code and body: live while `health`'s heartbeat is fresh (always, without one)."""
    if health is None:
        return 200, {"status": "ok", "heartbeat_age_s": None}
    age = health.heartbeat_age()
    live = health.live()
    return (200 if live else 503), {
        "status": "ok" if live else "fail",
        "heartbeat_age_s": None if age is None else round(age, 3),
    }


async def run_check(name: str, fn: HealthCheck, timeout: float) -> CheckResult:
    """Run one check bounded by `timeout` seconds; a raise or False is a failed result, never a crash."""
    start = time.perf_counter()
    error: str | None = None
    timed_out = False
    try:
        ok = bool(await asyncio.wait_for(fn(), timeout))
        if not ok:
            error = "check returned False"
    except TimeoutError:
        ok, timed_out, error = False, True, f"no answer within {timeout:g}s"
    except Exception as exc:  # noqa: BLE001
        # A check probes any dependency through any client library: whatever it raises is a failed result
        # (redacted, bounded), never a crash of the health endpoint. CancelledError still passes.
        ok, error = False, redact_text(f"{type(exc).__name__}: {exc}")[:500]
    return CheckResult(name, ok, (time.perf_counter() - start) * 1000, error, timed_out)


class Health:
    """Heartbeat-based liveness and dependency readiness for one event loop.

    Use `await health.start()` / `await health.stop()` (or `async with health:`) on the loop to watch.
    Times are seconds; `monotonic` is injectable for tests.
    """

    def __init__(
        self,
        *,
        heartbeat_interval: float = 1.0,
        max_heartbeat_age: float = 10.0,
        check_timeout: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if heartbeat_interval <= 0 or max_heartbeat_age <= 0 or check_timeout <= 0:
            raise ValueError("heartbeat_interval, max_heartbeat_age and check_timeout must be positive")
        self.heartbeat_interval = heartbeat_interval
        self.max_heartbeat_age = max_heartbeat_age
        self.check_timeout = check_timeout
        self._monotonic = monotonic
        self._checks: dict[str, HealthCheck] = {}
        self._last_tick: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None

    def add_check(self, name: str, fn: HealthCheck) -> None:
        """Register (or replace) the readiness check `name`."""
        self._checks[name] = fn

    async def start(self) -> None:
        """Start the heartbeat on the running loop (idempotent)."""
        if self._task is not None and not self._task.done():
            return
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._last_tick = self._monotonic()
        self._task = asyncio.create_task(self._heartbeat(), name="health-heartbeat")

    async def stop(self) -> None:
        """Stop the heartbeat and wait for it; the process then reports not live."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                if not task.cancelled():  # our own caller is being cancelled: let it through
                    raise
        self._last_tick = None

    async def __aenter__(self) -> Health:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _heartbeat(self) -> None:
        while True:
            self._last_tick = self._monotonic()
            await asyncio.sleep(self.heartbeat_interval)

    def heartbeat_age(self) -> float | None:
        """Seconds since the last heartbeat, None when not started. Safe from any thread."""
        last = self._last_tick
        return None if last is None else self._monotonic() - last

    def live(self) -> bool:
        """True while the heartbeat task runs and ticked within `max_heartbeat_age`. Any thread."""
        age = self.heartbeat_age()
        task = self._task
        return age is not None and age <= self.max_heartbeat_age and task is not None and not task.done()

    async def ready(self) -> HealthReport:
        """Run every check concurrently, each bounded by `check_timeout`."""
        checks = self._checks.items()
        results = await asyncio.gather(*(run_check(n, fn, self.check_timeout) for n, fn in checks))
        return HealthReport(all(r.ok for r in results), tuple(results))

    def ready_threadsafe(self, timeout: float | None = None) -> HealthReport:
        """`ready()` evaluated on the watched loop from another thread; a loop that is not running or
        does not answer within `timeout` (default check_timeout + 1 s) gives a failed report."""
        loop = self._loop
        if loop is None or loop.is_closed() or not loop.is_running():
            return _failed("event loop", "health not started or event loop not running")
        if threading.get_ident() == self._loop_thread:
            raise RuntimeError("ready_threadsafe() called from the event loop thread; await ready()")
        wait = self.check_timeout + 1.0 if timeout is None else timeout
        future = asyncio.run_coroutine_threadsafe(self.ready(), loop)
        try:
            return future.result(wait)
        except concurrent.futures.TimeoutError:
            future.cancel()
            return _failed("event loop", f"event loop did not answer within {wait:g}s")


def _failed(name: str, error: str) -> HealthReport:
    return HealthReport(False, (CheckResult(name, False, 0.0, error),))
