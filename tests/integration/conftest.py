"""A platform of real processes: simulator, collector, processor and API, over PostgreSQL and Redis."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.integration.procs import Daemon, base_env

SYMBOLS = "BTCUSDT,ETHUSDT"


class Platform:
    """Builds and owns the daemons of one test; every one is stopped (and killed if need be) at the end."""

    def __init__(self, tmp: Path, pg_url: str, redis_url: str) -> None:
        self.tmp = tmp
        self.pg_url = pg_url
        self.redis_url = redis_url
        self.sim_port = free_port()
        self.api_port = free_port()
        self.daemons: list[Daemon] = []
        self.redis_prefix = f"it{uuid.uuid4().hex[:8]}"  # this test's streams, resume points and cache only
        self.extra_env: dict[str, str] = {}  # added to the environment of the daemons started from now on

    @property
    def sim_url(self) -> str:
        return f"http://127.0.0.1:{self.sim_port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def daemon(self, name: str, *args: str, with_db: bool = True, with_redis: bool = True) -> Daemon:
        extra = {}
        if with_db:
            extra["DATABASE_URL"] = self.pg_url
        if with_redis:
            extra["REDIS_URL"] = self.redis_url
            extra["CRYPTOSTOCK_REDIS_PREFIX"] = self.redis_prefix
        daemon = Daemon(
            name=name,
            args=list(args),
            env=base_env(self.tmp, **extra, **self.extra_env),
            log_path=self.tmp / f"{name}.log",
            metrics_port=free_port(),
        )
        self.daemons.append(daemon)
        return daemon.start()

    def simulator(self, *extra: str, tps: int = 200) -> Daemon:
        return self.daemon(
            "simulator",
            "simulate",
            "--port",
            str(self.sim_port),
            "--symbols",
            SYMBOLS,
            "--tps",
            str(tps),
            "--seed",
            "7",
            *extra,
            with_db=False,
            with_redis=False,
        )

    def collector(self, *extra: str) -> Daemon:
        return self.daemon(
            "collector",
            "collector",
            "--exchange",
            "binance",
            "--symbols",
            SYMBOLS,
            "--ws-url",
            f"ws://127.0.0.1:{self.sim_port}",
            "--rest-url",
            self.sim_url,
            *extra,
            with_db=False,
        )

    def processor(self, *extra: str, name: str = "processor") -> Daemon:
        return self.daemon(
            name,
            "processor",
            "--timeframes",
            "1s,5s,1m",
            "--grace-seconds",
            "0.5",
            "--consumer",
            "proc-a",
            *extra,
        )

    def api(self) -> Daemon:
        return self.daemon("api", "api", "--host", "127.0.0.1", "--port", str(self.api_port))

    def stop_all(self) -> None:
        for daemon in reversed(self.daemons):
            if daemon.process is not None and daemon.process.poll() is None:
                with contextlib.suppress(AssertionError):
                    daemon.stop(timeout=10)


@pytest.fixture
async def platform(tmp_path: Path, pg_url: str, redis_url: str) -> AsyncIterator[Platform]:
    platform = Platform(tmp_path, pg_url, redis_url)
    try:
        yield platform
    finally:
        platform.stop_all()


@pytest.fixture
def dump_logs(platform: Platform) -> Callable[[], str]:
    return lambda: "\n".join(f"===== {d.name}\n{d.output()}" for d in platform.daemons)
