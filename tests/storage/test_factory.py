"""Adapter selection from settings, secrets kept out of logs, and codec round trips."""

from __future__ import annotations

from pathlib import Path

import pytest
from loguru import logger

from core.errors import ParseError
from monitoring.metrics import PlatformMetrics
from storage.codec import decode_bar, decode_trades, encode_bar, encode_trades
from storage.dsn import redact_dsn
from storage.factory import open_bus, open_cache, open_store
from storage.memory_bus import InProcessBus
from storage.memory_cache import MemoryCache
from storage.postgres import PostgresStore
from storage.redis_bus import RedisStreamBus
from storage.redis_cache import RedisCache
from storage.sqlite import SQLiteStore
from tests.storage.conftest import make_bar, make_trade


async def test_factory_picks_by_url_and_never_logs_passwords(
    tmp_path: Path, metrics: PlatformMetrics
) -> None:
    lines: list[str] = []
    sink = logger.add(lines.append, format="{message}")
    try:
        pg = open_store("postgresql://app:s3cret@127.0.0.1:5432/db", tmp_path / "x.db", metrics)
        lite = open_store(None, tmp_path / "x.db", metrics)
        bus = open_bus("redis://:hunter2@127.0.0.1:6379/15", metrics=metrics)
        memory_bus = open_bus(None, metrics=metrics)
        cache = open_cache("redis://:hunter2@127.0.0.1:6379/15", metrics=metrics)
        memory_cache = open_cache(None, metrics=metrics)
    finally:
        logger.remove(sink)
    assert isinstance(pg, PostgresStore) and isinstance(lite, SQLiteStore)
    assert isinstance(bus, RedisStreamBus) and isinstance(memory_bus, InProcessBus)
    assert isinstance(cache, RedisCache) and isinstance(memory_cache, MemoryCache)
    text = "".join(lines)
    assert "127.0.0.1:5432/db" in text and "s3cret" not in text and "hunter2" not in text
    for closable in (pg, lite, bus, memory_bus, cache, memory_cache):
        await closable.close()


def test_redact_dsn() -> None:
    assert (
        redact_dsn("postgresql://u:p%40ss@db:5432/x?sslmode=require")
        == "postgresql://u:***@db:5432/x?sslmode=require"
    )
    assert redact_dsn("redis://localhost:6379/0") == "redis://localhost:6379/0"


def test_codec_round_trips_and_rejects_garbage() -> None:
    trades = [make_trade(1), make_trade(2, price="0.00000001")]
    assert decode_trades(encode_trades(trades)) == trades
    bar = make_bar(3, sma=2.5)
    assert decode_bar(encode_bar(bar)) == bar
    with pytest.raises(ParseError):
        decode_trades(b"\xc1garbage")
    with pytest.raises(ParseError):
        decode_bar(encode_trades(trades))
