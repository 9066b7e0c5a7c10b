"""Fixtures shared by every test: fresh metrics, a fresh PostgreSQL database, a clean Redis db,
the recorded exchange captures, free ports."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from monitoring.metrics import PlatformMetrics

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = ROOT.parent / "shared" / "captures" / "cryptofeed-sample"
PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_TEST_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def metrics() -> PlatformMetrics:
    """Metrics on a fresh registry: assert on metrics.registry.get_sample_value(...)."""
    return PlatformMetrics(CollectorRegistry())


@pytest.fixture
def captures_dir() -> Path:
    if not CAPTURES.is_dir():
        pytest.skip("../shared/captures is not present")
    return CAPTURES


@asynccontextmanager
async def fresh_pg_database() -> AsyncIterator[str]:
    """URL of a brand-new empty database, dropped on exit (also usable where a fixture cannot be)."""
    name = f"cs_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        admin = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """URL of a brand-new empty database, dropped after the test."""
    async with fresh_pg_database() as url:
        yield url


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    """URL of a Redis database emptied before and after the test."""
    client = aioredis.from_url(REDIS_TEST_URL)
    await client.flushdb()
    yield REDIS_TEST_URL
    await client.flushdb()
    await client.aclose()


@pytest.fixture
def tmp_logs(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "logs"
    path.mkdir()
    yield path
