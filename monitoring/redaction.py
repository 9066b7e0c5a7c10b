"""Secret redaction for log records: nothing that looks like a credential reaches a sink.

Two rules, applied to every record by the patcher that `monitoring.logger.setup_logging` installs:
- a field whose key contains (case-insensitive) one of `SENSITIVE_KEY_PARTS` has its value replaced by
  `REDACTED`, at any depth of nested dicts (and dicts inside lists/tuples);
- a password inside a URL or DSN (`postgresql://user:pw@host`, `redis://:pw@host`) or in a `password=...`
  pair is replaced by `REDACTED`, in the message, in string field values and in exception text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

REDACTED = "***"
SENSITIVE_KEY_PARTS = (
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "api-key",
    "authorization",
    "cookie",
)

# scheme://[user]:password@ ; the user part cannot hold ':', '/' or '@', the password runs to the '@'.
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*:)(?P<pw>[^@\s]+)@")
# key=value pairs whose key names a secret: password=x, api_key='x', ?token=x&...
_KV_SECRET = re.compile(
    r"(?i)(?P<head>\b[\w\-]*(?:" + "|".join(re.escape(p) for p in SENSITIVE_KEY_PARTS) + r")[\w\-]*"
    r"\s*=\s*)(?P<value>'[^']*'|\"[^\"]*\"|[^\s,;&)]+)"
)


@lru_cache(maxsize=4096)
def is_sensitive_key(key: str) -> bool:
    """True when a field named `key` must have its value hidden."""
    lowered = key.lower()
    return any(part in lowered for part in SENSITIVE_KEY_PARTS)


def redact_text(text: str) -> str:
    """`text` with URL/DSN passwords and `secret=value` pairs replaced by `REDACTED`."""
    if "://" in text:
        text = _URL_PASSWORD.sub(rf"\g<head>{REDACTED}@", text)
    if "=" in text:
        text = _KV_SECRET.sub(rf"\g<head>{REDACTED}", text)
    return text


def redact_value(value: Any) -> Any:
    """A copy of `value` with secrets hidden; the caller's objects are never mutated."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return redact_fields(value)
    if isinstance(value, list | tuple):
        return type(value)(redact_value(v) for v in value)
    return value


def redact_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """A new dict: sensitive keys masked, string values scrubbed, nested containers redacted."""
    return {
        key: REDACTED if isinstance(key, str) and is_sensitive_key(key) else redact_value(value)
        for key, value in fields.items()
    }


def _needs_redaction(fields: Mapping[str, Any]) -> bool:
    for key, value in fields.items():
        if isinstance(key, str) and is_sensitive_key(key):
            return True
        if isinstance(value, str):
            if "://" in value or "=" in value:
                return True
        elif isinstance(value, Mapping | list | tuple):
            return True
    return False


def redact_record(record: Any) -> None:
    """Loguru patcher: scrub the message and the bound/contextual fields of `record` in place."""
    record["message"] = redact_text(record["message"])
    extra = record["extra"]
    if extra and _needs_redaction(extra):
        record["extra"] = redact_fields(extra)
