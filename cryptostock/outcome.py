"""What a command says when it ends: one line, in one form for every command and every failure.

Text: `cryptostock <command>: <message>` (failures on stderr). JSON (LOG_FORMAT=json or --log-format
json): one object shaped like the JSON log records (timestamp, level, service, component, message) plus
`error` (the error's type) and `exit_code` for a failure. Exit codes: 2 for settings and arguments that
cannot work, 1 for a failure while running.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

from monitoring.redaction import redact_text

EXIT_CONFIG = 2
EXIT_FAILURE = 1


def wants_json(args: Mapping[str, Any], environ: Mapping[str, str] = os.environ) -> bool:
    """JSON when --log-format json was given, else when LOG_FORMAT=json (read before settings exist:
    the failure may be the settings themselves)."""
    chosen = args.get("log_format") or environ.get("LOG_FORMAT", "")
    return str(chosen).strip().lower() == "json"


def _line(command: str, level: str, message: str, as_json: bool, fields: Mapping[str, Any]) -> str:
    text = f"cryptostock {command}: {message}"
    if not as_json:
        return text
    now = datetime.now(UTC)
    record = {
        "timestamp": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond:06d}Z",
        "level": level,
        "service": command,
        "component": "cli",
        "message": text,
        **fields,
    }
    return json.dumps(record, default=str)


def report_failure(
    command: str,
    error: BaseException | str,
    exit_code: int,
    *,
    as_json: bool,
    kind: str | None = None,
    stream: TextIO | None = None,
) -> int:
    """Write the failure once and return `exit_code`; `kind` (default: the exception's type) goes into
    the JSON record's `error` field. Secrets in the message are redacted, as in the logs: it goes to
    stderr, which journald and container runtimes keep."""
    message = redact_text(error if isinstance(error, str) else str(error))
    fields = {"error": kind or type(error).__name__, "exit_code": exit_code}
    print(_line(command, "ERROR", message, as_json, fields), file=stream or sys.stderr, flush=True)
    return exit_code


def report_success(command: str, message: str, *, as_json: bool, **fields: Any) -> None:
    """Write a one-shot command's result (stdout)."""
    print(_line(command, "INFO", message, as_json, fields), flush=True)
