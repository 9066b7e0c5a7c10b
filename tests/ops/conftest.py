"""Fixtures of the ops tests: the tools they run (Debian's prometheus, promtool and amtool extracted under
.tools/ by scripts/ensure-*.sh) and the Compose specification schema."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ops.catalogue import ROOT
from tests.ops.processes import CRYPTOSTOCK, ApiTraffic, Platform, start_platform, stop


def _ensure(script: str) -> Path:
    done = subprocess.run(
        ["bash", f"scripts/{script}"], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, f"scripts/{script} failed:\n{done.stdout}\n{done.stderr}"
    return Path(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def prometheus_bin() -> Path:
    """Directory holding `prometheus` and `promtool` (Prometheus 2.42 from Debian)."""
    return _ensure("ensure-prometheus.sh")


@pytest.fixture(scope="session")
def amtool() -> Path:
    return _ensure("ensure-alertmanager.sh") / "amtool"


@pytest.fixture(scope="session")
def compose_schema() -> Path:
    return _ensure("ensure-compose-schema.sh")


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """One `cryptostock run` (simulator, 200 trades/s, 1m bars) for a module's live tests, with traffic."""
    if not CRYPTOSTOCK.exists():
        pytest.fail(f"{CRYPTOSTOCK} is missing: run `make venv`")
    running = start_platform(tmp_path_factory.mktemp("platform"))
    try:
        with ApiTraffic(running.api_port):
            yield running
    finally:
        stop(running.process)
