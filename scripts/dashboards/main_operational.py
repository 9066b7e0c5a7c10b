"""The Main Operational dashboard (main-operational.json): the venues first, then the pipeline."""

from __future__ import annotations

from dashboards.model import CONNECTION_MAPPINGS, ES, RI, E, Panel, dashboard, zero_or


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
                    zero_or(
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
                    zero_or(
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
