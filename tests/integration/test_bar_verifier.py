"""The periodic verifier against a simulated venue over real sockets: stored bars built from the venue's
trades match its candles, a tampered bar is a counted and logged mismatch, a minute is checked once, a
verifier that fell behind checks only the newest minutes, and a venue whose REST API fails leaves the
stored bars counted as unavailable."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from loguru import logger
from prometheus_client import CollectorRegistry

from core.clock import ManualClock
from core.types import Bar, ClosedBar, Indicators
from cryptostock.bar_verifier import BarVerifier
from monitoring.metrics import PlatformMetrics
from tests.conftest import free_port
from tests.integration.verify_scene import MINUTES, NS_PER_MS, VENUES, Scene, make_scene


@pytest.fixture
async def scene(tmp_path: Path) -> AsyncIterator[Scene]:
    made = await make_scene("binance", tmp_path, PlatformMetrics(CollectorRegistry()))
    yield made
    await made.sim.stop()
    await made.store.close()


def verified(metrics: PlatformMetrics, result: str, exchange: str = "binance") -> float:
    value = metrics.registry.get_sample_value("bars_verified_total", {"exchange": exchange, "result": result})
    return value or 0.0


def clock_after(scene: Scene) -> ManualClock:
    """Just over two minutes after the window's end: every minute of the scene closed at least `delay` (2)
    minutes ago."""
    return ManualClock(scene.end_ms * NS_PER_MS + 2 * 60 * 10**9 + 5 * 10**9)


async def test_matches_then_a_tampered_bar_is_a_logged_mismatch_checked_once(scene: Scene) -> None:
    metrics = PlatformMetrics(CollectorRegistry())
    tampered = msgspec.structs.replace(scene.bars[3], high=f"{scene.bars[3].high}1")
    await scene.store.upsert_bars([ClosedBar(tampered, Indicators())])
    logged: list[str] = []
    sink = logger.add(logged.append, level="WARNING", format="{message}")
    try:
        verifier = BarVerifier(
            scene.store, {"binance": scene.sim.rest_url}, metrics=metrics, clock=clock_after(scene)
        )
        await verifier.verify_round()
        await verifier.verify_round()  # nothing new has closed: nothing counted twice
    finally:
        logger.remove(sink)
    assert (verified(metrics, "match"), verified(metrics, "mismatch")) == (MINUTES - 1, 1)
    assert verified(metrics, "unavailable") == 0
    assert len(logged) == 1 and "high stored" in logged[0] and "BTC-USDT" in logged[0]


@pytest.mark.parametrize("exchange", sorted(VENUES))
async def test_every_venue_with_candles_is_verified_a_tampered_bar_a_mismatch(
    exchange: str, tmp_path: Path
) -> None:
    made = await make_scene(exchange, tmp_path, PlatformMetrics(CollectorRegistry()))
    try:
        tampered = msgspec.structs.replace(made.bars[1], low=f"{made.bars[1].low}1")
        await made.store.upsert_bars([ClosedBar(tampered, Indicators())])
        metrics = PlatformMetrics(CollectorRegistry())
        verifier = BarVerifier(
            made.store, {exchange: made.sim.rest_url}, metrics=metrics, clock=clock_after(made)
        )
        await verifier.verify_round()
    finally:
        await made.sim.stop()
        await made.store.close()
    counts = [verified(metrics, result, exchange) for result in ("match", "mismatch", "unavailable")]
    assert counts == [MINUTES - 1, 1, 0]


async def test_a_minute_is_checked_once_it_closed_delay_minutes_ago(scene: Scene) -> None:
    metrics = PlatformMetrics(CollectorRegistry())
    minute = 60 * 10**9
    clock = ManualClock(scene.start_ms * NS_PER_MS + (MINUTES + 2) * minute - 1)  # the last one: not yet
    verifier = BarVerifier(scene.store, {"binance": scene.sim.rest_url}, metrics=metrics, clock=clock)
    await verifier.verify_round()
    assert verified(metrics, "match") == MINUTES - 1
    clock.set(clock.now_ns() + 1)
    await verifier.verify_round()
    assert verified(metrics, "match") == MINUTES and verified(metrics, "mismatch") == 0


async def test_a_verifier_that_fell_behind_checks_only_the_newest_minutes(scene: Scene) -> None:
    metrics = PlatformMetrics(CollectorRegistry())
    verifier = BarVerifier(
        scene.store, {"binance": scene.sim.rest_url}, max_minutes=3, metrics=metrics, clock=clock_after(scene)
    )
    await verifier.verify_round()
    # the 3 newest minutes up to the newest stored bar, of the scene's 6
    assert verified(metrics, "match") == 3 and verified(metrics, "mismatch") == 0


async def test_minutes_past_the_newest_stored_bar_wait_for_the_processor(
    scene: Scene, tmp_path: Path
) -> None:
    metrics = PlatformMetrics(CollectorRegistry())
    last = scene.bars[-1]
    await _delete_bar(tmp_path / "verify.db", last)  # the processor has not stored it yet
    verifier = BarVerifier(
        scene.store, {"binance": scene.sim.rest_url}, metrics=metrics, clock=clock_after(scene)
    )
    await verifier.verify_round()
    assert (verified(metrics, "match"), verified(metrics, "mismatch")) == (MINUTES - 1, 0)
    await scene.store.upsert_bars([ClosedBar(last, Indicators())])
    await verifier.verify_round()
    assert (verified(metrics, "match"), verified(metrics, "mismatch")) == (MINUTES, 0)


async def _delete_bar(db: Path, bar: Bar) -> None:
    with sqlite3.connect(db) as connection:
        deleted = connection.execute(
            "DELETE FROM bars WHERE exchange = ? AND symbol = ? AND timeframe = '1m' AND open_time = ?",
            (bar.exchange, bar.symbol, bar.open_time),
        ).rowcount
    assert deleted == 1


async def test_minutes_before_the_verifier_started_are_not_checked(scene: Scene) -> None:
    metrics = PlatformMetrics(CollectorRegistry())
    since = scene.start_ms * NS_PER_MS + 2 * 60 * 10**9 + 1  # during the scene's third minute
    verifier = BarVerifier(
        scene.store,
        {"binance": scene.sim.rest_url},
        since_ns=since,
        metrics=metrics,
        clock=clock_after(scene),
    )
    await verifier.verify_round()
    assert verified(metrics, "match") == MINUTES - 3  # from the fourth minute on


async def test_a_failing_venue_leaves_the_bars_unverified(scene: Scene) -> None:
    metrics = PlatformMetrics(CollectorRegistry())
    closed_port = f"http://127.0.0.1:{free_port()}"
    verifier = BarVerifier(scene.store, {"binance": closed_port}, metrics=metrics, clock=clock_after(scene))
    await verifier.verify_round()
    assert verified(metrics, "unavailable") == MINUTES and verified(metrics, "match") == 0
    # its own circuit breaker: the collector's binance_rest one is not the verifier's to trip
    state = metrics.registry.get_sample_value
    assert state("circuit_breaker_state", {"component": "binance_klines"}) is not None
    assert state("circuit_breaker_state", {"component": "binance_rest"}) is None


async def test_only_the_given_exchanges_are_verified_and_stop_ends_run(scene: Scene) -> None:
    metrics = PlatformMetrics(CollectorRegistry())
    verifier = BarVerifier(
        scene.store, {"okx": None}, interval=0.05, metrics=metrics, clock=clock_after(scene)
    )
    task = asyncio.create_task(verifier.run())
    while verifier.rounds < 2:
        await asyncio.sleep(0.01)
    verifier.stop()
    await asyncio.wait_for(task, 5)
    assert verified(metrics, "match") == verified(metrics, "unavailable") == 0


async def test_a_failing_round_is_logged_and_the_verifier_goes_on() -> None:
    class BrokenStore:
        calls = 0

        async def symbols(self) -> list[object]:
            BrokenStore.calls += 1
            raise RuntimeError("a bug")

    verifier = BarVerifier(BrokenStore(), {"binance": None}, interval=0.01)  # type: ignore[arg-type]
    task = asyncio.create_task(verifier.run())
    while verifier.failed_rounds < 3:
        await asyncio.sleep(0.01)
    verifier.stop()
    await asyncio.wait_for(task, 5)
    assert BrokenStore.calls >= 3 and not task.exception()
