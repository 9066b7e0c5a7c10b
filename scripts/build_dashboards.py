"""Builds the Grafana dashboards of grafana/dashboards/*.json from the panel lists below.

The JSON files are committed and provisioned as is (bare classic dashboard models, not wrapped in
{"dashboard": ...}); this script is how they are edited. `--check` exits 1 when a committed file differs
from what the script builds (tests/ops runs it).

Every query uses metrics of monitoring/metrics.py or the recorded series of
prometheus/rules/recording.yml. Panels fed by exporters (node, redis, postgres) say so in their
description with the tag `source: <name>-exporter`; every other panel is fed by the platform itself.

    .venv/bin/python scripts/build_dashboards.py          # rewrite the files
    .venv/bin/python scripts/build_dashboards.py --check  # verify they are up to date
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "grafana" / "dashboards"
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


def _zero_or(expr: str, fallback: str, on: str) -> str:
    """`expr`, or a real 0 per `on` label set of `fallback` where `expr` has no series yet."""
    return f"{expr} or on ({on}) {fallback} * 0"


def _venue_panels() -> list[Panel]:
    """The main dashboard's first rows: one series per exchange (the `exchange` variable selects them)."""
    trades = f"sum by (exchange) (rate(trades_received_total{{{ES}}}[{RI}]))"
    connection = (
        f"max by (exchange) (collector_status{{{E}}}) + max by (exchange) (exchange_connected{{{E}}})"
    )
    no_trades_yet = f"exchange:trades_received:rate5m{{{E}}}"
    latency = (
        f"histogram_quantile(0.95, sum by (exchange, le) (rate(trade_latency_seconds_bucket{{{E}}}[{RI}])))"
    )
    return [
        Panel(
            "Trades per second by exchange",
            "Trades received from each exchange.",
            [(trades, "{{exchange}}")],
            "ops",
        ),
        Panel(
            "Connection status by exchange",
            "Each exchange's collector: stopped, running but disconnected (alert ExchangeDisconnected), "
            "connected.",
            [(connection, "{{exchange}}")],
            kind="state-timeline",
            defaults={"mappings": CONNECTION_MAPPINGS},
            options={"showValue": "auto"},
        ),
        Panel(
            "Trades per second by symbol",
            "Trades received per symbol.",
            [
                (
                    f"sum by (exchange, symbol) (rate(trades_received_total{{{ES}}}[{RI}]))",
                    "{{exchange}} {{symbol}}",
                )
            ],
            "ops",
        ),
        Panel(
            "Seconds since last trade",
            "Age of the newest trade per symbol; alert NoTradesWhileConnected over 120s.",
            [(f"exchange_symbol:last_trade_timestamp:age_seconds{{{ES}}}", "{{exchange}} {{symbol}}")],
            "s",
        ),
        Panel(
            "Gaps and backfill by exchange",
            "Trade ids missing from each exchange's live stream, trades recovered over REST (per second, "
            "10 min) and failed backfills; alerts TradeGapsNotBackfilled, GapRepairFailing.",
            [
                (
                    f"sum by (exchange) (exchange_symbol:trade_gap_missing_trades:rate10m{{{E}}})",
                    "missing {{exchange}}",
                ),
                (
                    f"sum by (exchange) (exchange_symbol:trades_backfilled:rate10m{{{E}}})",
                    "backfilled {{exchange}}",
                ),
                (f"exchange:trade_backfill_failures:rate5m{{{E}}}", "backfill failures {{exchange}}"),
            ],
            "ops",
        ),
        Panel(
            "Parse errors by exchange and error type",
            "Frames each exchange's adapter rejected, per second; alert CollectorParseErrors.",
            [
                (
                    _zero_or(
                        f"exchange_error_type:collector_parse_errors:rate5m{{{E}}}", no_trades_yet, "exchange"
                    ),
                    "{{exchange}} {{error_type}}",
                )
            ],
            "ops",
        ),
        Panel(
            "Trade latency p95 by exchange",
            "Exchange event time to local receipt (sampled trades).",
            [(latency, "{{exchange}}")],
            "s",
            width=8,
        ),
        Panel(
            "Websocket reconnections (10 min)",
            "Reconnections in the last 10 minutes; alert ReconnectionStorm over 5.",
            [(f"exchange:websocket_reconnections:increase10m{{{E}}}", "{{exchange}}")],
            width=8,
        ),
        Panel(
            "Collector errors by exchange",
            "Errors per second (parse, transport, backfill); alert CollectorErrorRateHigh over 0.1.",
            [(f"exchange:collector_errors:rate5m{{{E}}}", "{{exchange}}")],
            "ops",
            width=8,
        ),
    ]


