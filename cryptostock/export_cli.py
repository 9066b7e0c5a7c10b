"""The `cryptostock export` command line (the work is in cryptostock.export)."""

from __future__ import annotations

import argparse
from typing import Any

from collectors.registry import DEFAULT_EXCHANGE

S = argparse.SUPPRESS
EXAMPLE = (
    "example: cryptostock export bars --symbol BTC-USDT --timeframe 1m "
    "--from 2024-01-01 --to 2024-01-02 --output btc-1m.parquet"
)


def add_export(commands: Any) -> None:
    """`export bars` and `export trades` under the CLI's subcommands."""
    export = commands.add_parser("export", help="write stored bars or trades to a Parquet or CSV file")
    kinds = export.add_subparsers(dest="kind", required=True)
    for kind in ("bars", "trades"):
        parser = kinds.add_parser(kind, help=f"export {kind} of one symbol", epilog=EXAMPLE)
        parser.add_argument("--exchange", default=S, help=f"exchange (default {DEFAULT_EXCHANGE})")
        parser.add_argument("--symbol", required=True, help="BTC-USDT or the exchange's own BTCUSDT")
        if kind == "bars":
            parser.add_argument("--timeframe", default=S, help="bar length, e.g. 1m, 1h (default 1m)")
        parser.add_argument(
            "--from", dest="start", required=True, help="inclusive: ISO-8601 (UTC if no offset) or epoch ms"
        )
        parser.add_argument("--to", dest="end", required=True, help="exclusive: ISO-8601 or epoch ms")
        parser.add_argument(
            "--format", dest="output_format", choices=["parquet", "csv"], default=S,
            help="default: from the output's suffix (.parquet, .csv)",
        )  # fmt: skip
        parser.add_argument("--output", "-o", required=True, help="the file to write")
        parser.add_argument("--page-size", type=int, default=S, help="rows read at a time (default 10000)")
        parser.add_argument("--db", default=S, help="SQLite file (default: the database in --data-dir)")
        parser.add_argument("--data-dir", default=S, help="embedded database directory (default data)")
        parser.add_argument("--database-url", default=S, help="PostgreSQL URL (env DATABASE_URL)")
        parser.add_argument("--log-format", choices=["text", "json"], default=S, help="env LOG_FORMAT")
        parser.add_argument("--log-dir", default=S, help="log directory (env LOG_DIR, default logs)")
