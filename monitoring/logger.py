"""Process-wide logging on Loguru: console, JSON lines, daily files, redaction, stdlib interception.

    from monitoring.logger import setup_logging, get_logger, log_context
    setup_logging(service="collector")              # once per process; calling again reconfigures
    log = get_logger("collector", exchange="binance")
    with log_context(request_id="r-1"):             # follows the current asyncio task only
        log.info("connected")

Settings come from the arguments, else the environment (`LOG_LEVEL`, `LOG_FORMAT=json`, `LOG_DIR`).
Files: `<log_dir>/<service>/app_YYYY-MM-DD.log` (every record at `level` or above),
`<log_dir>/<service>/error_YYYY-MM-DD.log` (ERROR and above) and `<log_dir>/<service>/security_YYYY-MM-DD.log`
(security events: `event_type` starting with `security_`), switched at UTC midnight, gzip-compressed once
rotated, deleted after `retention_days` (security: `security_retention_days`, 2 years by default; each file
set only prunes its own files). While tracing is on, records logged inside a span carry `trace_id` and
`span_id`. All I/O happens
on one background thread (see monitoring.log_sinks); call `flush_logs()` before reading the files.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from loguru import logger

from core.errors import ConfigError
from monitoring import tracing
from monitoring.events import SECURITY_PREFIX, set_min_level, set_sample_rate
from monitoring.log_files import DailyFile
from monitoring.log_sinks import LogWriter, QueuedSink, StreamTarget
from monitoring.redaction import redact_record

if TYPE_CHECKING:
    from loguru import Logger

DEFAULT_SERVICE = "cryptostock"
DEFAULT_RETENTION_DAYS = 30
DEFAULT_SECURITY_RETENTION_DAYS = 730  # security events: 2 years
DEFAULT_COMPONENT = "app"
# Standard-library loggers routed into Loguru and never more verbose than INFO.
NOISY_LIBRARIES = (
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "asyncpg",
    "websockets",
    "asyncio",
    "aiohttp",
    "redis",
    "httpx",
    "httpcore",
)


@dataclass(frozen=True)
class LoggingSetup:
    """What `setup_logging` configured; `service_dir` is None when files are off."""

    service: str
    level: str
    json: bool
    service_dir: Path | None
    app_file: DailyFile | None
    error_file: DailyFile | None
    handler_ids: tuple[int, ...]
    security_file: DailyFile | None = None
    sample_rate: float = 1.0


_WRITER = LogWriter()
_handler_ids: list[int] = []
_default_removed = False


def setup_logging(
    service: str = DEFAULT_SERVICE,
    level: str | None = None,
    json: bool | None = None,
    log_dir: str | os.PathLike[str] | None = None,
    retention_days: int = DEFAULT_RETENTION_DAYS,
    *,
    console: bool = True,
    files: bool = True,
    colour: bool | None = None,
    stream: TextIO | None = None,
    security_retention_days: int | None = None,
    sample_rate: float | None = None,
) -> LoggingSetup:
    """Configure Loguru for this process; calling it again replaces what the previous call added.

    `level`: LOG_LEVEL or INFO. `json`: LOG_FORMAT == "json". `log_dir`: LOG_DIR or "logs".
    `colour`: None = colour only when the console stream is a terminal (and NO_COLOR is unset).
    `security_retention_days`: LOG_SECURITY_RETENTION_DAYS or 730. `sample_rate`: LOG_SAMPLE_RATE or 1.0,
    the share of routine events (monitoring.events) written.
    """
    level = (level or os.environ.get("LOG_LEVEL") or "INFO").upper()
    try:
        level_no = logger.level(level).no
    except ValueError:
        raise ConfigError(f"unknown log level {level!r}") from None
    if json is None:
        json = os.environ.get("LOG_FORMAT", "").strip().lower() == "json"
    security_days = security_retention_days or _env_number("LOG_SECURITY_RETENTION_DAYS", int)
    rate = sample_rate if sample_rate is not None else _env_number("LOG_SAMPLE_RATE", float)
    rate = 1.0 if rate is None else rate
    set_sample_rate(rate)
    _remove_own_handlers()
    logger.configure(extra={"service": service, "component": DEFAULT_COMPONENT}, patcher=patch_record)
    common: dict[str, Any] = {"format": "{message}", "colorize": False, "backtrace": False, "diagnose": False}
    if console:
        out = stream if stream is not None else sys.stderr
        use_colour = (not json) and (colour if colour is not None else _is_terminal(out))
        sink = QueuedSink(_WRITER, StreamTarget(out), json=json, colour=use_colour)
        _handler_ids.append(logger.add(sink, level=level, **common))
    service_dir = app_file = error_file = security_file = None
    if files:
        service_dir = Path(log_dir or os.environ.get("LOG_DIR") or "logs") / service
        app_file = DailyFile(service_dir, "app", retention_days=retention_days)
        error_file = DailyFile(service_dir, "error", retention_days=retention_days)
        security_file = DailyFile(
            service_dir, "security", retention_days=security_days or DEFAULT_SECURITY_RETENTION_DAYS
        )
        _handler_ids.append(logger.add(QueuedSink(_WRITER, app_file, json=json), level=level, **common))
        _handler_ids.append(logger.add(QueuedSink(_WRITER, error_file, json=json), level="ERROR", **common))
        _handler_ids.append(
            logger.add(
                QueuedSink(_WRITER, security_file, json=json), level=0, filter=is_security_record, **common
            )
        )
    set_min_level(level_no)
    route_stdlib_logging(level_no)
    return LoggingSetup(
        service,
        level,
        json,
        service_dir,
        app_file,
        error_file,
        tuple(_handler_ids),
        security_file=security_file,
        sample_rate=rate,
    )


def patch_record(record: Any) -> None:
    """Every record: secrets redacted; inside a span (tracing on), its `trace_id` and `span_id`."""
    redact_record(record)
    if tracing.ENABLED:
        record["extra"].update(tracing.log_ids())


def is_security_record(record: Any) -> bool:
    """A security event (`event_type` security_*): also written to the security file."""
    event_type = record["extra"].get("event_type")
    return isinstance(event_type, str) and event_type.startswith(SECURITY_PREFIX)


def _env_number(name: str, kind: type[int] | type[float]) -> Any:
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    try:
        return kind(text)
    except ValueError:
        raise ConfigError(f"{name}={text!r} is not a number") from None


def _is_terminal(stream: TextIO) -> bool:
    if "NO_COLOR" in os.environ:
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _remove_own_handlers() -> None:
    global _default_removed
    if not _default_removed:
        with contextlib.suppress(ValueError):
            logger.remove(0)  # loguru's default stderr handler
        _default_removed = True
    while _handler_ids:
        with contextlib.suppress(ValueError):
            logger.remove(_handler_ids.pop())


def shutdown_logging() -> None:
    """Flush and remove every handler `setup_logging` added, and the redaction patcher/defaults."""
    _remove_own_handlers()
    logger.configure(extra={}, patcher=None)
    set_min_level(0)


def flush_logs(timeout: float = 10.0) -> bool:
    """Block until every record logged so far is written and flushed to its sink; False on timeout."""
    return _WRITER.flush(timeout)


def get_logger(component: str, **context: Any) -> Logger:
    """A logger bound to `component` and any context (exchange=..., symbol=...)."""
    return logger.bind(component=component, **context)


def log_context(**fields: Any) -> contextlib.AbstractContextManager[None]:
    """Add `fields` to every record logged inside the block, in this asyncio task (or thread) only.

    Built on contextvars: a task created inside the block inherits the fields; sibling tasks never see
    them.
    """
    return logger.contextualize(**fields)


_trade_log = logger.bind(component="trades")


def log_trade(symbol: str, price: Any, quantity: Any, exchange: str, **context: Any) -> None:
    """INFO record of one trade with fields symbol, price, quantity, exchange (exact strings welcome)."""
    _trade_log.opt(depth=1).info(
        "trade {exchange} {symbol} {quantity} @ {price}",
        symbol=symbol,
        price=price,
        quantity=quantity,
        exchange=exchange,
        **context,
    )


def log_performance(operation: str, duration_ms: float, **context: Any) -> None:
    """INFO record `<operation> took <duration_ms> ms` with fields operation, duration_ms and `context`."""
    component = context.pop("component", "performance")
    logger.bind(component=component).opt(depth=1).info(
        "{operation} took {duration_ms:.3f} ms", operation=operation, duration_ms=duration_ms, **context
    )


class InterceptHandler(logging.Handler):
    """Forwards standard-library log records to Loguru, keeping level, caller and exception."""

    def emit(self, record: logging.LogRecord) -> None:
        level: str | int
        try:
            level = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        frame, depth = inspect.currentframe(), 0
        while frame is not None and (depth == 0 or frame.f_code.co_filename == logging.__file__):
            frame = frame.f_back
            depth += 1
        logger.opt(depth=depth, exception=record.exc_info).bind(component=record.name).log(
            level, record.getMessage()
        )


def route_stdlib_logging(level_no: int = logging.INFO) -> None:
    """Route the standard `logging` module into Loguru: one InterceptHandler on the root logger per
    process; noisy libraries lose their own handlers, propagate to root and are capped at INFO."""
    root = logging.getLogger()
    if not any(isinstance(h, InterceptHandler) for h in root.handlers):
        root.addHandler(InterceptHandler())
    root.setLevel(level_no)
    for name in NOISY_LIBRARIES:
        lib = logging.getLogger(name)
        lib.handlers.clear()
        lib.propagate = True
        lib.setLevel(max(logging.INFO, level_no))
