"""Reader of the golden venue fixtures (format: tests/fixtures/venues/README.md)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, NamedTuple

from collectors.adapter import ExchangeAdapter, Gap, RestRequest
from collectors.registry import create_adapter
from core.types import Side, Trade

VENUES_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "venues"
TS_RECV_BASE = 1_700_000_000_000_000_000


class Venue(NamedTuple):
    """One venue's fixture folder, read."""

    name: str
    symbols_body: bytes
    instruments: dict[str, Any]
    frames: list[str]
    trades: list[dict[str, Any]]
    malformed: list[dict[str, Any]]
    reconnect: list[str]
    repair: dict[str, Any]
    connection: dict[str, Any]
    recent: dict[str, Any] | None  # RepairKind.RECENT_ONLY venues only


def fixture_names() -> set[str]:
    return {p.name for p in VENUES_DIR.iterdir() if p.is_dir()}


@functools.cache
def load(name: str) -> Venue:
    folder = VENUES_DIR / name
    reconnect = folder / "reconnect.txt"
    recent = folder / "recent.json"
    return Venue(
        name,
        (folder / "symbols.json").read_bytes(),
        _json(folder / "instruments.json"),
        _lines(folder / "frames.txt"),
        _json(folder / "trades.json"),
        _json(folder / "malformed.json"),
        _lines(reconnect) if reconnect.exists() else [],
        _json(folder / "repair.json"),
        _json(folder / "connection.json"),
        _json(recent) if recent.exists() else None,
    )


def adapter(name: str) -> ExchangeAdapter:
    """The adapter knowing the instruments its own `parse_symbols` reads from symbols.json."""
    return create_adapter(name, create_adapter(name).parse_symbols(load(name).symbols_body))


def ts_recv(line: int) -> int:
    return TS_RECV_BASE + line * 1000


def trade(fields: dict[str, Any]) -> Trade:
    """A Trade from a fixture's JSON object (`line` ignored)."""
    values = {k: v for k, v in fields.items() if k != "line"}
    values["side"] = Side(values["side"])
    return Trade(**values)


def frame_bytes(entry: dict[str, Any]) -> bytes:
    """A malformed.json entry's frame: `frame` text (UTF-8) or `frame_hex`, with `expand` applied."""
    raw = bytes.fromhex(entry["frame_hex"]) if "frame_hex" in entry else entry["frame"].encode()
    for token, (text, times) in entry.get("expand", {}).items():
        raw = raw.replace(token.encode(), text.encode() * times)
    return raw


def body_bytes(entry: dict[str, Any]) -> bytes:
    """A repair.json body: `body_text` as is, else `body` as compact JSON."""
    if "body_text" in entry:
        return str(entry["body_text"]).encode()
    return json.dumps(entry["body"], separators=(",", ":")).encode()


def gap(entry: dict[str, Any]) -> Gap:
    """A repair.json gap (`after_ns` / `before_ns` optional, 0 when absent: unknown)."""
    return Gap(
        entry["raw_symbol"],
        entry["first"],
        entry["last"],
        entry.get("after_ns", 0),
        entry.get("before_ns", 0),
    )


def request(entry: dict[str, Any]) -> RestRequest:
    return RestRequest(entry["path"], tuple((k, v) for k, v in entry["params"]))


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _lines(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n") and "\n\n" not in text, f"{path}: one frame per line, no blank lines"
    return text[:-1].split("\n")
