"""Versioned SQL migrations shipped as package data: `storage/migrations/<dialect>/NNN_name.sql`.

Each store applies the pending ones in version order, each inside a transaction, and records them in
`schema_migrations(version, name, applied_at)`. Versions are unique across the dialect directories a
store uses (PostgreSQL: `postgres/` always, `timescale/` when the extension is available).
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from importlib import resources

from core.errors import ConfigError

_FILE = re.compile(r"^(\d{3,})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    """One migration file: `version` orders it, `sql` is its whole text."""

    version: int
    name: str
    dialect: str
    sql: str


def load_migrations(*dialects: str) -> list[Migration]:
    """The migration files of these dialect directories, sorted by version; duplicates are an error."""
    found: dict[int, Migration] = {}
    root = resources.files("storage").joinpath("migrations")
    for dialect in dialects:
        for entry in root.joinpath(dialect).iterdir():
            match = _FILE.match(entry.name)
            if match is None:
                continue
            version = int(match.group(1))
            if version in found:
                raise ConfigError(f"migration version {version} defined twice ({dialect}/{entry.name})")
            found[version] = Migration(version, match.group(2), dialect, entry.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


def sqlite_statements(sql: str) -> list[str]:
    """Split a SQLite script into complete statements (triggers and quoted ';' stay whole)."""
    statements: list[str] = []
    buffer = ""
    for line in sql.splitlines(keepends=True):
        if not buffer and (not line.strip() or line.lstrip().startswith("--")):
            continue
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        raise ConfigError(f"incomplete SQL statement at end of migration: {buffer[:200]!r}")
    return statements
