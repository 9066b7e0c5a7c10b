"""A slowloris against a real `cryptostock api` daemon: the daemon runs under the usual 1,024 file
descriptor limit, the attacker opens idle half-requests (a request line and one header, never the blank
line that ends the head) and a probe times /livez meanwhile. Used by tests/api/test_slowloris.py and
bench/bench_slowloris.py."""

from __future__ import annotations

import http.client
import os
import resource
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from tests.api.rawhttp import HALF_REQUEST
from tests.conftest import ROOT, free_port

CRYPTOSTOCK = ROOT / ".venv" / "bin" / "cryptostock"
DAEMON_FILE_LIMIT = 1024


@dataclass(frozen=True)
class Daemon:
    api_port: int
    metrics_port: int

    def url(self, port: int, path: str) -> str:
        return f"http://127.0.0.1:{port}{path}"


def _limit_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (DAEMON_FILE_LIMIT, DAEMON_FILE_LIMIT))


@contextmanager
def api_daemon(workdir: Path, executable: Path = CRYPTOSTOCK) -> Iterator[Daemon]:
    """`cryptostock api` (SQLite, in-process bus) with RLIMIT_NOFILE 1024, ready when this yields;
    `executable`: another checkout's, to measure it."""
    daemon = Daemon(free_port(), free_port())
    command = [
        str(executable), "api", "--in-process-bus", "--port", str(daemon.api_port),
        "--metrics-port", str(daemon.metrics_port), "--data-dir", str(workdir), "--log-dir", str(workdir),
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRYPTOSTOCK_", "DATABASE_", "REDIS_"))}
    log = (workdir / "api.out").open("wb")
    process = subprocess.Popen(
        command, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_limit_files
    )
    try:
        _wait_ready(daemon, process)
        yield daemon
    finally:
        process.terminate()
        process.wait(30)
        log.close()


def _wait_ready(daemon: Daemon, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"cryptostock api exited with {process.returncode}")
        if probe(daemon.url(daemon.api_port, "/readyz"))[0] == 200:
            return
        time.sleep(0.2)
    raise AssertionError("cryptostock api did not become ready")


def probe(url: str, timeout: float = 10.0) -> tuple[int | str, float]:
    """(status or the error's name, seconds) of one GET on a new connection (http.client: no client
    set-up in the time measured)."""
    address = urlsplit(url)
    started = time.perf_counter()
    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=timeout)
    try:
        connection.request("GET", address.path)
        response = connection.getresponse()
        response.read()
        status: int | str = response.status
    except OSError as exc:
        status = type(exc).__name__
    finally:
        connection.close()
    return status, time.perf_counter() - started


def raise_own_file_limit(needed: int) -> None:
    """The attacker needs a descriptor per connection (the usual soft limit is 1,024)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))


@contextmanager
def half_requests(port: int, count: int) -> Iterator[int]:
    """Open `count` idle half-requests to `port` (fewer if the server stops accepting); yields how many
    were opened, closes them on exit."""
    with ExitStack() as stack:
        opened = 0
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.settimeout(5)
            try:
                sock.connect(("127.0.0.1", port))
                sock.sendall(HALF_REQUEST)
            except OSError:
                break
            opened += 1
        time.sleep(0.5)  # let the server accept (and shed) them all
        yield opened