def main_operational() -> dict[str, object]:
    def component(name: str, errors: str, total: str) -> tuple[str, str]:
        return (f'label_replace(sum({errors}) or sum({total}) * 0, "component", "{name}", "", "")', name)

    panels = [
        *_venue_panels(),
        Panel(
            "Bar completion p95",
            "Bar end (event time) to the bar stored and published; alert BarCompletionSlow over 5s.",
            [("timeframe:bar_completion_duration_seconds:p95", "{{timeframe}}")],
            "s",
        ),
        Panel(
            "Indicator calculation p99",
            "Time to update the indicators of a closed bar (all six: one call of the engine).",
            [
                (
                    "histogram_quantile(0.99, sum by (indicator, le) "
                    f"(rate(indicator_calculation_duration_seconds_bucket[{RI}])))",
                    "{{indicator}}",
                )
            ],
            "s",
        ),
        Panel(
            "API request rate",
            "HTTP requests per second by route template and status.",
            [(f"sum by (endpoint, status) (rate(http_requests_total[{RI}]))", "{{endpoint}} {{status}}")],
            "reqps",
        ),
        Panel(
            "API p95 latency",
            "p95 HTTP request duration; alert ApiLatencyHigh over 500ms.",
            [("job:http_request_duration_seconds:p95", "{{job}}")],
            "s",
            width=6,
        ),
        Panel(
            "API 5xx ratio",
            "Share of API requests answered with a 5xx status; alert ApiErrorRatioHigh over 5%.",
            [("job:http_requests_5xx:ratio_rate5m", "{{job}}")],
            "percentunit",
            width=6,
        ),
        Panel(
            "Error rate by component",
            "Errors per second: collector errors, failed database operations, API 5xx, circuit failures.",
            [
                component(
                    "collector",
                    f"rate(collector_errors_total{{{E}}}[{RI}])",
                    f"rate(trades_received_total{{{E}}}[{RI}])",
                ),
                component(
                    "database",
                    f'rate(db_queries_total{{status="error"}}[{RI}])',
                    f"rate(db_queries_total[{RI}])",
                ),
                component(
                    "api",
                    f'rate(http_requests_total{{status=~"5.."}}[{RI}])',
                    f"rate(http_requests_total[{RI}])",
                ),
                (
                    _zero_or(
                        f"sum by (component) (rate(circuit_breaker_failures_total[{RI}]))",
                        "sum by (component) (circuit_breaker_state)",
                        "component",
                    ),
                    "circuit {{component}}",
                ),
            ],
            "ops",
        ),
        Panel(
            "WebSocket connections",
            "Open API websocket connections.",
            [("sum(websocket_connections)", "open")],
            width=6,
        ),
        Panel(
            "Bus queue depth",
            "Trades waiting in the bus.",
            [("sum by (bus) (bus_queue_depth)", "{{bus}}")],
            width=6,
        ),
        Panel(
            "Bars completed per minute",
            "Closed bars per minute by timeframe.",
            [(f"sum by (timeframe) (rate(bars_completed_total{{{ES}}}[{RI}])) * 60", "{{timeframe}}")],
        ),
        Panel(
            "Host CPU busy",
            "Share of CPU time not idle per host.",
            [(f'1 - avg by (instance) (rate(node_cpu_seconds_total{{mode="idle"}}[{RI}]))', "{{instance}}")],
            "percentunit",
            source="node-exporter",
        ),
        Panel(
            "Host memory available",
            "Memory available per host.",
            [("node_memory_MemAvailable_bytes", "{{instance}}")],
            "bytes",
            source="node-exporter",
        ),
    ]
    return dashboard(
        "cryptostock-main",
        "cryptostock / Main Operational",
        "Per exchange: trades, connections, gaps, parse errors; then bars, indicators, API and errors.",
        panels,
    )


