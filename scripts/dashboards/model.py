"""The Grafana dashboard model the dashboard modules build on: `Panel`, `dashboard()` (layout, template
variables, the classic JSON model), the query shorthands (E, S, ES, RI) and shared value mappings."""

from __future__ import annotations

from dataclasses import dataclass, field

DATASOURCE_UID = "cryptostock-prometheus"
DS = {"type": "prometheus", "uid": "${datasource}"}
E = 'exchange=~"$exchange"'
S = 'symbol=~"$symbol"'
ES = f"{E}, {S}"
RI = "$__rate_interval"


def _value_mappings(*states: tuple[str, str]) -> list[dict[str, object]]:
    """Grafana value mappings: the value i shows as states[i] = (text, colour)."""
    options = {str(i): {"text": text, "color": colour, "index": i} for i, (text, colour) in enumerate(states)}
    return [{"type": "value", "options": options}]


CIRCUIT_MAPPINGS = _value_mappings(("closed", "green"), ("open", "red"), ("half-open", "orange"))
# collector_status + exchange_connected per exchange.
CONNECTION_MAPPINGS = _value_mappings(("stopped", "red"), ("disconnected", "orange"), ("connected", "green"))


@dataclass(frozen=True)
class Panel:
    """One panel: its queries as (PromQL, legend) pairs; `source` names the exporter feeding it, if any."""

    title: str
    description: str
    queries: list[tuple[str, str]]
    unit: str = "short"
    kind: str = "timeseries"
    width: int = 12
    height: int = 8
    source: str | None = None
    defaults: dict[str, object] = field(default_factory=dict)
    options: dict[str, object] = field(
        default_factory=lambda: {"legend": {"displayMode": "list", "placement": "bottom"}}
    )


def _variables() -> list[dict[str, object]]:
    def label_values(name: str, query: str) -> dict[str, object]:
        return {
            "name": name,
            "label": name.capitalize(),
            "type": "query",
            "datasource": DS,
            "query": {"query": query, "refId": f"{name}-values"},
            "definition": query,
            "refresh": 2,
            "includeAll": True,
            "multi": True,
            "allValue": ".*",
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "sort": 1,
            "hide": 0,
            "options": [],
        }

    datasource = {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {"selected": True, "text": "Prometheus", "value": DATASOURCE_UID},
        "hide": 0,
        "refresh": 1,
        "regex": "",
        "options": [],
    }
    return [
        datasource,
        # Every exchange with a collector, also one that has not received a trade yet.
        label_values("exchange", "label_values(collector_status, exchange)"),
        label_values("symbol", 'label_values(trades_received_total{exchange=~"$exchange"}, symbol)'),
    ]


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, object]:
    description = panel.description
    if panel.source:
        description = f"{description} (source: {panel.source})"
    defaults: dict[str, object] = {"unit": panel.unit, **panel.defaults}
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": description,
        "datasource": DS,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": DS,
                "expr": expr,
                "legendFormat": legend,
                "range": True,
            }
            for i, (expr, legend) in enumerate(panel.queries)
        ],
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": panel.options,
    }


def dashboard(uid: str, title: str, description: str, panels: list[Panel]) -> dict[str, object]:
    """A classic dashboard model; panels flow left to right, 24 grid units a row."""
    laid_out: list[dict[str, object]] = []
    x = y = row_height = 0
    for number, panel in enumerate(panels, start=1):
        if x + panel.width > 24:
            x, y, row_height = 0, y + row_height, 0
        laid_out.append(_panel_json(panel, number, x, y))
        x += panel.width
        row_height = max(row_height, panel.height)
    return {
        "id": None,
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["cryptostock"],
        "timezone": "utc",
        "editable": False,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "annotations": {"list": []},
        "links": [],
        "templating": {"list": _variables()},
        "panels": laid_out,
    }


def zero_or(expr: str, fallback: str, on: str) -> str:
    """`expr`, or a real 0 per `on` label set of `fallback` where `expr` has no series yet."""
    return f"{expr} or on ({on}) {fallback} * 0"
