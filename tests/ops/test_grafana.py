"""grafana/: provisioning and the four dashboards, checked statically. (tests/ops/test_live_prometheus.py
runs every panel's query against a real Prometheus scraping the platform.)"""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from monitoring.metrics import PlatformMetrics
from tests.ops.catalogue import (
    _SUFFIXES,
    EXPORTER_PREFIXES,
    ROOT,
    dashboards,
    load_yaml,
    metric_names,
    panel_source,
    platform_metric_names,
    recorded_names,
)

DATASOURCE_UID = "cryptostock-prometheus"
UIDS = {
    "main-operational.json": "cryptostock-main",
    "data-quality.json": "cryptostock-data-quality",
    "circuit-breakers.json": "cryptostock-circuit-breakers",
    "database-cache.json": "cryptostock-database-cache",
}
REQUIRED_PANELS = {
    "cryptostock-main": {
        "Trades per second by exchange",
        "Connection status by exchange",
        "Gaps and backfill by exchange",
        "Parse errors by exchange and error type",
        "Bar completion p95",
        "Indicator calculation p99",
        "API request rate",
        "WebSocket connections",
        "Error rate by component",
    },
    "cryptostock-data-quality": {
        "Quality score per symbol",
        "Checks passed vs failed",
        "Anomalies over time",
        "Volume sanity failures",
    },
    "cryptostock-circuit-breakers": {
        "Circuit states",
        "Transitions over time",
        "Time open in the selected range",
    },
    "cryptostock-database-cache": {"Query latency p95", "Connection pool", "Cache hit rate", "Redis memory"},
}
BOARDS = dashboards()


def test_datasource_provisioning_has_a_fixed_uid() -> None:
    config = load_yaml(ROOT / "grafana" / "provisioning" / "datasources" / "prometheus.yml")
    (source,) = config["datasources"]
    assert source["type"] == "prometheus" and source["uid"] == DATASOURCE_UID
    assert source["url"] == "http://prometheus:9090"


def test_dashboard_provider_reads_files() -> None:
    (provider,) = load_yaml(ROOT / "grafana" / "provisioning" / "dashboards" / "cryptostock.yml")["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/etc/grafana/dashboards"


def test_four_dashboards_with_stable_uids() -> None:
    assert {name: board["uid"] for name, board in BOARDS.items()} == UIDS


def test_committed_json_is_what_the_builder_makes() -> None:
    done = subprocess.run(
        [sys.executable, "scripts/build_dashboards.py", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("name", sorted(UIDS))
def test_bare_classic_model(name: str) -> None:
    board = BOARDS[name]
    assert "dashboard" not in board, "provisioned as is: not wrapped in {'dashboard': ...}"
    assert board["id"] is None and board["title"] and board["schemaVersion"] >= 36
    assert REQUIRED_PANELS[board["uid"]] <= {panel["title"] for panel in board["panels"]}
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("name", sorted(UIDS))
def test_template_variables(name: str) -> None:
    variables = {v["name"]: v for v in BOARDS[name]["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["datasource"]["current"]["value"] == DATASOURCE_UID
    for label in ("exchange", "symbol"):
        query = variables[label]["query"]["query"]
        assert query.startswith("label_values(") and query.endswith(f", {label})")
        assert variables[label]["datasource"]["uid"] == "${datasource}"
        assert variables[label]["includeAll"] and variables[label]["allValue"] == ".*"
        # Multi-select, all selected by default: Grafana then sends `(a|b)` to the =~ matchers.
        assert variables[label]["multi"] and variables[label]["current"]["value"] == ["$__all"]


def _panels() -> list[tuple[str, dict[str, Any]]]:
    return [(name, panel) for name, board in BOARDS.items() for panel in board["panels"]]


@pytest.mark.parametrize(("name", "panel"), _panels(), ids=lambda v: v["title"] if isinstance(v, dict) else v)
def test_panel_queries_use_real_metrics(name: str, panel: dict[str, Any]) -> None:
    assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    assert panel["targets"]
    source = panel_source(panel)
    platform = platform_metric_names() | recorded_names()
    for target in panel["targets"]:
        assert target["datasource"]["uid"] == "${datasource}"
        names = metric_names(target["expr"])
        assert names, target["expr"]
        if source is None:
            assert names <= platform, f"{panel['title']}: {names - platform}"
        else:
            # An exporter panel queries only that exporter's metrics.
            assert all(n.startswith(EXPORTER_PREFIXES[source]) for n in names), f"{panel['title']}: {names}"


def exchange_series() -> set[str]:
    """Series with an `exchange` label: the platform's metrics declaring one, and exchange-level records."""
    metrics = PlatformMetrics(CollectorRegistry())
    names = {
        metric._name + suffix
        for metric in vars(metrics).values()
        if "exchange" in getattr(metric, "_labelnames", ())
        for suffix in _SUFFIXES[metric._type]
    }
    return names | {name for name in recorded_names() if name.split(":")[0].startswith("exchange")}


def test_exchange_series_are_known() -> None:
    assert {
        "trades_received_total",
        "collector_status",
        "exchange:trades_received:rate5m",
    } <= exchange_series()
    assert "bus_queue_depth" not in exchange_series()


@pytest.mark.parametrize(("name", "panel"), _panels(), ids=lambda v: v["title"] if isinstance(v, dict) else v)
def test_panels_of_exchange_series_follow_the_exchange_variable(name: str, panel: dict[str, Any]) -> None:
    """Every selector of a series with an `exchange` label keeps only the exchanges the variable selects."""
    series = exchange_series()
    for target in panel["targets"]:
        for match in re.finditer(r"(?<![\w:])([a-zA-Z_:][\w:]*)(\{[^}]*\})?", target["expr"]):
            if match.group(1) in series:
                assert 'exchange=~"$exchange"' in (match.group(2) or ""), (
                    f"{panel['title']}: {match.group(0)}"
                )


def test_exporter_panels_cover_node_redis_and_postgres() -> None:
    sources = {panel_source(panel) for _, panel in _panels()}
    assert set(EXPORTER_PREFIXES) <= sources
    redis = next(p for _, p in _panels() if p["title"] == "Redis memory")
    assert "redis_memory_used_bytes" in redis["targets"][0]["expr"]


def test_volume_sanity_panel_queries_failed_volume_sanity_checks() -> None:
    panel = next(p for _, p in _panels() if p["title"] == "Volume sanity failures")
    assert 'data_quality_checks_total{check="volume_sanity", result="failed"}' in panel["targets"][0]["expr"]
