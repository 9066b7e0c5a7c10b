"""Every venue of VENUES (tests/ops/catalogue.py) is deployed everywhere: its docker-compose service, its
target in both Prometheus configurations, its .env.example variable, its systemd env file example and its
rows in the docs. Adding a venue is one line in VENUES; these tests then name each file that lacks it."""

from __future__ import annotations

import re
from typing import Any

import pytest

from collectors.registry import ADAPTERS, create_adapter
from tests.ops.catalogue import NOT_DEPLOYED, RESERVED_PORTS, ROOT, VENUES, Venue, env_file, load_yaml

COMPOSE = load_yaml(ROOT / "docker-compose.yml")
SYSTEMD = ROOT / "deploy" / "systemd"
REGISTERED = [venue for venue in VENUES if venue.name in ADAPTERS]


def by_name(venue: Venue) -> str:
    return venue.name


def collector_targets(config: str) -> list[dict[str, Any]]:
    """The static_configs of the `collectors` job; it keeps the collectors' own `exchange` labels."""
    (job,) = [job for job in load_yaml(ROOT / config)["scrape_configs"] if job["job_name"] == "collectors"]
    # Without honor_labels the target label would rename every sample's exchange to exported_exchange.
    assert job.get("honor_labels") is True, f"{config}: the collectors job needs honor_labels: true"
    static_configs: list[dict[str, Any]] = job["static_configs"]
    return static_configs


def test_every_registered_venue_is_catalogued() -> None:
    missing = set(ADAPTERS) - NOT_DEPLOYED - {venue.name for venue in VENUES}
    assert not missing, f"registered adapters without a line in VENUES (tests/ops/catalogue.py): {missing}"


def test_venue_ports_are_distinct_and_free_on_one_host() -> None:
    ports = [venue.metrics_port for venue in VENUES]
    assert len(set(ports)) == len(ports), ports
    taken = {port: RESERVED_PORTS[port] for port in ports if port in RESERVED_PORTS}
    assert not taken, f"collector ports taken by other processes: {taken}"


@pytest.mark.parametrize("venue", REGISTERED, ids=by_name)
def test_default_symbols_are_the_adapters(venue: Venue) -> None:
    assert create_adapter(venue.name).default_symbols == venue.default_symbols


@pytest.mark.parametrize("venue", VENUES, ids=by_name)
def test_compose_service(venue: Venue) -> None:
    service = COMPOSE["services"].get(venue.service)
    assert service, f"docker-compose.yml has no service {venue.service}"
    default = ",".join(venue.default_symbols)
    assert service["command"] == [
        "collector",
        "--exchange",
        venue.name,
        "--symbols",
        f"${{{venue.symbols_variable}:-{default}}}",
    ]
    assert service["environment"]["METRICS_PORT"] == str(venue.metrics_port)
    assert service["expose"] == [str(venue.metrics_port)]
    assert {"redis", "timescaledb"} <= set(service["depends_on"])
    assert "METRICS_PORT" in " ".join(service["healthcheck"]["test"])


def test_compose_runs_no_uncatalogued_collector() -> None:
    collectors = {name for name in COMPOSE["services"] if name.startswith("collector-")}
    assert collectors == {venue.service for venue in VENUES}


@pytest.mark.parametrize("venue", VENUES, ids=by_name)
@pytest.mark.parametrize(
    ("config", "host"), [("prometheus.yml", "service"), ("prometheus.local.yml", "localhost")]
)
def test_prometheus_scrapes_the_venue(venue: Venue, config: str, host: str) -> None:
    address = f"{venue.service if host == 'service' else host}:{venue.metrics_port}"
    expected = {"targets": [address], "labels": {"exchange": venue.name}}
    assert expected in collector_targets(config), f"{config}: add {expected} to the collectors job"


@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus.local.yml"])
def test_prometheus_scrapes_no_uncatalogued_collector(config: str) -> None:
    assert {c["labels"]["exchange"] for c in collector_targets(config)} == {v.name for v in VENUES}


@pytest.mark.parametrize("venue", VENUES, ids=by_name)
def test_env_example_has_the_venue_symbols(venue: Venue) -> None:
    text = (ROOT / ".env.example").read_text()
    line = f"{venue.symbols_variable}={','.join(venue.default_symbols)}"
    assert re.search(rf"^{re.escape(line)}$", text, re.MULTILINE), f".env.example lacks {line}"


@pytest.mark.parametrize("venue", VENUES, ids=by_name)
def test_systemd_env_file_example(venue: Venue) -> None:
    path = SYSTEMD / f"collector-{venue.name}.env.example"
    assert path.is_file(), f"ship {path.relative_to(ROOT)} (installed as {venue.env_file})"
    text = path.read_text()
    assert env_file(text) == {"METRICS_PORT": str(venue.metrics_port)}
    # Symbols stay commented out (the venue's defaults): an empty CRYPTOSTOCK_SYMBOLS is rejected.
    assert f"\n#CRYPTOSTOCK_SYMBOLS={','.join(venue.default_symbols)}\n" in text


def test_no_systemd_env_file_without_a_venue() -> None:
    shipped = {path.name for path in SYSTEMD.glob("collector-*.env.example")}
    assert shipped == {f"collector-{venue.name}.env.example" for venue in VENUES}


def _table_row(text: str, first_cell: str) -> list[str]:
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no table row for {first_cell}")


@pytest.mark.parametrize("venue", VENUES, ids=by_name)
def test_docs_list_the_venue(venue: Venue) -> None:
    row = _table_row((ROOT / "docs" / "operations.md").read_text(), venue.name)
    assert row == [
        venue.name,
        f"`{venue.service}`",
        f"`{venue.symbols_variable}`",
        f"`{venue.unit.removesuffix('.service')}`",
        f"`{venue.env_file}`",
        str(venue.metrics_port),
        ",".join(venue.default_symbols),
    ]
    assert f"{venue.name} {venue.metrics_port}" in (ROOT / "docs" / "runbooks.md").read_text()
