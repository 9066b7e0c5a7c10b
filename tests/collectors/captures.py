"""Reader of cryptofeed's recorded raw sessions (format: ../shared/captures/cryptofeed-sample/SOURCE.md)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

_HTTP = re.compile(r"^(\S+) -> ([0-9.]+): (.*)$")
_CONNECT = re.compile(r"^(wss?://\S+) <-> ([0-9.]+)$")
_SEND = re.compile(r"^(\S+) <- ([0-9.]+): (.*)$")


class Record(NamedTuple):
    """kind: config | http | connect | send | recv; ts: local float seconds; payload: text after ': '."""

    kind: str
    url: str
    ts: float
    payload: str


def read_records(path: Path) -> list[Record]:
    records: list[Record] = []
    for line in path.read_text(encoding="utf-8").split("\n"):
        if not line:
            continue
        if line.startswith("configuration: "):
            records.append(Record("config", "", 0.0, line[len("configuration: ") :]))
        elif match := _HTTP.match(line):
            records.append(Record("http", match[1], float(match[2]), match[3]))
        elif match := _CONNECT.match(line):
            records.append(Record("connect", match[1], float(match[2]), ""))
        elif match := _SEND.match(line):
            records.append(Record("send", match[1], float(match[2]), match[3]))
        else:
            ts, frame = line.split(": ", 1)
            records.append(Record("recv", "", float(ts), frame))
    return records


def ws_frames(path: Path) -> list[Record]:
    return [r for r in read_records(path) if r.kind == "recv"]


def http_body(path: Path, url_part: str) -> bytes:
    """Body of the first recorded REST response whose URL contains `url_part`."""
    for record in read_records(path):
        if record.kind == "http" and url_part in record.url:
            return record.payload.encode()
    raise LookupError(f"no response for {url_part!r} in {path.name}")
