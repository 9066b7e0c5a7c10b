"""The Data Quality dashboard (data-quality.json)."""

from __future__ import annotations

from dashboards.model import ES, RI, E, Panel, dashboard, zero_or


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
                    zero_or(
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
                    zero_or(
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
                    zero_or(
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
                    zero_or(
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
                    zero_or(
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
