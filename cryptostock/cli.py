"""`cryptostock`: the platform's command line. Flags override the environment; see --help of each command."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from importlib import metadata
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_settings import BaseSettings

from collectors.registry import DEFAULT_EXCHANGE
from core.errors import ConfigError, PlatformError
from cryptostock.outcome import EXIT_CONFIG, EXIT_FAILURE, report_failure, wants_json

S = argparse.SUPPRESS


def _common(parser: argparse.ArgumentParser, settings_type: type[BaseModel]) -> None:
    metrics_port = settings_type.model_fields["metrics_port"].default
    parser.add_argument(
        "--metrics-port", type=int, default=S, help=f"metrics/health port (default {metrics_port})"
    )
    parser.add_argument(
        "--metrics-addr", default=S, help="metrics bind address (default 127.0.0.1; 0.0.0.0: every interface)"
    )
    parser.add_argument("--log-level", default=S, help="DEBUG, INFO, WARNING... (env LOG_LEVEL)")
    parser.add_argument("--log-format", choices=["text", "json"], default=S, help="env LOG_FORMAT")
    parser.add_argument("--log-dir", default=S, help="log directory (env LOG_DIR, default logs)")
    parser.add_argument("--data-dir", default=S, help="embedded database directory (default data)")
    parser.add_argument("--database-url", default=S, help="PostgreSQL URL (env DATABASE_URL; absent: SQLite)")
    parser.add_argument("--redis-url", default=S, help="Redis URL (env REDIS_URL; absent: in-process bus)")


def _api_options(parser: argparse.ArgumentParser) -> None:
    """The API's protection that an operator sets per deployment (the server's limits: environment)."""
    parser.add_argument(
        "--rate-limit-per-second", type=float, default=S, help="per client IP, 0 = off (default 20)"
    )
    parser.add_argument("--rate-limit-burst", type=int, default=S, help="requests at once (default 40)")
    parser.add_argument(
        "--cors-origins", default=S, help="comma-separated origins allowed by CORS (default: none)"
    )
    parser.add_argument(
        "--trusted-proxies",
        default=S,
        help="comma-separated proxy IPs/networks whose X-Forwarded-For is believed (default: none)",
    )


def _processing(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timeframes", default=S, help="bar timeframes (default 1m,5m,15m,1h,4h,1d)")
    parser.add_argument("--grace-seconds", type=float, default=S, help="watermark grace period (default 2)")
    parser.add_argument(
        "--verify-interval",
        type=float,
        default=S,
        help="seconds between checks of closed 1m bars against the venues' candles, 0 = off "
        "(default: 60 in run, 0 in processor)",
    )
    parser.add_argument(
        "--verify-delay",
        type=int,
        default=S,
        help="check minutes that closed at least this many minutes ago (2)",
    )
    parser.add_argument(
        "--verify-max-minutes", type=int, default=S, help="minutes per instrument and check at most (10)"
    )


def _in_process_bus(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--in-process-bus",
        action="store_true",
        default=S,
        help="run without REDIS_URL anyway (its bus and cache stay inside this process)",
    )


def _version() -> str:
    try:
        return metadata.version("cryptostock")
    except metadata.PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    from cryptostock import settings
    from cryptostock.export_cli import add_export
    from cryptostock.verify_cli import add_verify

    parser = argparse.ArgumentParser(prog="cryptostock", description=__doc__)
    parser.add_argument("--version", action="version", version=f"cryptostock {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="simulators + collectors + processor + API in one process")
    _common(run, settings.RunSettings)
    _processing(run)
    run.add_argument(
        "--exchange",
        default=S,
        help=f"exchanges, comma-separated (default {DEFAULT_EXCHANGE}; known: {_venues()})",
    )
    run.add_argument(
        "--symbols",
        default=S,
        help="symbols, venue's own or BASE-QUOTE, optionally venue:SYMBOL (default: each venue's own)",
    )
    run.add_argument("--api-host", default=S, help="API bind address (default 127.0.0.1)")
    run.add_argument("--api-port", type=int, default=S, help="API port (default 8000)")
    run.add_argument("--sim-port", type=int, default=S, help="simulator port (default 8765)")
    run.add_argument("--tps", type=float, default=S, help="simulated trades per second (default 20)")
    run.add_argument("--replay", default=S, help="replay this CSV trade file instead of a synthetic market")
    run.add_argument("--speed", type=float, default=S, help="replay speed multiplier, 0 = as fast as read")
    run.add_argument("--ws-url", default=S, help="collect from this websocket base URL instead")
    run.add_argument("--rest-url", default=S, help="backfill from this REST base URL instead")
    run.add_argument("--live", action="store_true", default=S, help="collect from the real exchanges")
    run.add_argument("--ws-client", choices=["websockets", "picows"], default=S, help="websocket client")
    _api_options(run)

    collector = commands.add_parser("collector", help="collect trades from an exchange onto the bus")
    _common(collector, settings.CollectorSettings)
    collector.add_argument(
        "--exchange", default=S, help=f"exchange name (default {DEFAULT_EXCHANGE}; known: {_venues()})"
    )
    collector.add_argument(
        "--symbols",
        default=S,
        help="comma-separated symbols, the venue's own or BASE-QUOTE (default: its own)",
    )
    collector.add_argument("--ws-url", default=S, help="websocket base URL (e.g. the simulator's)")
    collector.add_argument("--rest-url", default=S, help="REST base URL for backfill and symbols")
    collector.add_argument(
        "--stale-timeout", type=float, default=S, help="reconnect after this many idle seconds"
    )
    collector.add_argument("--backoff-initial", type=float, default=S, help="first reconnect delay (0.5 s)")
    collector.add_argument("--backoff-max", type=float, default=S, help="longest reconnect delay (30 s)")
    collector.add_argument(
        "--max-connection-age",
        type=float,
        default=S,
        help="seconds before a connection is replaced (default: the exchange's limit minus a margin)",
    )
    collector.add_argument(
        "--ws-client", choices=["websockets", "picows"], default=S, help="websocket client"
    )
    _in_process_bus(collector)

    processor = commands.add_parser("processor", help="turn trades from the bus into stored bars")
    _common(processor, settings.ProcessorSettings)
    _processing(processor)
    processor.add_argument("--consumer", default=S, help="consumer name, stable across restarts")
    processor.add_argument(
        "--verify-rest-urls",
        default=S,
        help=f"REST base URLs for verification, e.g. {DEFAULT_EXCHANGE}=http://127.0.0.1:8765 "
        "(default: the venues' own)",
    )
    processor.add_argument("--shard-index", type=int, default=S)
    processor.add_argument("--shard-count", type=int, default=S)
    _in_process_bus(processor)

    api = commands.add_parser("api", help="serve the REST and WebSocket API")
    _common(api, settings.ApiDaemonSettings)
    api.add_argument("--host", default=S, help="bind address (default 127.0.0.1; 0.0.0.0: every interface)")
    api.add_argument("--port", type=int, default=S, help="API port (default 8000)")
    _api_options(api)
    _in_process_bus(api)

    simulate = commands.add_parser("simulate", help="serve a simulated exchange (websocket and REST)")
    _common(simulate, settings.SimulateSettings)
    simulate.add_argument(
        "--exchange", default=S, help=f"which exchange's protocol (default {DEFAULT_EXCHANGE})"
    )
    simulate.add_argument("--host", default=S)
    simulate.add_argument("--port", type=int, default=S, help="port (default 8765)")
    simulate.add_argument("--symbols", default=S)
    simulate.add_argument("--tps", type=float, default=S, help="synthetic trades per second")
    simulate.add_argument("--seed", type=int, default=S)
    simulate.add_argument(
        "--replay", default=S, help="CSV: timestamp_ms,symbol,trade_id,price,quantity,is_buyer_maker"
    )
    simulate.add_argument(
        "--speed", type=float, default=S, help="replay speed multiplier, 0 = as fast as read"
    )
    simulate.add_argument("--faults", default=S, help='JSON injected at start, e.g. {"skip": 5}')
    simulate.add_argument(
        "--max-history-age", type=float, default=S, help="seconds of trades kept for REST (default 120)"
    )
    simulate.add_argument("--ping-interval", type=float, default=S)
    simulate.add_argument("--ping-timeout", type=float, default=S)

    dead = commands.add_parser(
        "dead-letters", help="print bus content set aside because it could not be stored (JSON lines)"
    )
    _common(dead, settings.DeadLettersSettings)
    dead.add_argument("--limit", type=int, default=S, help="how many of the most recent (default 20)")

    db = commands.add_parser("db", help="database administration")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    migrate = db_commands.add_parser("migrate", help="apply pending migrations")
    _common(migrate, settings.CommonSettings)
    add_export(commands)
    add_verify(commands)
    return parser


def _venues() -> str:
    from collectors.registry import ADAPTERS

    return ", ".join(sorted(ADAPTERS))


Entry = tuple[type[BaseSettings], Callable[[Any], Coroutine[Any, Any, int | None]]]
"""A command's settings and its coroutine; an int it returns is the exit code (None: 0)."""


