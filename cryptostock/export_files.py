"""The columns of exported bars and trades, and the Parquet and CSV writers that take them page by page.

Columns follow the record types (core.types), so a field added there is exported too:
- prices, sizes, ids and bar volumes are exact decimal strings (Parquet `string`, CSV as sent);
- every time is given twice: a UTC timestamp (Parquet `timestamp[ns, tz=UTC]`, CSV ISO-8601 with 9
  decimals and `Z`) and the exact integer ns since the epoch (`<name>_ns`, int64);
- vwap, indicators and features are float64, empty (null) where not warmed up.
Each page becomes one Parquet row group (or CSV rows), so memory stays bounded by the page size.
"""

from __future__ import annotations

import csv
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

import msgspec

from core.types import Bar, ClosedBar, Features, Indicators, Trade

NS = 1_000_000_000
# Record fields holding ns times -> the exported column names (timestamp and `<name>_ns`).
TIME_COLUMNS = {
    "open_time": "open_time",
    "close_time": "close_time",
    "ts_event": "time",
    "ts_recv": "received_time",
}


@dataclass(frozen=True)
class Column:
    """One exported column: `kind` is timestamp, int, float, str or bool; `get` reads it from a record."""

    name: str
    kind: str
    get: Callable[[Any], Any]


def _kind(annotation: object) -> str:
    """The column kind of a field's type, looking through Optional and Annotated (constrained) types."""
    while typing.get_origin(annotation) in (typing.Annotated, typing.Union, types.UnionType):
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    for python_type, kind in ((bool, "bool"), (int, "int"), (float, "float")):
        if annotation is python_type:
            return kind
    return "str"  # str, and enums written as their value


def _columns(struct: type[msgspec.Struct], read: Callable[[Any], Any]) -> list[Column]:
    columns: list[Column] = []
    for field in msgspec.structs.fields(struct):
        name = field.name

        def get(record: Any, name: str = name) -> Any:
            value = getattr(read(record), name)
            return value.value if isinstance(value, Enum) else value

        if name in TIME_COLUMNS:
            exported = TIME_COLUMNS[name]
            columns += [Column(exported, "timestamp", get), Column(f"{exported}_ns", "int", get)]
        else:
            columns.append(Column(name, _kind(field.type), get))
    return columns


BAR_COLUMNS: list[Column] = [
    *_columns(Bar, lambda c: c.bar),
    *_columns(Indicators, lambda c: c.indicators),
    *_columns(Features, lambda c: c.features),
]
TRADE_COLUMNS: list[Column] = _columns(Trade, lambda t: t)


def columns_for(kind: str) -> list[Column]:
    return BAR_COLUMNS if kind == "bars" else TRADE_COLUMNS


class PageWriter(Protocol):
    def write(self, records: Sequence[ClosedBar] | Sequence[Trade]) -> None: ...
    def close(self) -> None: ...


class ParquetWriter:
    """Parquet through pyarrow: one row group per page."""

    def __init__(self, path: Path, columns: list[Column]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        types = {
            "timestamp": pa.timestamp("ns", tz="UTC"),
            "int": pa.int64(),
            "float": pa.float64(),
            "str": pa.string(),
            "bool": pa.bool_(),
        }
        self._pa = pa
        self._columns = columns
        self._schema = pa.schema([pa.field(c.name, types[c.kind]) for c in columns])
        self._writer = pq.ParquetWriter(str(path), self._schema, compression="zstd")

    def write(self, records: Sequence[ClosedBar] | Sequence[Trade]) -> None:
        arrays = [
            self._pa.array([c.get(r) for r in records], type=self._schema.field(c.name).type)
            for c in self._columns
        ]
        self._writer.write_table(self._pa.Table.from_arrays(arrays, schema=self._schema))

    def close(self) -> None:
        self._writer.close()


def iso_ns(ns: int) -> str:
    """Integer ns UTC -> '2024-01-01T00:00:00.123456789Z' (exact)."""
    seconds, fraction = divmod(ns, NS)
    moment = datetime.fromtimestamp(seconds, UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{fraction:09d}Z"


def _csv_text(kind: str, value: Any) -> str:
    if value is None:
        return ""
    if kind == "timestamp":
        return iso_ns(value)
    if kind == "bool":
        return "true" if value else "false"
    return str(value)  # exact strings as sent; floats in their shortest round-trip form


class CsvWriter:
    """CSV with a header row; empty fields are nulls."""

    def __init__(self, path: Path, columns: list[Column]) -> None:
        self._file = path.open("w", newline="", encoding="utf-8")
        self._csv = csv.writer(self._file)
        self._columns = columns
        self._csv.writerow([c.name for c in columns])

    def write(self, records: Sequence[ClosedBar] | Sequence[Trade]) -> None:
        self._csv.writerows([_csv_text(c.kind, c.get(r)) for c in self._columns] for r in records)

    def close(self) -> None:
        self._file.close()


def open_writer(fmt: str, path: Path, columns: list[Column]) -> PageWriter:
    return ParquetWriter(path, columns) if fmt == "parquet" else CsvWriter(path, columns)
