"""What the platform exposes: loopback binds by default outside containers (checked on a running daemon's
listening sockets), explicit 0.0.0.0 binds inside containers, and a compose file that publishes only what
an operator must reach."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port
from tests.ops.catalogue import ROOT, load_yaml
from tests.ops.processes import CRYPTOSTOCK, stop
from tests.ops.test_systemd import DAEMONS, UNITS, environment, parse_unit, values

PUBLIC = {"api", "grafana"}  # what an operator must reach from elsewhere; everything else stays inside
ADMIN_FLAGS = ("--web.enable-lifecycle", "--web.enable-admin-api", "--web.enable-remote-write-receiver")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(ROOT / "docker-compose.yml")


def _published(port: object) -> tuple[str, str]:
    """A compose `ports` entry -> (host address, container port); the address is "" when not given."""
    if isinstance(port, dict):
        return str(port.get("host_ip", "")), str(port["target"])
    parts = re.sub(r"\$\{\w+:-(\w*)\}", r"\1", str(port)).split(":")  # ${API_PORT:-8000} -> 8000
    return (parts[0] if len(parts) == 3 else ""), parts[-1]


def test_only_the_api_and_grafana_are_published_beyond_the_host(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            address, _ = _published(port)
            if name not in PUBLIC:
                assert address == "127.0.0.1", f"{name} publishes {port} on every interface"
    assert {name for name, s in compose["services"].items() if s.get("ports")} >= PUBLIC


def test_prometheus_and_alertmanager_are_not_open(compose: dict[str, Any]) -> None:
    prometheus = compose["services"]["prometheus"]
    for flag in ADMIN_FLAGS:
        assert flag not in prometheus["command"], f"prometheus runs with {flag}"
    for name in ("prometheus", "alertmanager"):
        for port in compose["services"][name].get("ports", []):
            assert _published(port)[0] == "127.0.0.1", f"{name}: {port}"


def test_exporters_and_stores_are_never_published(compose: dict[str, Any]) -> None:
    for name in ("timescaledb", "redis", "postgres-exporter", "redis-exporter", "node-exporter"):
        assert not compose["services"][name].get("ports"), name


def test_platform_containers_bind_every_interface_explicitly(compose: dict[str, Any]) -> None:
    for name in ("collector-binance", "processor", "api"):
        env = compose["services"][name]["environment"]
        assert env["CRYPTOSTOCK_METRICS_ADDR"] == "0.0.0.0", name
    command = compose["services"]["api"]["command"]
    assert command[command.index("--host") + 1] == "0.0.0.0"


def test_dockerfile_binds_every_interface_through_settings() -> None:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    env = dict(re.findall(r"\b(CRYPTOSTOCK_[A-Z_]+)=(\S+)", text))
    assert env["CRYPTOSTOCK_METRICS_ADDR"] == "0.0.0.0"
    assert env["CRYPTOSTOCK_HOST"] == "0.0.0.0"  # `cryptostock api` (and `simulate`)
    assert env["CRYPTOSTOCK_API_HOST"] == "0.0.0.0"  # `cryptostock run`


@pytest.mark.parametrize("unit", sorted(DAEMONS))
def test_systemd_units_keep_the_loopback_defaults(unit: str) -> None:
    service = parse_unit(UNITS / unit)["Service"]
    command = values(service, "ExecStart")[0]
    assert "0.0.0.0" not in command and "--host" not in command and "--metrics-addr" not in command
    assert not {"CRYPTOSTOCK_HOST", "CRYPTOSTOCK_METRICS_ADDR"} & set(environment(service))
    example = (UNITS / "cryptostock.env.example").read_text()
    assert "#CRYPTOSTOCK_HOST=" in example and "#CRYPTOSTOCK_METRICS_ADDR=" in example


def _listening(port: int) -> set[str]:
    """The addresses a socket listens on `port` at, from /proc/net/tcp{,6} (state 0A = LISTEN)."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(_address(address, width))
    return found


def _address(hex_address: str, width: int) -> str:
    raw = bytes.fromhex(hex_address)
    if width == 8:
        return ".".join(str(b) for b in raw[::-1])
    words = [raw[i : i + 4][::-1] for i in range(0, 16, 4)]
    return ":".join(b"".join(words)[i : i + 2].hex() for i in range(0, 16, 2))


def test_api_daemon_binds_loopback_by_default(tmp_path: Path) -> None:
    api_port, metrics_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOSTOCK_")}
    command = [
        str(CRYPTOSTOCK), "api", "--in-process-bus", "--port", str(api_port),
        "--metrics-port", str(metrics_port), "--data-dir", str(tmp_path), "--log-dir", str(tmp_path),
    ]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert process.poll() is None, "cryptostock api exited"
            try:
                if httpx.get(f"http://127.0.0.1:{api_port}/livez", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert _listening(api_port) == {"127.0.0.1"}
        assert _listening(metrics_port) == {"127.0.0.1"}
    finally:
        stop(process)
