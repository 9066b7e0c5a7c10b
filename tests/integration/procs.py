"""Starting the platform's real daemons as subprocesses for integration tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

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
    extra: dict[str, int] = field(default_factory=dict)

    def start(self) -> Daemon:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [*CRYPTOSTOCK, *self.args, "--metrics-port", str(self.metrics_port)],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        return self

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}"

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.assert_running()
            try:
                with urllib.request.urlopen(f"{self.metrics_url}/readyz", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        raise AssertionError(f"{self.name} not ready after {timeout}s\n{self.output()}")

    def assert_running(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"{self.name} exited with {self.process.returncode}\n{self.output()}")

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        """Sum of the samples of `name` whose labels include `labels` (0 when absent)."""
        with urllib.request.urlopen(f"{self.metrics_url}/metrics", timeout=5) as response:
            text = response.read().decode()
        return metric_value(text, name, labels or {})

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 15.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise AssertionError(f"{self.name} ignored {sig.name} for {timeout}s\n{self.output()}") from None
        return self.process.returncode

    def output(self) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text[-6000:]


def metric_value(exposition: str, name: str, labels: dict[str, str]) -> float:
    total = 0.0
    for line in exposition.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, label_text = head.partition("{")
        if metric != name:
            continue
        if all(f'{k}="{v}"' in label_text for k, v in labels.items()):
            total += float(value)
    return total


def http_json(url: str, timeout: float = 5.0) -> tuple[int, object]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def base_env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "METRICS_PORT"}}
    env.update({"LOG_DIR": str(tmp / "logs"), "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


def wait_for(predicate, timeout: float, interval: float = 0.25, message: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")
