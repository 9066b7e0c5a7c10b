"""Secret shapes a log line can carry, each through the real logging setup (console, app and error files,
text and JSON lines), and `storage.dsn.redact_dsn` for the connection URLs the daemons log."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest

from cryptostock.outcome import report_failure
from monitoring.logger import LoggingSetup, flush_logs, get_logger
from monitoring.redaction import REDACTED, SENSITIVE_KEY_PARTS, redact_text
from storage.dsn import redact_dsn
from tests.monitoring.conftest import current_file, read_lines

Configure = Callable[..., LoggingSetup]


class DsnObject:
    """An object whose str() is a URL with a password (yarl.URL, pydantic's AnyUrl...)."""

    def __str__(self) -> str:
        return "postgresql://app:obj-pw-1@db/market"


# (message, secrets that must not appear, text that must appear)
MESSAGES = [
    ("dsn postgresql://user:p@ss@host/db", ["p@ss", "ss@host"], "postgresql://user:***@host/db"),
    ("dsn postgresql://user:a@b/c@host:5432/db?x=1", ["a@b", "b/c"], "user:***@host:5432/db?x=1"),
    ("redis redis://:r3d@is@cache:6379/0", ["r3d", "is@cache"], "redis://:***@cache:6379/0"),
    ("redis rediss://default:pw-42@cache:6380", ["pw-42"], "rediss://default:***@cache:6380"),
    ("header Authorization: Bearer eyJhbGc.eyJzdWI.sig-1", ["eyJhbGc", "sig-1"], "Authorization: ***"),
    ("got bearer abc.DEF_123~+/= from the client", ["abc.DEF"], "bearer *** from the client"),
    ("proxy-authorization: Basic dXNlcjpwYXNz", ["dXNlcjpwYXNz"], "proxy-authorization: ***"),
    ("X-Api-Key: key-777", ["key-777"], "X-Api-Key: ***"),
    ("Cookie: session=abc123; theme=dark", ["abc123", "dark"], "Cookie: ***"),
    ("GET https://venue.example/v1?symbol=BTC&token=tk-5&x=1", ["tk-5"], "token=***&x=1"),
    ("url https://venue.example/?api_key=ak-6", ["ak-6"], "api_key=***"),
    ("postgresql://db/market?user=app&password=q-pw-8&sslmode=require", ["q-pw-8"], "sslmode=require"),
    ('body {"password": "j-pw-9", "user": "app"}', ["j-pw-9"], '"user": "app"'),
    ("repr {'client_secret': 'cs-10'}", ["cs-10"], "{'client_secret': ***}"),
    ("password: yaml-pw-11", ["yaml-pw-11"], "password: ***"),
]


def _log_everywhere(configure_logging: Configure, json_format: bool, emit: Callable[[], None]) -> list[str]:
    """Run `emit` with console, app and error sinks configured; return what each sink received."""
    console = io.StringIO()
    setup = configure_logging(json=json_format, console=True, stream=console)
    emit()
    assert flush_logs()
    return [
        console.getvalue(),
        "\n".join(read_lines(current_file(setup.app_file))),
        "\n".join(read_lines(current_file(setup.error_file))),
    ]


@pytest.mark.parametrize("json_format", [False, True], ids=["text", "json"])
@pytest.mark.parametrize(("message", "secrets", "kept"), MESSAGES, ids=[m[0][:24] for m in MESSAGES])
def test_secret_in_a_message_never_reaches_a_sink(
    configure_logging: Configure, json_format: bool, message: str, secrets: list[str], kept: str
) -> None:
    log = get_logger("redaction")
    sinks = _log_everywhere(configure_logging, json_format, lambda: log.error("{}", message))
    for text in sinks:
        for secret in secrets:
            assert secret not in text
    assert kept in sinks[0] if not json_format else kept.replace('"', '\\"') in sinks[0]


@pytest.mark.parametrize("json_format", [False, True], ids=["text", "json"])
def test_secret_in_fields_and_exceptions_never_reaches_a_sink(
    configure_logging: Configure, json_format: bool
) -> None:
    fields: dict[str, Any] = {
        "auth_header": "Bearer f-tok-1",  # the key says nothing; the value does
        "asgi_headers": [(b"authorization", b"Bearer f-tok-2"), (b"host", b"api")],
        "dsn": DsnObject(),
        "target": "postgresql://u:f@pw-3@db/x",
    }

    def emit() -> None:
        log = get_logger("api", **fields)
        try:
            raise PermissionError("refused Authorization: Bearer f-tok-4 for redis://:f-pw-5@cache/0")
        except PermissionError:
            log.exception("request failed")

    sinks = _log_everywhere(configure_logging, json_format, emit)
    for text in sinks:
        for secret in ("f-tok-1", "f-tok-2", "obj-pw-1", "f@pw-3", "pw-3@", "f-tok-4", "f-pw-5"):
            assert secret not in text
        assert "postgresql://app:***@db/market" in text
        assert "PermissionError" in text


def test_ordinary_prose_is_left_alone() -> None:
    for text in (
        "authorization failed for user app",
        "token bucket refilled; basic checks passed",
        "https://venue.example/api/v3/trades?symbol=BTCUSDT&limit=1000",
        "email a@b.example wrote http://host/path?x=a@b",
        "ratio 3:1 at 12:00:05",
    ):
        assert redact_text(text) == text


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://user:p@ss@host/db", "postgresql://user:***@host/db"),
        ("postgresql://u:p%40ss@db:5432/x?sslmode=require", "postgresql://u:***@db:5432/x?sslmode=require"),
        (
            "postgresql://db/x?user=u&password=pw1&sslmode=require",
            "postgresql://db/x?user=u&password=***&sslmode=require",
        ),
        ("postgresql://db/x?sslpassword=pw2", "postgresql://db/x?sslpassword=***"),
        ("redis://:pw3@cache:6379/0", "redis://:***@cache:6379/0"),
        ("redis://default:pw@4@cache:6379/0", "redis://default:***@cache:6379/0"),
        ("redis://cache:6379/0", "redis://cache:6379/0"),
        ("postgresql://[::1]:5432/db?password=pw5", "postgresql://[::1]:5432/db?password=***"),
        ("https://venue.example/ws?token=t6&listenKey=k", "https://venue.example/ws?token=***&listenKey=k"),
    ],
)
def test_redact_dsn_hides_every_password(url: str, expected: str) -> None:
    assert redact_dsn(url) == expected
    assert REDACTED in expected or "pw" not in url


@pytest.mark.parametrize("key", SENSITIVE_KEY_PARTS)
@pytest.mark.parametrize("separator", ["=", ": ", '": "'])
def test_every_sensitive_key_is_redacted_in_text(key: str, separator: str) -> None:
    quote = '"' if separator.startswith('"') else ""
    text = f"{quote}{key.upper()}{separator}v-{key}-1{quote}"
    assert f"v-{key}-1" not in redact_text(text)


@pytest.mark.parametrize("as_json", [False, True])
def test_a_command_s_failure_line_is_redacted(as_json: bool) -> None:
    """The one line a failing command prints to stderr (journald, docker logs keep it) is a sink too."""
    stream = io.StringIO()
    error = ConnectionError("cannot reach postgresql://app:p@ss@db/x with Authorization: Bearer tk-1")
    report_failure("processor", error, 1, as_json=as_json, stream=stream)
    assert "p@ss" not in stream.getvalue() and "tk-1" not in stream.getvalue()
    assert "postgresql://app:***@db/x" in stream.getvalue()
