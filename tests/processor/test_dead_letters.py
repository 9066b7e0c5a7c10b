"""Data the store refuses never wedges the processor: the refused trades are set aside as dead letters
(counted, logged, inspectable), the valid trades read with them are stored and aggregated, and the
delivery is acknowledged. Over SQLite with the in-process bus and PostgreSQL with Redis Streams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from core.ports import MarketStore, TradeBus
from monitoring.metrics import PlatformMetrics
from processor.service import ProcessorService
from storage.dead_letters import DeadLetterFile
from storage.memory_bus import InProcessBus
from storage.memory_cache import MemoryCache
from storage.postgres import PostgresStore
from storage.redis_bus import RedisStreamBus
from storage.sqlite import SQLiteStore
from tests.storage.conftest import make_trade

Setup = tuple[TradeBus, MarketStore, str]


@pytest.fixture(params=["sqlite+memory", "postgres+redis"])
async def setup(
    request: pytest.FixtureRequest, tmp_path: Path, pg_url: str, redis_url: str, metrics: PlatformMetrics
) -> AsyncIterator[Setup]:
    if request.param == "sqlite+memory":
        bus: InProcessBus | RedisStreamBus = InProcessBus(
            metrics=metrics, dead_letter_file=DeadLetterFile(tmp_path / "dead.jsonl")
        )
        store: SQLiteStore | PostgresStore = SQLiteStore(tmp_path / "db.sqlite", metrics=metrics)
        name = "memory"
    else:
        bus = RedisStreamBus(redis_url, prefix=f"dl{tmp_path.name[-8:]}", metrics=metrics)
        store = PostgresStore(pg_url, metrics=metrics, timescale=False)
        name = "redis"
    await store.migrate()
    yield bus, store, name
    await store.close()
    await bus.close()


async def test_refused_trades_become_dead_letters_and_the_rest_is_stored(
    setup: Setup, metrics: PlatformMetrics
) -> None:
    bus, store, name = setup
    service = ProcessorService(
        bus, store, MemoryCache(metrics=metrics), timeframes=("1m",), grace_ns=0, metrics=metrics
    )
    bad_side = msgspec.structs.replace(make_trade(4), side="hold")  # a CHECK constraint refuses it
    beyond_64_bits = msgspec.structs.replace(make_trade(7), ts_event=2**63 + 5)
    trades = [make_trade(i) for i in (1, 2, 3)] + [bad_side, make_trade(5), make_trade(6), beyond_64_bits]
    await bus.publish(trades)
    task = asyncio.create_task(service.run())
    try:
        async with asyncio.timeout(20):
            while len(await store.trades("binance", "BTC-USDT", limit=100)) < 5:
                assert not task.done(), task
                await asyncio.sleep(0.05)
            while len(await bus.dead_letters()) < 2:
                await asyncio.sleep(0.05)
    finally:
        service.stop()
        await asyncio.wait_for(task, 10)
    stored = await store.trades("binance", "BTC-USDT", limit=100)
    assert [t.sequence for t in stored] == [1, 2, 3, 5, 6]
    letters = await bus.dead_letters()
    assert len(letters) == 2 and all(letter.stream for letter in letters)
    refused = {trade[4] for letter in letters for trade in letter.trades}  # Trade's fields, in order
    if name == "memory":  # nothing between processor and store checks: the store refuses both
        assert refused == {4, 7}
    else:  # the bus decodes typed and checks ranges: both are refused there, each alone
        assert refused == set() and all(letter.raw for letter in letters)
        assert any(b"hold" in letter.raw for letter in letters)
    counted = metrics.registry.get_sample_value
    reasons = ("store refused", "undecodable")
    assert sum(counted("bus_dead_letters_total", {"bus": name, "reason": r}) or 0 for r in reasons) == 2
    assert service.trades_applied == 5  # only what was stored reached the bars
    assert await bus.read("p", block_ms=50) == []  # nothing left pending: no wedge on restart


def test_dead_letters_command_prints_them_as_json_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.types import DeadLetter
    from cryptostock.cli import main

    monkeypatch.delenv("REDIS_URL", raising=False)
    DeadLetterFile(tmp_path / "dead-letters.jsonl").append(
        [DeadLetter("memory:trades:binance:BTC-USDT", "9", "store refused: test", 1, [make_trade(3)])]
    )
    assert main(["dead-letters", "--data-dir", str(tmp_path), "--log-dir", str(tmp_path / "logs")]) == 0
    [line] = capsys.readouterr().out.splitlines()
    record = msgspec.json.decode(line)
    assert (record["delivery_id"], record["reason"], record["trades"][0][3]) == (
        "9",
        "store refused: test",
        "3",
    )
