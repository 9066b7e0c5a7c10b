"""A real Prometheus (Debian's 2.42 binary) scraping a running `cryptostock run` driven by its simulator.

1. "Try it" of docs/operations.md: Prometheus started from prometheus.local.yml (ports rewritten to this
   test's) loads every rule group and evaluates it with health ok; the binance collector target, pointed
   at the platform, keeps the samples' own `exchange` label and labels `up` with it.
2. Every Grafana panel's query evaluates through /api/v1/query, and every panel fed by the platform's own
   metrics returns data (exporter panels, tagged `(source: ...-exporter)`, only need to evaluate), with the
   variables at All, at each venue the platform runs, and at several venues selected.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port
from tests.ops.catalogue import (
    ROOT,
    VENUES,
    dashboards,
    load_yaml,
    panel_source,
    rule_groups,
    substitute_grafana_variables,
)
from tests.ops.processes import LIVE_VENUES, Platform, Prometheus, start_prometheus, stop

pytestmark = pytest.mark.integration
ZERO_TIME = "0001-01-01T00:00:00Z"


def local_config(platform: Platform, prometheus_port: int) -> dict[str, Any]:
    """prometheus.local.yml with this test's ports, 1 s intervals and absolute rule paths."""
    config = copy.deepcopy(load_yaml(ROOT / "prometheus.local.yml"))
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [str(ROOT / pattern) for pattern in config["rule_files"]]
    # The binance collector's target scrapes the platform (its collector is binance's); the rest is down.
    ports = {"9090": prometheus_port, "9091": platform.metrics_port, "9092": platform.metrics_port}
    for job in config["scrape_configs"]:
        job["scrape_interval"] = "1s"
        for static in job["static_configs"]:
            static["targets"] = [
                f"127.0.0.1:{ports.get(t.rsplit(':', 1)[1]) or free_port()}" for t in static["targets"]
            ]
    for manager in config["alerting"]["alertmanagers"]:
        manager["static_configs"][0]["targets"] = [f"127.0.0.1:{free_port()}"]
    return config


def wait_rules_evaluated(prometheus: Prometheus, timeout: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        groups: list[dict[str, Any]] = prometheus.api("rules")["groups"]
        evaluated = groups and all(
            group["lastEvaluation"] != ZERO_TIME and all(rule["health"] == "ok" for rule in group["rules"])
            for group in groups
        )
        if evaluated or time.monotonic() > deadline:
            return groups
        time.sleep(0.5)


def wait_query(prometheus: Prometheus, expr: str, timeout: float) -> list[dict[str, Any]]:
    """The query's result once it is not empty (empty after `timeout`)."""
    deadline = time.monotonic() + timeout
    while not (result := prometheus.query(expr)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return result


@pytest.mark.timeout(90)
def test_try_it_every_rule_group_is_loaded_and_evaluated(
    platform: Platform, prometheus_bin: Path, tmp_path: Path
) -> None:
    port = free_port()
    prometheus = start_prometheus(prometheus_bin, local_config(platform, port), tmp_path, port)
    try:
        groups = wait_rules_evaluated(prometheus, timeout=30)
        expected = {
            group["name"]: [rule.get("alert") or rule.get("record") for rule in group["rules"]]
            for groups_of_file in rule_groups().values()
            for group in groups_of_file
        }
        assert {group["name"]: [rule["name"] for rule in group["rules"]] for group in groups} == expected
        for group in groups:
            assert group["lastEvaluation"] != ZERO_TIME, group["name"]
            for rule in group["rules"]:
                assert rule["health"] == "ok", f"{rule['name']}: {rule.get('lastError')}"
        # It scrapes the running platform; the separate daemons' jobs are down, so TargetDown is pending.
        assert wait_query(prometheus, 'up{job="platform"} == 1', timeout=15)
        assert wait_query(prometheus, 'up{job="collectors", exchange="binance"} == 1', timeout=15)
        assert wait_query(
            prometheus, 'trades_received_total{job="collectors", exchange="binance"}', timeout=15
        )
        assert not prometheus.query('{job="collectors", exported_exchange=~".+"}'), "honor_labels is off"
        pending = wait_query(prometheus, 'ALERTS{alertname="TargetDown", job="processor"}', timeout=15)
        assert [alert["metric"]["alertstate"] for alert in pending] == ["pending"]
    finally:
        stop(prometheus.process)


def panel_queries() -> list[tuple[str, str, str, bool]]:
    """(dashboard, panel title, expression, must return data) for every target of every panel."""
    return [
        (board["uid"], panel["title"], target["expr"], panel_source(panel) is None)
        for board in dashboards().values()
        for panel in board["panels"]
        for target in panel["targets"]
    ]


# (exchange, symbol) as Grafana substitutes them: All, one symbol, each venue, several venues selected.
SELECTIONS = [
    (".*", ".*"),
    ("binance", "BTC-USDT"),
    *((venue, ".*") for venue in LIVE_VENUES),
    ("(" + "|".join(venue.name for venue in VENUES) + ")", ".*"),
]


def evaluate_panels(prometheus: Prometheus) -> tuple[list[str], list[str]]:
    """(evaluation errors, platform queries without data) for every selection of the variables."""
    errors, empty = [], []
    for uid, title, expr, needs_data in panel_queries():
        try:
            results = [
                prometheus.query(substitute_grafana_variables(expr, exchange=exchange, symbol=symbol))
                for exchange, symbol in SELECTIONS
            ]
        except AssertionError as exc:
            errors.append(f"{uid} / {title}: {exc}")
            continue
        if needs_data and not all(results):
            empty.append(f"{uid} / {title}: {expr}")
    return errors, empty


@pytest.mark.timeout(150)
def test_every_dashboard_panel_query_is_real(
    platform: Platform, prometheus_bin: Path, tmp_path: Path
) -> None:
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ROOT / "prometheus" / "rules" / "*.yml")],
        "scrape_configs": [
            {"job_name": "platform", "static_configs": [{"targets": [f"127.0.0.1:{platform.metrics_port}"]}]}
        ],
    }
    prometheus = start_prometheus(prometheus_bin, config, tmp_path, port)
    try:
        # The first 1m bar closes up to a minute (plus grace) after the platform started.
        deadline = platform.started + 100
        while True:
            errors, empty = evaluate_panels(prometheus)
            assert not errors, "\n".join(errors)
            if not empty or time.monotonic() > deadline:
                break
            time.sleep(2)
        assert not empty, "panels without data:\n" + "\n".join(empty)
        exchanges = prometheus.api("label/exchange/values", **{"match[]": "trades_received_total"})
        symbols = prometheus.api(
            "label/symbol/values", **{"match[]": 'trades_received_total{exchange=~".*"}'}
        )
        assert set(LIVE_VENUES) <= set(exchanges) and "BTC-USDT" in symbols
    finally:
        stop(prometheus.process)
