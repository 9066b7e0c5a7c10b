"""What `cryptostock run` shows the person who started it: on a terminal (a real pty) the banner with
the URLs, then status lines with trades/s and the first bar; through a pipe the banner only."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.integration.procs import CRYPTOSTOCK, ROOT, base_env

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


def _run_args(tmp_path: Path) -> tuple[list[str], int]:
    api_port = free_port()
    args = [
        *CRYPTOSTOCK, "run", "--api-port", str(api_port), "--metrics-port", str(free_port()),
        "--sim-port", str(free_port()), "--timeframes", "1s,1m", "--grace-seconds", "0.2", "--tps", "50",
    ]  # fmt: skip
    return args, api_port


def _read_for(fd: int, seconds: float, until: str) -> str:
    out, deadline = b"", time.monotonic() + seconds
    while time.monotonic() < deadline and until.encode() not in out:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                out += os.read(fd, 65536)
            except OSError:
                break
    return out.decode(errors="replace")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)
    assert process.wait(20) == 0


def test_a_terminal_sees_the_banner_then_status_lines(tmp_path: Path) -> None:
    args, api_port = _run_args(tmp_path)
    master, slave = pty.openpty()
    env = base_env(tmp_path, CRYPTOSTOCK_STATUS_INTERVAL="0.5")
    process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=slave, stderr=subprocess.DEVNULL)
    os.close(slave)
    try:
        text = _read_for(master, 40, until="first bar closed")
    finally:
        _stop(process)
        os.close(master)
    assert f"live page  http://127.0.0.1:{api_port}/" in text, text
    assert f"API docs   http://127.0.0.1:{api_port}/docs" in text
    statuses = [line for line in text.splitlines() if "trades/s" in line]
    assert statuses and "bars closed" in statuses[0] and "lag" in statuses[0], text
    assert "first bar closed" in text, text
    assert text.index("cryptostock is running") < text.index("trades/s")  # the banner comes first


def test_a_pipe_sees_the_banner_only(tmp_path: Path) -> None:
    args, api_port = _run_args(tmp_path)
    env = base_env(tmp_path, CRYPTOSTOCK_STATUS_INTERVAL="0.5")
    process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdout is not None
    try:
        text = _read_for(process.stdout.fileno(), 30, until="Ctrl-C stops it")
        time.sleep(1.5)  # three status intervals
    finally:
        _stop(process)
    text += process.stdout.read().decode()
    assert f"live page  http://127.0.0.1:{api_port}/" in text, text
    assert "trades/s" not in text
