"""Starting the platform's real daemons as subprocesses for integration tests."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
CRYPTOSTOCK = [sys.executable, "-m", "cryptostock.cli"]


@dataclass
class Daemon:
    """One running `cryptostock <command>` process; its output goes to a log file for post-mortems."""

    name: str
    args: list[str]
    env: dict[str, str]
    log_path: Path
    metrics_port: int
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Daemon:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*CRYPTOSTOCK, *self.args, "--metrics-port", str(self.metrics_port)],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}"

    async def wait_ready(self, timeout: float = 30.0) -> None:
        async def ready() -> bool:
            self.assert_running()
            try:
                async with httpx.AsyncClient(timeout=2) as client:
                    return (await client.get(f"{self.metrics_url}/readyz")).status_code == 200
            except httpx.HTTPError:
                return False

        await wait_until(ready, timeout, f"{self.name} ready\n{self.output()}")

    def assert_running(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"{self.name} exited with {self.process.returncode}\n{self.output()}")

    async def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of `name` whose labels include `labels` (0 when absent)."""
        async with httpx.AsyncClient(timeout=5) as client:
            text = (await client.get(f"{self.metrics_url}/metrics")).text
        return metric_value(text, name, labels)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 15.0) -> tuple[int, float]:
        """Send `sig` and wait; returns (exit code, seconds it took)."""
        assert self.process is not None
        started = time.monotonic()
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise AssertionError(
                    f"{self.name} ignored {sig.name} for {timeout}s\n{self.output()}"
                ) from None
        return self.process.returncode, time.monotonic() - started

    def output(self) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text[-8000:]


def metric_value(exposition: str, name: str, labels: dict[str, str]) -> float:
    total = 0.0
    for line in exposition.splitlines():
        if line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, label_text = head.partition("{")
        if metric == name and all(f'{k}="{v}"' in label_text for k, v in labels.items()):
            total += float(value)
    return total


def base_env(tmp: Path, **extra: str) -> dict[str, str]:
    drop = {"DATABASE_URL", "REDIS_URL", "METRICS_PORT", "LOG_FORMAT"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(
        {"LOG_DIR": str(tmp / "logs"), "PYTHONUNBUFFERED": "1", "CRYPTOSTOCK_DATA_DIR": str(tmp / "data")}
    )
    env.update(extra)
    return env


async def wait_until(
    predicate: Callable[[], Awaitable[bool]],
    timeout: float,
    message: str = "condition",
    interval: float = 0.25,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")
