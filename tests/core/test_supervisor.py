"""core.supervisor: parts run until told to stop or until one ends; they stop in order within one deadline,
and failures are raised."""

from __future__ import annotations

import asyncio

import pytest

from core.supervisor import Part, supervise


class Worker:
    """Runs until stopped; records when it was asked to stop and when it returned."""

    def __init__(self, name: str, log: list[str], *, fail_after: float | None = None, linger: float = 0.0):
        self.name = name
        self.log = log
        self.fail_after = fail_after
        self.linger = linger
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        if self.fail_after is not None:
            await asyncio.sleep(self.fail_after)
            raise RuntimeError(f"{self.name} broke")
        await self.stopping.wait()
        await asyncio.sleep(self.linger)
        self.log.append(f"{self.name} returned")

    def stop(self) -> None:
        self.log.append(f"{self.name} asked")
        self.stopping.set()

    def part(self) -> Part:
        return Part(self.name, self.run, self.stop)


async def test_parts_stop_in_the_given_order_each_finishing_before_the_next_is_asked() -> None:
    log: list[str] = []
    until = asyncio.Event()
    workers = [Worker(name, log, linger=0.01) for name in ("collector", "processor", "api")]
    asyncio.get_running_loop().call_later(0.05, until.set)
    await supervise([w.part() for w in workers], until=until, deadline=5.0)
    assert log == [
        "collector asked",
        "collector returned",
        "processor asked",
        "processor returned",
        "api asked",
        "api returned",
    ]


async def test_a_failing_part_stops_its_siblings_cleanly_and_its_error_is_raised() -> None:
    log: list[str] = []
    healthy = Worker("healthy", log)
    broken = Worker("broken", log, fail_after=0.01)
    with pytest.raises(RuntimeError, match="broken broke"):
        await supervise([healthy.part(), broken.part()], until=asyncio.Event(), deadline=5.0)
    assert log[:2] == ["healthy asked", "healthy returned"]  # asked to stop, not cancelled


async def test_several_failures_are_raised_together() -> None:
    log: list[str] = []
    parts = [Worker(n, log, fail_after=0.0).part() for n in ("a", "b")]
    with pytest.raises(ExceptionGroup) as raised:
        await supervise(parts, deadline=1.0)
    assert sorted(str(e) for e in raised.value.exceptions) == ["a broke", "b broke"]


async def test_one_deadline_for_the_whole_group_then_what_is_left_is_cancelled() -> None:
    """Three parts that ignore stop: the group ends after about one deadline, not three."""
    cancelled: list[str] = []

    def stubborn(name: str) -> Part:
        async def run() -> None:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled.append(name)
                raise

        return Part(name, run)

    until = asyncio.Event()
    until.set()
    loop = asyncio.get_running_loop()
    started = loop.time()
    await supervise([stubborn(n) for n in ("a", "b", "c")], until=until, deadline=0.3)
    took = loop.time() - started
    assert sorted(cancelled) == ["a", "b", "c"]
    assert 0.25 <= took < 0.85, took


async def test_a_part_that_returns_ends_the_group() -> None:
    log: list[str] = []
    waiting = Worker("waiting", log)

    async def done_at_once() -> None:
        log.append("done")

    await supervise([Part("once", done_at_once), waiting.part()], until=asyncio.Event(), deadline=1.0)
    assert log == ["done", "waiting asked", "waiting returned"]


async def test_cancelling_the_supervisor_still_stops_every_part() -> None:
    log: list[str] = []
    workers = [Worker(n, log) for n in ("a", "b")]
    task = asyncio.create_task(supervise([w.part() for w in workers], until=asyncio.Event(), deadline=1.0))
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert log == ["a asked", "a returned", "b asked", "b returned"]


async def test_part_names_must_be_unique() -> None:
    log: list[str] = []
    with pytest.raises(ValueError, match="unique"):
        await supervise([Worker("x", log).part(), Worker("x", log).part()], deadline=1.0)


async def test_a_stop_that_raises_is_logged_and_its_part_cancelled_while_the_rest_stop_in_order() -> None:
    log: list[str] = []
    later = Worker("later", log)

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            log.append("broken cancelled")
            raise

    def broken_stop() -> None:
        raise RuntimeError("stop bug")

    until = asyncio.Event()
    until.set()
    await supervise([Part("broken", forever, broken_stop), later.part()], until=until, deadline=2.0)
    assert log == ["broken cancelled", "later asked", "later returned"]
    assert _running_besides_me() == []


async def test_cancelled_while_stopping_it_cancels_and_awaits_every_part_before_passing_it_on() -> None:
    """An outer deadline cancels a nested supervisor: its parts end (their cleanup runs) before the
    cancellation reaches the outer owner, so none is left running unowned."""
    ended: list[str] = []

    async def slow_to_stop() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0.05)  # cleanup that itself awaits (handing trades on)
            ended.append("cleaned up")

    until = asyncio.Event()
    until.set()
    task = asyncio.create_task(supervise([Part("slow", slow_to_stop)], until=until, deadline=10.0))
    await asyncio.sleep(0.1)  # now waiting for "slow" to stop
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ended == ["cleaned up"]
    assert _running_besides_me() == []


def _running_besides_me() -> list[str]:
    me = asyncio.current_task()
    return [t.get_name() for t in asyncio.all_tasks() if t is not me and not t.done()]
