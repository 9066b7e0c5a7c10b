"""What the ops files may refer to: the platform's metric names (from monitoring/metrics.py), recorded
series, exporter metrics, and the metric names a PromQL expression uses."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

from monitoring.metrics import PlatformMetrics

ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = ROOT / "prometheus" / "rules"
RULE_TESTS_DIR = ROOT / "prometheus" / "tests"
DASHBOARDS_DIR = ROOT / "grafana" / "dashboards"
EXPORTER_PREFIXES = {
    "node-exporter": ("node_",),
    "redis-exporter": ("redis_",),
    "postgres-exporter": ("pg_",),
}
PROMETHEUS_BUILTINS = {"up", "ALERTS", "ALERTS_FOR_STATE"}
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "by", "without", "on", "ignoring"}
_SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "info": ("_info",),
}


def platform_metric_names() -> set[str]:
    """Every sample name PlatformMetrics can expose (prometheus_client adds _total, _bucket...)."""
    registry = CollectorRegistry()
    PlatformMetrics(registry)
    names: set[str] = set()
    for family in registry.collect():
        names.update(family.name + suffix for suffix in _SUFFIXES[family.type])
    return names


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def rule_groups() -> dict[Path, list[dict[str, Any]]]:
    return {path: load_yaml(path)["groups"] for path in sorted(RULES_DIR.glob("*.yml"))}


def all_rules() -> list[dict[str, Any]]:
    return [rule for groups in rule_groups().values() for group in groups for rule in group["rules"]]


def alert_rules() -> list[dict[str, Any]]:
    return [rule for rule in all_rules() if "alert" in rule]


def recorded_names() -> set[str]:
    return {rule["record"] for rule in all_rules() if "record" in rule}


def substitute_grafana_variables(expr: str, exchange: str = ".*", symbol: str = ".*") -> str:
    """Grafana's variables as a query would reach Prometheus (windows short enough for a 1 s scrape)."""
    for name, value in (
        ("$__rate_interval", "1m"),
        ("$__range_s", "300"),
        ("$__range", "5m"),
        ("$__interval", "15s"),
        ("$exchange", exchange),
        ("$symbol", symbol),
    ):
        expr = expr.replace(name, value)
    return expr


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (functions, keywords and label names excluded)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', substitute_grafana_variables(expr))
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![0-9.])[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        token, rest = match.group(0), text[match.end() :].lstrip()
        if rest.startswith("(") or token in _KEYWORDS:
            continue
        names.add(token)
    return names


def dashboards() -> dict[str, dict[str, Any]]:
    import json

    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS_DIR.glob("*.json"))}


def panel_source(panel: dict[str, Any]) -> str | None:
    """The exporter feeding a panel, from its description tag `(source: <name>-exporter)`; None = platform."""
    match = re.search(r"\(source: ([a-z]+-exporter)\)", panel.get("description", ""))
    return match.group(1) if match else None
