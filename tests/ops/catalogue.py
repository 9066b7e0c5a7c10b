"""What the ops files may refer to: the venues they deploy a collector for, the platform's metric names
(from monitoring/metrics/), recorded series, exporter metrics, and the metric names a PromQL expression
uses."""

from __future__ import annotations

import re
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Venue:
    """A venue the deployment runs a collector for. `name` is its key in collectors.registry.ADAPTERS;
    `metrics_port` is its collector's port in docker-compose.yml and under systemd alike;
    `default_symbols` are its adapter's `default_symbols` (what its collector collects by default, in the
    venue's spelling)."""

    name: str
    metrics_port: int
    default_symbols: tuple[str, ...]

    @property
    def service(self) -> str:
        """Its docker-compose service (and host name in prometheus.yml)."""
        return f"collector-{self.name}"

    @property
    def symbols_variable(self) -> str:
        """Its symbols in .env for docker-compose."""
        return f"{self.name.upper()}_SYMBOLS"

    @property
    def unit(self) -> str:
        return f"cryptostock-collector@{self.name}.service"

    @property
    def env_file(self) -> str:
        """Its systemd instance's settings (shipped as deploy/systemd/collector-<name>.env.example)."""
        return f"/etc/cryptostock/collector-{self.name}.env"


# Adding a venue here is one line; the ops tests then name every file that still lacks it.
VENUES = (
    Venue("binance", 9092, ("BTCUSDT", "ETHUSDT")),
    Venue("coinbase", 9097, ("BTC-USD", "ETH-USD")),
    Venue("okx", 9098, ("BTC-USDT", "ETH-USDT")),
    Venue("kraken", 9099, ("BTC/USD", "ETH/USD")),
    Venue("bybit", 9101, ("BTCUSDT", "ETHUSDT")),  # 9100 is node-exporter's
)
# Registered adapters that are products of a venue above, not deployed by default (run one with
# `cryptostock-collector@binance_futures` and its own env file if needed).
NOT_DEPLOYED = {"binance_futures", "binance_delivery"}
# Ports taken on one host by something other than a collector (docs/operations.md).
RESERVED_PORTS = {
    9090: "prometheus",
    9091: "cryptostock run",
    9093: "processor",
    9094: "api",
    9095: "cryptostock simulate",
    9096: "alertmanager (one host)",
    9100: "node-exporter",
    9121: "redis-exporter",
    9187: "postgres-exporter",
}
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


def env_file(text: str) -> dict[str, str]:
    """KEY=value lines of an env file (comments and blank lines skipped)."""
    pairs = (line.split("=", 1) for line in text.splitlines() if line.strip() and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


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