def _entry(command: str, db_command: str | None) -> Entry:
    from cryptostock import commands, export, settings, verify

    table: dict[str, Entry] = {
        "run": (settings.RunSettings, commands.run_all),
        "collector": (settings.CollectorSettings, commands.run_collector),
        "processor": (settings.ProcessorSettings, commands.run_processor),
        "api": (settings.ApiDaemonSettings, commands.run_api),
        "simulate": (settings.SimulateSettings, commands.run_simulator),
        "db": (settings.CommonSettings, commands.migrate_database),
        "dead-letters": (settings.DeadLettersSettings, commands.show_dead_letters),
        "export": (settings.ExportSettings, export.run_export),
        "verify": (settings.VerifySettings, verify.run_verify),
    }
    return table[command]


def main(argv: Sequence[str] | None = None) -> int:
    from cryptostock.preflight import check_environment, refuse_private_bus
    from cryptostock.settings import ALL_SETTINGS

    args = vars(build_parser().parse_args(argv))
    command = args.pop("command")
    db_command = args.pop("db_command", None)
    label = " ".join(filter(None, (command, db_command, args.get("kind"))))
    as_json = wants_json(args)
    settings_type, coroutine = _entry(command, db_command)
    try:
        check_environment(os.environ, ALL_SETTINGS)
        settings = settings_type(**args)
        bus_flag = getattr(settings, "in_process_bus", False)
        refuse_private_bus(command, getattr(settings, "redis_url", None), bus_flag)
        code = asyncio.run(coroutine(settings))
    except ValidationError as exc:
        problems = _problems(exc, settings_type, set(args))
        message = f"invalid settings: {problems}"
        return report_failure(label, message, EXIT_CONFIG, as_json=as_json, kind="InvalidSettings")
    except ConfigError as exc:
        return report_failure(label, exc, EXIT_CONFIG, as_json=as_json)
    except PlatformError as exc:
        message = f"{type(exc).__name__}: {exc}"
        return report_failure(label, message, EXIT_FAILURE, as_json=as_json, kind=type(exc).__name__)
    except OSError as exc:  # a file or directory the command cannot use
        where = f": {exc.filename}" if exc.filename else ""
        message = f"{exc.strerror or exc}{where}"
        return report_failure(label, message, EXIT_FAILURE, as_json=as_json, kind=type(exc).__name__)
    except KeyboardInterrupt:
        return 0
    return code or 0


def _problems(exc: ValidationError, settings_type: type[BaseSettings], given: set[str]) -> str:
    """'LOG_LEVEL: unknown log level ...; --timeframes: ...': each named the way it was set."""
    from cryptostock.preflight import describe_field

    problems = []
    for error in exc.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        field = str(error["loc"][0]) if error["loc"] else ""
        if field in settings_type.model_fields:
            problems.append(f"{describe_field(settings_type, field, field in given)}: {message}")
        else:
            problems.append(f"{field}: {message}" if field else message)
    return "; ".join(problems)


if __name__ == "__main__":
    sys.exit(main())