def data_quality() -> dict[str, object]:
    checks = "data_quality_checks_total"
    volume = f'sum by (check) (rate({checks}{{check="volume_sanity", result="failed"}}[{RI}]))'
    panels = [
        Panel(
            "Quality score per symbol",
            "Share of recent quality checks passed (0 to 1); alert DataQualityLow under 0.8.",
            [(f"data_quality_score{{{ES}}}", "{{exchange}} {{symbol}}")],
            "percentunit",
            defaults={"min": 0, "max": 1},
        ),
        Panel(
            "Checks passed vs failed",
            "Quality checks per second by result.",
            [(f"sum by (result) (rate({checks}[{RI}]))", "{{result}}")],
            "ops",
        ),
        Panel(
            "Failed checks by check",
            "Failed quality checks per second, per check.",
            [
                (
                    _zero_or(
                        f'sum by (check) (rate({checks}{{result="failed"}}[{RI}]))',
                        f"sum by (check) (rate({checks}[{RI}]))",
                        "check",
                    ),
                    "{{check}}",
                )
            ],
            "ops",
        ),
        Panel(
            "Volume sanity failures",
            "Bars or trades failing the volume sanity check, per second.",
            [
                (
                    _zero_or(
                        volume, f'sum by (check) (rate({checks}{{check="volume_sanity"}}[{RI}]))', "check"
                    ),
                    "failed",
                )
            ],
            "ops",
        ),
        Panel(
            "Anomalies over time",
            "Anomalies detected per interval, by symbol and type.",
            [
                (
                    _zero_or(
                        "sum by (exchange, symbol, anomaly_type) "
                        f"(increase(data_anomalies_detected_total{{{ES}}}[{RI}]))",
                        f"sum by (exchange, symbol) (increase(trades_received_total{{{ES}}}[{RI}]))",
                        "exchange, symbol",
                    ),
                    "{{exchange}} {{symbol}} {{anomaly_type}}",
                )
            ],
        ),
        Panel(
            "Anomalies in the last 10 minutes",
            "Alert AnomaliesSpiking over 10 per symbol.",
            [(f"exchange_symbol:data_anomalies_detected:increase10m{{{ES}}}", "{{exchange}} {{symbol}}")],
        ),
        Panel(
            "Bars by coverage (last hour)",
            "Bars closed in the last hour by coverage: complete (every sequence number seen), repaired (some "
            "fetched over REST), incomplete (trades missing; alert BarsIncomplete over 5%), unverifiable "
            "(the venue gives no sequence).",
            [
                (
                    f"sum by (exchange, coverage) "
                    f'(exchange_timeframe_coverage:bars_by_coverage:increase1h{{{E}, timeframe="1m"}})',
                    "{{exchange}} {{coverage}}",
                )
            ],
        ),
        Panel(
            "Incomplete bars (share, last hour)",
            "Share of the closed bars of each timeframe that are incomplete; alert BarsIncomplete over 5%.",
            [(f"exchange_timeframe:bars_incomplete:ratio1h{{{E}}}", "{{exchange}} {{timeframe}}")],
            "percentunit",
        ),
        Panel(
            "Late trades (share of processed)",
            "Trades arriving after their bar closed; alert LateTradesRising over 1%.",
            [(f"exchange:late_trades:ratio_rate5m{{{E}}}", "{{exchange}}")],
            "percentunit",
        ),
        Panel(
            "Trade-id gaps: missing vs backfilled",
            "Trade ids missing from the live stream and trades recovered over REST (per second, 10 min).",
            [
                (
                    f"exchange_symbol:trade_gap_missing_trades:rate10m{{{ES}}}",
                    "missing {{exchange}} {{symbol}}",
                ),
                (f"exchange_symbol:trades_backfilled:rate10m{{{ES}}}", "backfilled {{exchange}} {{symbol}}"),
            ],
            "ops",
        ),
        Panel(
            "Duplicates dropped",
            "Trades dropped as duplicates, per second.",
            [
                (
                    _zero_or(
                        f"sum by (exchange, symbol) (rate(trades_duplicate_total{{{ES}}}[{RI}]))",
                        f"sum by (exchange, symbol) (rate(trades_received_total{{{ES}}}[{RI}]))",
                        "exchange, symbol",
                    ),
                    "{{exchange}} {{symbol}}",
                )
            ],
            "ops",
        ),
        Panel(
            "Bars verified against the venues' candles (last 10 minutes)",
            "Closed 1m bars checked against each venue's own candles (binance, coinbase, okx, kraken, "
            "bybit), by result: match, mismatch (a differing or missing minute on either side; alert "
            "BarsDifferFromVenue over 1% in an hour), unavailable (no candles, or the venue's REST API "
            "failed). 0 until the verifier's first round (verify_delay minutes after the start).",
            [
                (
                    _zero_or(
                        f"sum by (exchange, result) (increase(bars_verified_total{{{E}}}[10m]))",
                        f"sum by (exchange) (increase(trades_received_total{{{E}}}[10m]))",
                        "exchange",
                    ),
                    "{{exchange}} {{result}}",
                )
            ],
        ),
    ]
    return dashboard(
        "cryptostock-data-quality",
        "cryptostock / Data Quality",
        "Quality scores, checks, anomalies, late trades and gaps.",
        panels,
    )


