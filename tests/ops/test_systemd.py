"""deploy/systemd: restartable daemons with their own metrics port and logs, agreeing with
prometheus.local.yml; a collector instance for any exchange, its settings from its own env file;
`systemd-analyze verify` when it is installed."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from collectors.registry import ADAPTERS
from cryptostock.settings import CollectorSettings
from tests.ops.catalogue import ROOT, VENUES, Venue, env_file, load_yaml

UNITS = ROOT / "deploy" / "systemd"
DAEMONS = {  # unit file -> (prometheus.local.yml job, cryptostock subcommand)
    "cryptostock-collector@.service": ("collectors", "collector"),
    "cryptostock-processor.service": ("processor", "processor"),
    "cryptostock-api.service": ("api", "api"),
}
EXEC = "/opt/cryptostock/.venv/bin/cryptostock"
COLLECTOR = UNITS / "cryptostock-collector@.service"


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
    """The processor's and the API's ports are in their units, each collector's in its env file
    (tests/ops/test_venues.py checks those against the collectors job)."""
    targets = local_targets()
    ports = {str(venue.metrics_port) for venue in VENUES}
    for unit, (job, _) in DAEMONS.items():
        if unit == COLLECTOR.name:
            assert "METRICS_PORT" not in environment(parse_unit(COLLECTOR)["Service"]), "set per instance"
            continue
        port = environment(parse_unit(UNITS / unit)["Service"])["METRICS_PORT"]
        assert f"localhost:{port}" in targets[job], f"{unit}: port {port} is not scraped by job {job}"
        ports.add(port)
    assert len(ports) == len(DAEMONS) - 1 + len(VENUES), "each daemon has its own metrics port"
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


def systemd_command(line: str, instance: str) -> list[str]:
    """An Exec line's arguments as systemd passes them for `instance` (%i expanded, $$ unescaped)."""
    return [arg.replace("%i", instance).replace("$$", "$") for arg in shlex.split(line)]


def test_collector_command_for_any_exchange() -> None:
    """The instance name is the exchange; the symbols are not on the command line, so that an exchange
    without CRYPTOSTOCK_SYMBOLS collects its own defaults (the old unit passed Binance's to every one)."""
    service = parse_unit(COLLECTOR)["Service"]
    for instance in ("binance", "coinbase", "kraken"):
        (line,) = values(service, "ExecStart")
        assert systemd_command(line, instance) == [EXEC, "collector", "--exchange", instance]
    # Its own env file is required: without it the instance would take another's metrics port.
    assert "/etc/cryptostock/collector-%i.env" in values(service, "EnvironmentFile")


@pytest.mark.parametrize(
    ("old_setting", "starts"), [({"COLLECTOR_SYMBOLS": "BTCUSDT,SOLUSDT"}, False), ({}, True)]
)
def test_collector_refuses_the_old_symbols_setting(old_setting: dict[str, str], starts: bool) -> None:
    """An env file of the earlier unit (COLLECTOR_SYMBOLS) stops the start instead of being ignored."""
    (line,) = values(parse_unit(COLLECTOR)["Service"], "ExecStartPre")
    done = subprocess.run(
        systemd_command(line, "binance"), env=old_setting, capture_output=True, text=True, timeout=10
    )
    assert (done.returncode == 0) == starts, done.stderr
    if not starts:
        assert (
            "CRYPTOSTOCK_SYMBOLS" in done.stderr and "/etc/cryptostock/collector-binance.env" in done.stderr
        )


@pytest.mark.parametrize("venue", [v for v in VENUES if v.name in ADAPTERS], ids=lambda v: v.name)
@pytest.mark.parametrize("symbols", [False, True], ids=["defaults", "symbols"])
def test_collector_settings_read_the_env_file(
    venue: Venue, symbols: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shipped example, as is and with its symbols line uncommented, read by the real settings class
    as the unit's ExecStart runs it (`--exchange %i`, everything else from the environment)."""
    text = (UNITS / f"collector-{venue.name}.env.example").read_text()
    if symbols:
        text = text.replace("#CRYPTOSTOCK_SYMBOLS=", "CRYPTOSTOCK_SYMBOLS=")
    for name in ("METRICS_PORT", "CRYPTOSTOCK_SYMBOLS", "CRYPTOSTOCK_METRICS_PORT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env_file(text).items():
        monkeypatch.setenv(name, value)
    settings = CollectorSettings(exchange=venue.name)
    assert settings.metrics_port == venue.metrics_port
    assert settings.symbols == (list(venue.default_symbols) if symbols else None)


def test_target_wants_the_daemons_and_collectors_are_enabled_per_exchange() -> None:
    target = parse_unit(UNITS / "cryptostock.target")
    wanted = " ".join(values(target["Unit"], "Wants")).split()
    assert set(wanted) == {unit for unit in DAEMONS if "@" not in unit}
    # Enabling an instance (systemctl enable cryptostock-collector@okx) makes the target want it.
    assert values(parse_unit(COLLECTOR)["Install"], "WantedBy") == ["cryptostock.target"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    """No unknown keys or bad values; ExecStart points at this checkout's venv so the binary exists."""
    executable = ROOT / ".venv" / "bin" / "cryptostock"
    for unit in UNITS.glob("cryptostock*"):
        if unit.suffix in {".service", ".target"}:
            (tmp_path / unit.name).write_text(unit.read_text().replace(EXEC, str(executable)))
    # An instance for an exchange the repository does not name yet: the template serves any.
    instances = [str(tmp_path / f"cryptostock-collector@{name}.service") for name in ("okx", "kraken")]
    done = subprocess.run(
        ["systemd-analyze", "verify", *sorted(str(p) for p in tmp_path.iterdir()), *instances],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and not done.stderr.strip(), done.stdout + done.stderr
