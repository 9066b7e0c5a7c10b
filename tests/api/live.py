"""A real API server on its own thread and event loop, over a real store (SQLite, or a fresh PostgreSQL
database), for tests whose client is synchronous (schemathesis, raw sockets) or must not share the
server's loop (a slowloris must not be able to starve the test's own client)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from api.app import create_app
from api.server import ApiServer
from api.settings import ApiSettings
from monitoring.metrics import PlatformMetrics
from storage.factory import SqlStore, open_store
from storage.memory_cache import MemoryCache
from tests.api.conftest import BAR_COUNT, SYMBOLS, make_bar, make_trade
from tests.conftest import free_port, fresh_pg_database


class LiveApi:
    """`with LiveApi(tmp_path, settings) as api: httpx.get(api.url + "/livez")`."""

    def __init__(
        self,
        data_dir: Path,
        settings: ApiSettings | None = None,
        *,
        postgres: bool = False,
        metrics: PlatformMetrics | None = None,
        customize: Callable[[FastAPI], None] | None = None,
    ) -> None:
        self.settings = settings or ApiSettings(rate_limit_per_second=0)
        self.metrics = metrics or PlatformMetrics(CollectorRegistry())
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._data_dir = data_dir
        self._postgres = postgres
        self._customize = customize
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._server: ApiServer | None = None
        self._thread = threading.Thread(target=self._run, name="live-api", daemon=True)

    def shed(self, reason: str) -> float:
        """http_shed_total{reason} so far."""
        return self.metrics.registry.get_sample_value("http_shed_total", {"reason": reason}) or 0.0

    def __enter__(self) -> LiveApi:
        self._thread.start()
        if not self._ready.wait(30) or self._failure is not None:
            raise RuntimeError(f"the API did not start: {self._failure!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.stop()
        self._thread.join(30)
        assert not self._thread.is_alive(), "the API server did not stop"

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to the thread that waits for readiness
            self._failure = exc
            self._ready.set()

    async def _serve(self) -> None:
        async with AsyncExitStack() as stack:
            url = await stack.enter_async_context(fresh_pg_database()) if self._postgres else None
            store = open_store(url, self._data_dir / "live.db", self.metrics)
            stack.push_async_callback(store.close)
            cache = MemoryCache(metrics=self.metrics)
            stack.push_async_callback(cache.close)
            await seed(store)
            app = create_app(store, cache, metrics=self.metrics, settings=self.settings, feeds=cache)
            if self._customize is not None:
                self._customize(app)
            self._server = ApiServer(app, "127.0.0.1", self.port)
            serving = asyncio.create_task(self._server.serve())
            while not self._server.started() and not serving.done():
                await asyncio.sleep(0.01)
            self._ready.set()
            await serving


async def seed(store: SqlStore) -> None:
    """The symbols, bars and trades of tests/api/conftest.py."""
    await store.migrate()
    await store.upsert_symbols(SYMBOLS)
    await store.upsert_bars([make_bar(i) for i in range(BAR_COUNT)])
    await store.insert_trades([make_trade(i) for i in range(3)])