def circuit_breakers() -> dict[str, object]:
    state = "max by (component) (circuit_breaker_state)"
    open_share = "avg_over_time((circuit_breaker_state == bool 1)[{window}:])"
    panels = [
        Panel(
            "Circuit states",
            "State of each circuit over time: closed, open, half-open.",
            [(state, "{{component}}")],
            kind="state-timeline",
            width=24,
            defaults={"mappings": CIRCUIT_MAPPINGS},
            options={"showValue": "auto"},
        ),
        Panel(
            "Current state",
            "State of each circuit now.",
            [(state, "{{component}}")],
            kind="stat",
            width=8,
            defaults={"mappings": CIRCUIT_MAPPINGS},
            options={"colorMode": "background"},
        ),
        Panel(
            "Time open in the selected range",
            "Seconds each circuit spent open within the dashboard's time range.",
            [(f"sum by (component) ({open_share.format(window='$__range')}) * $__range_s", "{{component}}")],
            "s",
            kind="bargauge",
            width=8,
            options={"orientation": "horizontal", "displayMode": "basic"},
        ),
        Panel(
            "Open seconds per 5 minutes",
            "How long each circuit stayed open in each 5-minute window.",
            [(f"sum by (component) ({open_share.format(window='5m')}) * 300", "{{component}}")],
            "s",
            width=8,
        ),
        Panel(
            "Transitions over time",
            "State transitions per interval.",
            [
                (
                    _zero_or(
                        "sum by (component, from_state, to_state) "
                        f"(increase(circuit_breaker_transitions_total[{RI}]))",
                        "sum by (component) (circuit_breaker_state)",
                        "component",
                    ),
                    "{{component}} {{from_state}} -> {{to_state}}",
                )
            ],
        ),
        Panel(
            "Failures counted",
            "Failures counted by each circuit, per second.",
            [
                (
                    _zero_or(
                        f"sum by (component) (rate(circuit_breaker_failures_total[{RI}]))",
                        "sum by (component) (circuit_breaker_state)",
                        "component",
                    ),
                    "{{component}}",
                )
            ],
            "ops",
        ),
    ]
    return dashboard(
        "cryptostock-circuit-breakers",
        "cryptostock / Circuit Breakers",
        "Circuit breakers guarding the database, Redis and exchange REST calls.",
        panels,
    )


