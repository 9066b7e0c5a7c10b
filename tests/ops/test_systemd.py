"""deploy/systemd: restartable daemons with their own metrics port and logs, agreeing with
prometheus.local.yml; `systemd-analyze verify` when it is installed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.ops.catalogue import ROOT, load_yaml

UNITS = ROOT / "deploy" / "systemd"
DAEMONS = {  # unit file -> (prometheus.local.yml job, cryptostock subcommand)
    "cryptostock-collector@.service": ("collectors", "collector"),
    "cryptostock-processor.service": ("processor", "processor"),
    "cryptostock-api.service": ("api", "api"),
}
EXEC = "/opt/cryptostock/.venv/bin/cryptostock"


def parse_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Sections -> (key, value) in order; systemd allows repeated keys, so no dict per section."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None, f"{path.name}: key outside a section: {line}"
        key, _, value = line.partition("=")
        current.append((key.strip(), value.strip()))
    return sections


def values(section: list[tuple[str, str]], key: str) -> list[str]:
    return [v for k, v in section if k == key]


def environment(section: list[tuple[str, str]]) -> dict[str, str]:
    env = {}
    for assignment in values(section, "Environment"):
        for item in assignment.split():
            name, _, value = item.partition("=")
            env[name] = value
    return env


def local_targets() -> dict[str, list[str]]:
    jobs = load_yaml(ROOT / "prometheus.local.yml")["scrape_configs"]
    return {job["job_name"]: [t for c in job["static_configs"] for t in c["targets"]] for job in jobs}


@pytest.mark.parametrize("unit", sorted(DAEMONS))
def test_daemon_units_are_restartable(unit: str) -> None:
    sections = parse_unit(UNITS / unit)
    service = sections["Service"]
    assert values(service, "Restart") == ["on-failure"]
    assert values(service, "KillSignal") == ["SIGTERM"]
    assert values(service, "TimeoutStopSec")
    assert "/etc/cryptostock/cryptostock.env" in values(service, "EnvironmentFile")
    assert values(service, "User") == ["cryptostock"]
    assert values(sections["Unit"], "PartOf") == ["cryptostock.target"]
    assert values(sections["Install"], "WantedBy") == ["cryptostock.target"]
    command = values(service, "ExecStart")[0].split()
    assert command[:2] == [EXEC, DAEMONS[unit][1]]


def test_metrics_ports_agree_with_prometheus_local_yml() -> None:
    targets = local_targets()
    ports = set()
    for unit, (job, _) in DAEMONS.items():
        port = environment(parse_unit(UNITS / unit)["Service"])["METRICS_PORT"]
        assert f"localhost:{port}" in targets[job], f"{unit}: port {port} is not scraped by job {job}"
        ports.add(port)
    assert len(ports) == len(DAEMONS), "each daemon has its own metrics port"
    assert "localhost:9091" not in {t for job, ts in targets.items() if job != "platform" for t in ts}


def test_each_daemon_logs_to_its_own_directory() -> None:
    log_dirs = set()
    for unit in DAEMONS:
        service = parse_unit(UNITS / unit)["Service"]
        log_dir = environment(service)["LOG_DIR"]
        assert log_dir.startswith("/var/log/cryptostock/")
        # systemd creates it for the service user: LogsDirectory is relative to /var/log.
        assert values(service, "LogsDirectory") == [log_dir.removeprefix("/var/log/")]
        log_dirs.add(log_dir)
    assert len(log_dirs) == len(DAEMONS)


def test_collector_instance_is_the_exchange() -> None:
    service = parse_unit(UNITS / "cryptostock-collector@.service")["Service"]
    command = values(service, "ExecStart")[0]
    assert "--exchange %i" in command
    assert "/etc/cryptostock/collector-%i.env" in [v.lstrip("-") for v in values(service, "EnvironmentFile")]


def test_target_wants_every_daemon() -> None:
    target = parse_unit(UNITS / "cryptostock.target")
    wanted = " ".join(values(target["Unit"], "Wants")).split()
    assert set(wanted) == {"cryptostock-collector@binance.service"} | {
        unit for unit in DAEMONS if "@" not in unit
    }


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    """No unknown keys or bad values; ExecStart points at this checkout's venv so the binary exists."""
    executable = ROOT / ".venv" / "bin" / "cryptostock"
    for unit in UNITS.glob("cryptostock*"):
        if unit.suffix in {".service", ".target"}:
            (tmp_path / unit.name).write_text(unit.read_text().replace(EXEC, str(executable)))
    done = subprocess.run(
        ["systemd-analyze", "verify", *sorted(str(p) for p in tmp_path.iterdir())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and not done.stderr.strip(), done.stdout + done.stderr
