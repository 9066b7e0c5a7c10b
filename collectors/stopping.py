"""How the collector's parts stop: one stop signal whose waits end early when it comes, and a task
group held open until stopped.

Both stop work by cancelling it where it waits, without a task of their own: `Stopping` reschedules the
`asyncio.timeout` scope of every wait in progress to now, and `TaskScope` does the same to the scope
around its group once the grace has passed (the group then cancels what still runs in it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, TypeVar

from loguru import logger

T = TypeVar("T")
Work = Coroutine[Any, Any, None]


class Stopping:
    """A stop signal; `wait`, `pause` and `until` return early (without their result) once it is set."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._scopes: set[asyncio.Timeout] = set()

    def set(self) -> None:
        if self._event.is_set():
            return  # the scopes are already expiring: they may not be rescheduled twice
        self._event.set()
        if self._scopes:
            now = asyncio.get_running_loop().time()
            for scope in list(self._scopes):
                scope.reschedule(now)

    def is_set(self) -> bool:
        return self._event.is_set()

    async def wait(self, timeout: float) -> bool:
        """True when stopped, False after `timeout` seconds."""
        await self.until(asyncio.sleep(timeout))
        return self._event.is_set()

    async def pause(self, delay: float, sleep: Callable[[float], Awaitable[None]]) -> None:
        """Sleep `delay` seconds with `sleep` (injectable for tests), or less if the stop comes first."""
        if delay > 0 and not self._event.is_set():
            await self.until(sleep(delay))

    async def until(self, work: Awaitable[T]) -> T | None:
        """Await `work` unless the stop comes first: then it is cancelled and None returned."""
        if self._event.is_set():
            if isinstance(work, Coroutine):
                work.close()  # never started: nothing to cancel
            return None
        scope = asyncio.timeout(None)
        try:
            async with scope:
                self._scopes.add(scope)
                try:
                    return await work
                finally:
                    self._scopes.discard(scope)
        except TimeoutError:
            if scope.expired():
                return None
            raise


class TaskScope:
    """An `asyncio.TaskGroup` held open by `run()` until `stop()`: `spawn` adds work to it while it runs.
    At stop, what still runs gets `grace` seconds to end, then is cancelled. A failure in one task
    cancels the others and is raised from `run()` (an ExceptionGroup)."""

    def __init__(self, name: str, *, grace: float) -> None:
        self._name = name
        self._grace = grace
        self._stop = asyncio.Event()
        self._group: asyncio.TaskGroup | None = None

    def spawn(self, work: Work) -> asyncio.Task[None] | None:
        """Start `work` in the scope; None when the scope cannot take it (not running, or its group is
        ending after a failure: the session is stopping then, and what the work was for, such as a held
        gap, is handed on by the stop)."""
        if self._group is not None:
            try:
                return self._group.create_task(work)
            except RuntimeError:  # the group is shutting down
                pass
        work.close()
        logger.bind(component="collector").warning("{}: not running, work not started", self._name)
        return None

    def stop(self) -> None:
        self._stop.set()

    async def run(self, initial: Iterable[Callable[[], Work]] = ()) -> None:
        """Hold the group open until stop() (with `initial` work started at once); return once what ran
        in it ended or was cancelled."""
        loop = asyncio.get_running_loop()
        cutoff = asyncio.timeout(None)
        try:
            async with cutoff, asyncio.TaskGroup() as group:
                self._group = group
                for start in initial:
                    group.create_task(start())
                await self._stop.wait()
                cutoff.reschedule(loop.time() + self._grace)
        except TimeoutError:
            if not cutoff.expired():
                raise
            logger.bind(component="collector").debug("{}: cancelled after {:.1f}s", self._name, self._grace)
        finally:
            self._group = None