def database_cache() -> dict[str, object]:
    p99 = f"histogram_quantile(0.99, sum by (operation, le) (rate(db_query_duration_seconds_bucket[{RI}])))"
    panels = [
        Panel(
            "Query latency p95",
            "p95 per database operation; alert DatabaseQueryLatencyHigh over 500ms.",
            [("operation:db_query_duration_seconds:p95", "{{operation}}")],
            "s",
        ),
        Panel("Query latency p99", "p99 per database operation.", [(p99, "{{operation}}")], "s"),
        Panel(
            "Queries per second",
            "Database operations per second by outcome.",
            [(f"sum by (operation, status) (rate(db_queries_total[{RI}]))", "{{operation}} {{status}}")],
            "ops",
        ),
        Panel(
            "Query error ratio",
            "Share of failed database operations; alert DatabaseQueryErrors over 1%.",
            [("job:db_query_errors:ratio_rate5m", "{{job}}")],
            "percentunit",
        ),
        Panel(
            "Connection pool",
            "Connections in the pool and idle ones; alert DatabasePoolExhausted when none is idle.",
            [("sum(db_connection_pool_size)", "pool size"), ("sum(db_connections_available)", "available")],
        ),
        Panel(
            "Rows written per second",
            "Rows written per table.",
            [(f"sum by (table) (rate(db_rows_written_total[{RI}]))", "{{table}}")],
            "ops",
        ),
        Panel(
            "Cache hit rate",
            "Share of cache lookups that hit; alert CacheHitRateLow under 50%.",
            [("cache:cache_hit_ratio:rate5m", "{{cache}}")],
            "percentunit",
            defaults={"min": 0, "max": 1},
        ),
        Panel(
            "Cache lookups per second",
            "Hits and misses per cache.",
            [
                ("cache:cache_hits:rate5m", "hits {{cache}}"),
                ("cache:cache_misses:rate5m", "misses {{cache}}"),
            ],
            "ops",
        ),
        Panel(
            "Cache size",
            "Bytes held by the latest-value cache.",
            [("sum(cache_size_bytes)", "bytes")],
            "bytes",
            width=8,
        ),
        Panel(
            "Redis memory",
            "Memory used by Redis (and its limit when set).",
            [
                ("redis_memory_used_bytes", "used {{instance}}"),
                ("redis_memory_max_bytes", "max {{instance}}"),
            ],
            "bytes",
            width=8,
            source="redis-exporter",
        ),
        Panel(
            "Redis clients",
            "Clients connected to Redis.",
            [("redis_connected_clients", "{{instance}}")],
            width=8,
            source="redis-exporter",
        ),
        Panel(
            "PostgreSQL backends",
            "Connections per database.",
            [("sum by (datname) (pg_stat_database_numbackends)", "{{datname}}")],
            source="postgres-exporter",
        ),
        Panel(
            "PostgreSQL up",
            "1 when the exporter reaches PostgreSQL.",
            [("pg_up", "{{instance}}")],
            source="postgres-exporter",
        ),
    ]
    return dashboard(
        "cryptostock-database-cache",
        "cryptostock / Database & Cache",
        "Query latency, connection pool, cache hit rate, Redis and PostgreSQL.",
        panels,
    )


DASHBOARDS = {
    "main-operational.json": main_operational,
    "data-quality.json": data_quality,
    "circuit-breakers.json": circuit_breakers,
    "database-cache.json": database_cache,
}


def render(build: Callable[[], dict[str, object]]) -> str:
    return json.dumps(build(), indent=2) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a committed dashboard is out of date")
    args = parser.parse_args()
    stale = []
    for name, build in DASHBOARDS.items():
        path, text = OUT / name, render(build)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print(f"out of date (run scripts/build_dashboards.py): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
