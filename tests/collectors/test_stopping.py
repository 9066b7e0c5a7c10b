"""Stopping and TaskScope alone: waits that end at the stop, a group held open until stopped."""

from __future__ import annotations

import asyncio

import pytest

from collectors.stopping import Stopping, TaskScope


async def test_until_returns_the_result_or_none_once_stopped() -> None:
    stopping = Stopping()
    assert await stopping.until(asyncio.sleep(0, "done")) == "done"
    cancelled = asyncio.Event()

    async def forever() -> str:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    waiting = asyncio.create_task(stopping.until(forever()))
    await asyncio.sleep(0.01)
    stopping.set()
    stopping.set()  # twice: harmless
    assert await asyncio.wait_for(waiting, 1) is None
    assert cancelled.is_set()
    assert await stopping.until(forever()) is None  # already stopped: not even started
    assert await stopping.wait(10.0) is True


async def test_wait_and_pause_time_out_without_a_stop() -> None:
    stopping = Stopping()
    assert await stopping.wait(0.01) is False
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    await stopping.pause(3.0, fake_sleep)
    await stopping.pause(0.0, fake_sleep)
    assert slept == [3.0]


async def test_an_error_inside_until_is_raised_not_taken_for_the_stop() -> None:
    async def fails() -> None:
        raise TimeoutError("the work's own timeout")

    with pytest.raises(TimeoutError, match="own timeout"):
        await Stopping().until(fails())


async def test_a_task_scope_gives_its_work_a_grace_then_cancels_it() -> None:
    scope = TaskScope("work", grace=0.1)
    finished: list[str] = []

    async def quick() -> None:
        await asyncio.sleep(0.02)
        finished.append("quick")

    async def slow() -> None:
        await asyncio.sleep(10)
        finished.append("slow")

    running = asyncio.create_task(scope.run([quick]))
    await asyncio.sleep(0)
    scope.spawn(slow())
    scope.stop()
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(running, 1)
    assert finished == ["quick"]
    assert 0.09 < asyncio.get_running_loop().time() - started < 0.5
    assert scope.spawn(slow()) is None  # after run() ended: not started (and no warning of a lost task)


async def test_a_failure_in_a_task_scope_cancels_the_rest_and_is_raised() -> None:
    scope = TaskScope("work", grace=1.0)
    cancelled = asyncio.Event()

    async def sibling() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def bug() -> None:
        raise ValueError("a bug")

    refused: list[object] = []

    async def late_spawn() -> None:  # a reader finding a gap while the failed group is ending
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            refused.append(scope.spawn(slow()))
            raise

    async def slow() -> None:
        await asyncio.sleep(10)

    with pytest.raises(ExceptionGroup) as raised:
        await asyncio.wait_for(scope.run([sibling, bug, late_spawn]), 1)
    assert raised.group_contains(ValueError) and cancelled.is_set()
    assert refused == [None]  # refused without raising into the reader
