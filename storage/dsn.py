"""Connection URLs are logged only with their secrets replaced."""

from __future__ import annotations

from monitoring.redaction import redact_text


def redact_dsn(url: str) -> str:
    """`url` with its password replaced by '***' (a password holding '@' or '/' included) and the values
    of secret query parameters (`password=`, `sslpassword=`, `token=`, `api_key=`...) too; user, host,
    port, path and the other parameters are kept."""
    return redact_text(url)
