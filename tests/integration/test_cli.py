"""The `cryptostock` command as a user runs it: migrations, and bad settings rejected with one clear line
(exit 2), never a traceback."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import free_port
from tests.integration.procs import CRYPTOSTOCK, ROOT, base_env

pytestmark = pytest.mark.integration


def cryptostock(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CRYPTOSTOCK, *args], cwd=ROOT, env=base_env(tmp_path, **env), capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip


def assert_one_line_error(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("cryptostock")]
    assert len(error_lines) == 1, result.stderr
    for text in expected:
        assert text in error_lines[0], error_lines[0]


async def test_db_migrate_applies_every_migration(tmp_path: Path, pg_url: str) -> None:
    result = cryptostock(tmp_path, "db", "migrate", DATABASE_URL=pg_url)
    assert result.returncode == 0, result.stdout + result.stderr
    conn = await asyncpg.connect(pg_url)
    try:
        versions = [
            r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY 1")
        ]
    finally:
        await conn.close()
    assert versions[:2] == [1, 2]
    again = cryptostock(tmp_path, "db", "migrate", DATABASE_URL=pg_url)
    assert again.returncode == 0, again.stderr


def test_unknown_exchange_is_one_clear_line(tmp_path: Path) -> None:
    result = cryptostock(
        tmp_path, "collector", "--exchange", "nope", "--ws-url", "ws://127.0.0.1:9", "--rest-url",
        "http://127.0.0.1:9", "--metrics-port", str(free_port()),
    )  # fmt: skip
    assert_one_line_error(result, "unknown exchange 'nope'", "binance")


def test_invalid_setting_is_one_clear_line(tmp_path: Path) -> None:
    result = cryptostock(tmp_path, "processor", "--timeframes", "7x", "--metrics-port", str(free_port()))
    assert_one_line_error(result, "timeframes", "7x")


@contextmanager
def busy_port() -> Iterator[int]:
    """A port on 127.0.0.1 that something already listens on."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        yield busy.getsockname()[1]


def test_metrics_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    with busy_port() as port:
        result = cryptostock(tmp_path, "run", "--metrics-port", str(port), "--metrics-addr", "127.0.0.1")
    assert_one_line_error(result, f"metrics port {port}", "already in use")


def test_bad_start_up_faults_are_one_clear_line(tmp_path: Path) -> None:
    result = cryptostock(
        tmp_path, "simulate", "--faults", '{"explode": 1}', "--metrics-port", str(free_port())
    )
    assert_one_line_error(result, "faults")


def test_a_misspelled_variable_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    result = cryptostock(tmp_path, "run", CRYPTOSTOCK_STALE_TIMOUT="5")
    assert_one_line_error(result, "unknown setting CRYPTOSTOCK_STALE_TIMOUT", "CRYPTOSTOCK_STALE_TIMEOUT?")


def test_an_invalid_value_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    result = cryptostock(tmp_path, "processor", "--in-process-bus", LOG_LEVEL="LOUD")
    assert_one_line_error(result, "LOG_LEVEL: unknown log level 'LOUD'", "INFO")


@pytest.mark.parametrize("command", ["collector", "processor", "api"])
def test_a_separate_daemon_refuses_a_bus_no_one_else_sees(tmp_path: Path, command: str) -> None:
    result = cryptostock(tmp_path, command, "--metrics-port", str(free_port()))
    assert_one_line_error(result, "REDIS_URL is not set", "--in-process-bus")


def test_a_busy_api_port_fails_before_the_api_says_ready(tmp_path: Path) -> None:
    with busy_port() as port:
        result = cryptostock(
            tmp_path, "api", "--in-process-bus", "--host", "127.0.0.1", "--port", str(port),
            "--metrics-port", str(free_port()),
        )  # fmt: skip
    assert_one_line_error(result, f"API port {port} on 127.0.0.1 is already in use")
    assert "API ready" not in result.stderr + result.stdout


def test_failures_are_one_json_record_with_log_format_json(tmp_path: Path) -> None:
    refused = "postgresql://postgres@127.0.0.1:1/nothing"
    result = cryptostock(tmp_path, "db", "migrate", DATABASE_URL=refused, LOG_FORMAT="json")
    assert result.returncode == 1 and result.stdout == ""
    (line,) = result.stderr.splitlines()  # the error once, and nothing else on the console
    record = json.loads(line)
    assert (record["level"], record["service"], record["error"], record["exit_code"]) == (
        "ERROR", "db migrate", "StorageError", 1,
    )  # fmt: skip
    assert record["message"].startswith("cryptostock db migrate: StorageError: migrate failed")
    settings_error = cryptostock(tmp_path, "run", "--log-format", "json", "--grace-seconds", "-1")
    record = json.loads(settings_error.stderr.strip())
    assert (record["error"], record["exit_code"]) == ("InvalidSettings", 2)
    assert "--grace-seconds" in record["message"]


def test_db_migrate_reports_once_in_json(tmp_path: Path) -> None:
    result = cryptostock(tmp_path, "db", "migrate", LOG_FORMAT="json")
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()
    assert json.loads(line)["message"].startswith("cryptostock db migrate: schema up to date")
    assert result.stderr == ""
    assert list((tmp_path / "logs" / "migrate").glob("app_*.log"))  # the details are in the log file


def test_version(tmp_path: Path) -> None:
    result = cryptostock(tmp_path, "--version")
    assert (result.returncode, result.stdout.strip()) == (0, f"cryptostock {metadata.version('cryptostock')}")
