"""Logging behaviour through the real Loguru pipeline, the writer thread and real files."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest
from loguru import logger

from core.errors import ConfigError
from monitoring.logger import (
    InterceptHandler,
    LoggingSetup,
    flush_logs,
    get_logger,
    log_context,
    log_performance,
    log_trade,
)
from tests.monitoring.conftest import current_file, read_json, read_lines

Configure = Callable[..., LoggingSetup]


def test_json_lines_carry_bound_context_and_exception(configure_logging: Configure) -> None:
    setup = configure_logging(json=True, service="collector")
    log = get_logger("session", exchange="binance", symbol="BTCUSDT")
    log.info("connected to {}", "wss")
    try:
        raise ZeroDivisionError("division by zero")
    except ZeroDivisionError:
        log.bind(attempt=3).exception("reconnect failed")
    info, error = read_json(current_file(setup.app_file))
    for record in (info, error):
        assert record["service"] == "collector"
        assert record["component"] == "session"
        assert record["exchange"] == "binance" and record["symbol"] == "BTCUSDT"
        stamp = dt.datetime.fromisoformat(record["timestamp"])
        assert stamp.utcoffset() == dt.timedelta(0) and record["timestamp"].endswith("Z")
    assert info["level"] == "INFO" and info["message"] == "connected to wss"
    assert "exception" not in info and "traceback" not in info
    assert error["level"] == "ERROR" and error["attempt"] == 3
    assert error["exception"] == "ZeroDivisionError: division by zero"
    assert error["traceback"].startswith("Traceback (most recent call last):")
    assert "test_json_lines_carry_bound_context_and_exception" in error["traceback"]


def test_log_format_env_selects_json(configure_logging: Configure, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_FORMAT", "json")
    setup = configure_logging()
    get_logger("x").info("hello")
    assert setup.json
    assert read_json(current_file(setup.app_file))[0]["message"] == "hello"


def test_files_are_per_service_and_log_dir_env(
    configure_logging: Configure, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("LOG_DIR", str(tmp_path / "from_env"))
    setup = configure_logging(service="processor", log_dir=None)
    get_logger("bars").warning("late trade")
    today = dt.datetime.now(dt.UTC).date().isoformat()
    app = tmp_path / "from_env" / "processor" / f"app_{today}.log"
    assert setup.app_file is not None and current_file(setup.app_file) == app
    (line,) = read_lines(app)
    assert "| WARNING  | processor | bars | late trade" in line


def test_error_file_receives_only_errors(configure_logging: Configure) -> None:
    setup = configure_logging(level="DEBUG")
    log = get_logger("db")
    for level in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        log.log(level, f"at {level.lower()}")
    assert current_file(setup.error_file).name.startswith("error_")
    app = read_lines(current_file(setup.app_file))
    errors = read_lines(current_file(setup.error_file))
    assert [line.rsplit(" | ", 1)[1] for line in app] == [
        "at debug",
        "at info",
        "at warning",
        "at error",
        "at critical",
    ]
    assert [line.rsplit(" | ", 1)[1] for line in errors] == ["at error", "at critical"]


def test_level_filters_app_file(configure_logging: Configure) -> None:
    setup = configure_logging(level="WARNING")
    get_logger("x").info("hidden")
    get_logger("x").warning("shown")
    assert [line.rsplit(" | ", 1)[1] for line in read_lines(current_file(setup.app_file))] == ["shown"]


def test_unknown_level_is_a_config_error(configure_logging: Configure) -> None:
    with pytest.raises(ConfigError, match="unknown log level"):
        configure_logging(level="LOUD")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_console_is_plain_off_terminal_and_coloured_on_one(
    configure_logging: Configure, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    plain = io.StringIO()
    configure_logging(console=True, files=False, stream=plain)
    get_logger("api").info("plain line")
    flush_logs()
    assert "plain line" in plain.getvalue() and "\x1b[" not in plain.getvalue()
    tty = _Terminal()
    configure_logging(console=True, files=False, stream=tty)
    get_logger("api").error("coloured line")
    flush_logs()
    assert "coloured line" in tty.getvalue() and "\x1b[31m" in tty.getvalue()
    assert "plain line" not in tty.getvalue()


def test_setup_again_reconfigures_without_duplicate_sinks(configure_logging: Configure) -> None:
    first = io.StringIO()
    configure_logging(console=True, stream=first)
    second = io.StringIO()
    setup = configure_logging(console=True, stream=second)
    get_logger("x").info("once")
    logging.getLogger("aiohttp.client").warning("stdlib once")
    flush_logs()
    assert first.getvalue() == ""
    assert second.getvalue().count("once") == 2  # "once" and "stdlib once", one line each
    assert len(second.getvalue().splitlines()) == 2
    assert len(read_lines(current_file(setup.app_file))) == 2
    assert sum(isinstance(h, InterceptHandler) for h in logging.getLogger().handlers) == 1


def test_stdlib_logging_is_routed_and_noisy_libraries_capped(configure_logging: Configure) -> None:
    setup = configure_logging(level="DEBUG", json=True)
    logging.getLogger("uvicorn.error").info("Uvicorn running on %s", "http://127.0.0.1:8000")
    logging.getLogger("websockets.client").debug("< TEXT frame (noisy)")
    logging.getLogger("asyncpg.pool").warning("pool %s", "closing")
    logging.getLogger("cryptostock.custom").debug("own stdlib debug")
    try:
        raise OSError("connection reset")
    except OSError:
        logging.getLogger("aiohttp.client").exception("request failed")
    records = read_json(current_file(setup.app_file))
    by_message = {r["message"]: r for r in records}
    assert set(by_message) == {
        "Uvicorn running on http://127.0.0.1:8000",
        "pool closing",
        "own stdlib debug",
        "request failed",
    }
    assert by_message["pool closing"]["level"] == "WARNING"
    assert by_message["pool closing"]["component"] == "asyncpg.pool"
    assert (
        by_message["pool closing"]["function"] == "test_stdlib_logging_is_routed_and_noisy_libraries_capped"
    )
    assert by_message["request failed"]["exception"] == "OSError: connection reset"


def test_log_trade_and_log_performance_fields(configure_logging: Configure) -> None:
    setup = configure_logging(json=True)
    log_trade("BTC-USDT", "50000.10", "0.00100000", "binance")
    log_performance("db_insert", 12.5, table="trades", rows=100)
    trade, perf = read_json(current_file(setup.app_file))
    assert {k: trade[k] for k in ("symbol", "price", "quantity", "exchange", "component")} == {
        "symbol": "BTC-USDT",
        "price": "50000.10",
        "quantity": "0.00100000",
        "exchange": "binance",
        "component": "trades",
    }
    assert trade["function"] == "test_log_trade_and_log_performance_fields"
    assert perf["operation"] == "db_insert" and perf["duration_ms"] == 12.5
    assert perf["table"] == "trades" and perf["rows"] == 100
    assert perf["message"] == "db_insert took 12.500 ms"


SECRETS = ("hunter2", "s3cret", "dbpass", "k-123", "Bearer abc", "sess=xyz", "tok-9")


@pytest.mark.parametrize("json_format", [True, False])
def test_secrets_never_reach_a_sink(configure_logging: Configure, json_format: bool) -> None:
    console = io.StringIO()
    setup = configure_logging(json=json_format, console=True, stream=console)
    log = get_logger("storage", dsn="postgresql://app:dbpass@db:5432/market")
    log.info(
        "connecting to {} and redis://:s3cret@cache:6379/0",
        "postgresql://app:dbpass@db:5432/market",
        password="hunter2",
        nested={"API_KEY": "k-123", "inner": {"Authorization": "Bearer abc"}, "host": "db"},
        session_cookie="sess=xyz",
        headers=[{"x-auth-token": "tok-9"}],
    )
    try:
        raise ConnectionError("cannot reach postgresql://app:dbpass@db:5432/market")
    except ConnectionError:
        log.exception("failed with password=hunter2")
    assert flush_logs()
    texts = [
        console.getvalue(),
        "\n".join(read_lines(current_file(setup.app_file))),
        "\n".join(read_lines(current_file(setup.error_file))),
    ]
    for text in texts:
        assert text
        for secret in SECRETS:
            assert secret not in text
        assert "postgresql://app:***@db:5432/market" in text
    assert "redis://:***@cache:6379/0" in texts[1]
    assert "password=***" in texts[2]
    if json_format:
        info = read_json(current_file(setup.app_file))[0]
        assert info["password"] == "***"
        assert info["nested"] == {"API_KEY": "***", "inner": {"Authorization": "***"}, "host": "db"}
        assert info["headers"] == [{"x-auth-token": "***"}]


async def test_log_context_stays_with_its_task(configure_logging: Configure) -> None:
    setup = configure_logging(json=True)
    log = get_logger("api")
    both_inside = asyncio.Barrier(2)

    async def handle(request_id: str) -> None:
        with log_context(request_id=request_id):
            log.info("start")
            await both_inside.wait()  # both contexts are active at the same time
            log.info("end")

    async with asyncio.TaskGroup() as tg:
        tg.create_task(handle("r-1"))
        tg.create_task(handle("r-2"))
    log.info("outside")
    records = read_json(current_file(setup.app_file))
    assert len(records) == 5
    pairs = sorted((r.get("request_id"), r["message"]) for r in records if r["message"] != "outside")
    assert pairs == [("r-1", "end"), ("r-1", "start"), ("r-2", "end"), ("r-2", "start")]
    (outside,) = [r for r in records if r["message"] == "outside"]
    assert "request_id" not in outside


class _BlockingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.writer_threads: set[int] = set()

    def write(self, s: str) -> int:
        self.writer_threads.add(threading.get_ident())
        self.release.wait(10)
        return super().write(s)


def test_logging_call_does_not_wait_for_the_sink(configure_logging: Configure) -> None:
    stream = _BlockingStream()
    configure_logging(console=True, files=False, stream=stream)
    get_logger("x").info("first")  # would block here for 10 s if the caller did the I/O
    get_logger("x").info("second")
    assert stream.getvalue() == ""
    stream.release.set()
    assert flush_logs()
    assert [line.rsplit(" | ", 1)[1] for line in stream.getvalue().splitlines()] == ["first", "second"]
    assert threading.get_ident() not in stream.writer_threads


def test_default_handler_is_removed(configure_logging: Configure) -> None:
    configure_logging()
    setup = configure_logging()
    handler_ids = set(logger._core.handlers)  # type: ignore[attr-defined]
    assert set(setup.handler_ids) <= handler_ids
    assert 0 not in handler_ids
