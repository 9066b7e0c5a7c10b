"""The one owner of long-lived tasks: `supervise` runs named parts until told to stop or until one of them
ends, then stops them all in order within one deadline.

Every daemon, the processor's stages and the collector's connections run under it, so that:
- every task has an owner (nothing is created and forgotten);
- a part that fails or returns stops its siblings cleanly (each is asked to stop, in order, not cancelled
  first), and its failure is raised from `supervise`;
- shutdown has one deadline for the whole group, not one per part: what has not stopped when it expires is
  cancelled, and the names of such parts are logged.

This is the only module of `core` that touches the event loop; it does no I/O.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from loguru import logger


def _nothing() -> None:
    return None


@dataclass(frozen=True)
class Part:
    """A long-lived piece of work: `run` does it until `stop` is called (or it is done, or it fails)."""

    name: str
    run: Callable[[], Awaitable[None]]
    stop: Callable[[], object] = field(default=_nothing)


async def supervise(
    parts: Sequence[Part],
    *,
    until: asyncio.Event | None = None,
    deadline: float,
    owner: str = "supervisor",
) -> None:
    """Run `parts` until `until` is set or any part ends. Then call each part's `stop` in the given order
    (upstream first, so what one part read is handed downstream before downstream stops), waiting for each
    in turn, all within `deadline` seconds; what is still running then is cancelled. A part that failed
    has its exception raised (an ExceptionGroup when several did)."""
    names = [part.name for part in parts]
    if len(set(names)) != len(names):
        raise ValueError(f"part names must be unique: {names}")
    tasks = {part.name: asyncio.create_task(_awaited(part.run), name=part.name) for part in parts}
    waiters: set[asyncio.Future[Any]] = set(tasks.values())
    stop_waiter = asyncio.create_task(until.wait(), name=f"{owner}-stop") if until is not None else None
    if stop_waiter is not None:
        waiters.add(stop_waiter)
    try:
        if waiters:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if stop_waiter is not None:
            stop_waiter.cancel()
        await _stop_in_order(parts, tasks, deadline, owner)
    _raise_failures([task for task in tasks.values() if not task.cancelled()])


async def _awaited(run: Callable[[], Awaitable[None]]) -> None:
    await run()


async def _stop_in_order(
    parts: Sequence[Part], tasks: dict[str, asyncio.Task[None]], deadline: float, owner: str
) -> None:
    """Ask each part to stop and wait for it, in order, within the deadline; then cancel and await what is
    left. Whatever happens meanwhile (a `stop` that raises, this task being cancelled by its own owner),
    no part is left running without an owner: each is cancelled and awaited before this returns."""
    loop = asyncio.get_running_loop()
    ends_at = loop.time() + deadline
    log = logger.bind(component=owner)
    try:
        for part in parts:
            try:
                part.stop()
            except Exception as exc:  # noqa: BLE001 - one part's broken stop must not keep the rest running
                log.opt(exception=exc).error("stopping {} failed: cancelled instead", part.name)
                tasks[part.name].cancel()
            task = tasks[part.name]
            remaining = ends_at - loop.time()
            if not task.done() and remaining > 0:
                await asyncio.wait([task], timeout=remaining)
    finally:
        late = [name for name, task in tasks.items() if not task.done()]
        if late:
            log.warning("{} did not stop within {:.1f}s: cancelled", ", ".join(late), deadline)
        for name in late:
            tasks[name].cancel()
        await _settled(list(tasks.values()))


async def _settled(tasks: list[asyncio.Task[None]]) -> None:
    """Wait until every task has ended, even if this task is cancelled meanwhile (the cancellation is
    passed on after they have: their own cleanup, such as handing trades on for the spool, runs first)."""
    pending = asyncio.gather(*tasks, return_exceptions=True)
    cancelled = False
    while not pending.done():
        try:
            await asyncio.shield(pending)
        except asyncio.CancelledError:
            cancelled = True
            for task in tasks:
                task.cancel()
    if cancelled:
        raise asyncio.CancelledError


def _raise_failures(finished: list[asyncio.Task[None]]) -> None:
    failures = [task.exception() for task in finished]
    errors = [error for error in failures if error is not None]
    if len(errors) == 1:
        raise errors[0]
    if errors:
        exceptions = [e for e in errors if isinstance(e, Exception)]
        if len(exceptions) == len(errors):
            raise ExceptionGroup("several parts failed", exceptions)
        raise BaseExceptionGroup("several parts failed", errors)
