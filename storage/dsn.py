"""Connection URLs are logged only with their password replaced."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def redact_dsn(url: str) -> str:
    """`url` with any password replaced by '***' (user, host, port, path and query kept)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
