"""The `cryptostock verify` command line (the work is in cryptostock.verify)."""

from __future__ import annotations

import argparse
from typing import Any

from collectors.registry import DEFAULT_EXCHANGE

S = argparse.SUPPRESS
EXAMPLE = (
    f"example: cryptostock verify --exchange {DEFAULT_EXCHANGE} --symbol BTC-USDT --from 2024-01-01T00:00 "
    "--to 2024-01-01T06:00 [--rest-url http://127.0.0.1:8765]. Exit codes: 0 every minute equal, "
    "1 differences (or a failure while running), 2 unusable arguments or a venue without candles."
)


def add_verify(commands: Any) -> None:
    parser = commands.add_parser(
        "verify",
        help="check stored 1m bars against the exchange's own candles (klines)",
        epilog=EXAMPLE,
    )
    parser.add_argument("--exchange", default=S, help=f"exchange (default {DEFAULT_EXCHANGE})")
    parser.add_argument("--symbol", required=True, help="BTC-USDT or the exchange's own BTCUSDT")
    parser.add_argument(
        "--from", dest="start", required=True, help="inclusive: ISO-8601 (UTC if no offset) or epoch ms"
    )
    parser.add_argument("--to", dest="end", required=True, help="exclusive: ISO-8601 or epoch ms")
    parser.add_argument(
        "--rest-url", default=S, help="the venue's REST base URL (default: the exchange's; e.g. a simulator)"
    )
    parser.add_argument("--timeout", type=float, default=S, help="seconds per REST request (default 10)")
    parser.add_argument(
        "--max-wait", type=float, default=S, help="seconds of rate limiting to wait out (default 60)"
    )
    parser.add_argument("--db", default=S, help="SQLite file (default: the database in --data-dir)")
    parser.add_argument("--data-dir", default=S, help="embedded database directory (default data)")
    parser.add_argument("--database-url", default=S, help="PostgreSQL URL (env DATABASE_URL)")
    parser.add_argument("--log-format", choices=["text", "json"], default=S, help="env LOG_FORMAT")
    parser.add_argument("--log-dir", default=S, help="log directory (env LOG_DIR, default logs)")
