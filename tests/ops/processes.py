"""Real processes for the live ops tests: the all-in-one platform (`cryptostock run` driven by its
simulator), API traffic against it, and Prometheus (Debian's binary) with a generated configuration."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from collectors.registry import ADAPTERS
from tests.conftest import free_port
from tests.ops.catalogue import ROOT, VENUES

CRYPTOSTOCK = ROOT / ".venv" / "bin" / "cryptostock"
API_PATHS = (
    "/livez",
    "/readyz",
    "/api/v1/symbols",
    "/api/v1/bars/latest?exchange=binance&symbol=BTC-USDT&timeframe=1m",
    "/api/v1/bars/latest?exchange=binance&symbol=ETH-USDT&timeframe=1m",
    "/api/v1/bars?exchange=binance&symbol=BTC-USDT&timeframe=1m&limit=5",
    "/api/v1/trades?exchange=binance&symbol=BTC-USDT&limit=5",
)
# The catalogued venues the platform can collect from (once an adapter is registered, its venue runs
# in the live tests too, each on its own simulator).
LIVE_VENUES = tuple(venue.name for venue in VENUES if venue.name in ADAPTERS)


def stop(process: subprocess.Popen[bytes], grace: float = 20.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def wait_http(
    url: str, process: subprocess.Popen[bytes], log: Path, timeout: float, needle: str = ""
) -> None:
    """Until `url` answers 200 (containing `needle`); fails early if the process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"process exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200 and needle in response.text:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within {timeout}s:\n{log.read_text()[-4000:]}")


@dataclass
class Platform:
    process: subprocess.Popen[bytes]
    metrics_port: int
    api_port: int
    log: Path
    started: float


def start_platform(workdir: Path) -> Platform:
    """`cryptostock run` per its CLI contract: per venue a simulator and a collector, processor, API;
    metrics on one port."""
    metrics_port, api_port, sim_port = free_port(), free_port(), free_port()
    log = workdir / "platform.out"
    command = [
        str(CRYPTOSTOCK), "run",
        "--api-port", str(api_port), "--metrics-port", str(metrics_port), "--sim-port", str(sim_port),
        "--data-dir", str(workdir / "data"), "--tps", "200", "--timeframes", "1m", "--grace-seconds", "1",
        "--exchange", ",".join(LIVE_VENUES),
    ]  # fmt: skip
    env = {**os.environ, "LOG_DIR": str(workdir / "logs")}
    for name in ("DATABASE_URL", "REDIS_URL", "METRICS_PORT"):
        env.pop(name, None)
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT)
    platform = Platform(process, metrics_port, api_port, log, time.monotonic())
    try:
        wait_http(
            f"http://127.0.0.1:{metrics_port}/metrics", process, log, 30, needle="trades_received_total{"
        )
    except BaseException:
        stop(process)
        raise
    return platform


class ApiTraffic:
    """Requests to the platform's API a few times a second (HTTP, cache and database metrics)."""

    def __init__(self, api_port: int) -> None:
        self._base = f"http://127.0.0.1:{api_port}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="api-traffic", daemon=True)
        self.responses = 0

    def __enter__(self) -> ApiTraffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        with httpx.Client(base_url=self._base, timeout=5) as client:
            while not self._stop.is_set():
                for path in API_PATHS:
                    try:
                        client.get(path)
                        self.responses += 1
                    except httpx.HTTPError:
                        pass
                self._stop.wait(0.2)


@dataclass
class Prometheus:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def api(self, path: str, **params: Any) -> Any:
        response = httpx.get(f"http://127.0.0.1:{self.port}/api/v1/{path}", params=params, timeout=10)
        body = response.json()
        assert body["status"] == "success", f"{path} {params}: {body}"
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; raises AssertionError with Prometheus's message when the expression fails."""
        response = httpx.get(f"http://127.0.0.1:{self.port}/api/v1/query", params={"query": expr}, timeout=10)
        body = response.json()
        if body.get("status") != "success":
            raise AssertionError(f"{expr!r}: {body.get('errorType')}: {body.get('error')}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result


def start_prometheus(prometheus_bin: Path, config: dict[str, Any], workdir: Path, port: int) -> Prometheus:
    """Prometheus on 127.0.0.1:`port` with `config` (written to workdir), ready to answer queries."""
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    log = workdir / "prometheus.out"
    command = [
        str(prometheus_bin / "prometheus"),
        f"--config.file={config_path}",
        f"--storage.tsdb.path={workdir / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/-/ready", process, log, 30)
    except BaseException:
        stop(process)
        raise
    return Prometheus(process, port, log)
