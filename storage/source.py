"""The data-source guard: a database holds either simulated or live data, never both silently."""

from __future__ import annotations

from core.errors import ConfigError

SOURCES = ("simulated", "live")


def check_source(source: str, *, recorded: str | None = None, where: str = "the database") -> None:
    """ConfigError for an unknown source, or when `recorded` (what the database holds) differs."""
    if source not in SOURCES:
        raise ConfigError(f"unknown data source {source!r}: expected one of {', '.join(SOURCES)}")
    if recorded is not None and recorded != source:
        raise ConfigError(
            f"{where} holds {recorded} data but this process would write {source} data; "
            "use a separate database (or SQLite file) for each source"
        )
