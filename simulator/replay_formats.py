"""The trade files a replay reads (pure): our own CSV, and the venues' public trade files registered in
simulator.venues.REPLAY_FILE_FORMATS (each turned into the six fields of our format).

Ours: header `timestamp_ms,symbol,trade_id,price,quantity,is_buyer_maker` (see simulator.replay).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from core.errors import ConfigError

OUR_COLUMNS = ("timestamp_ms", "symbol", "trade_id", "price", "quantity", "is_buyer_maker")
Row = list[str]


@dataclass(frozen=True)
class ReplayFormat:
    """How to read one file: `columns` per data row, whether its first row is a header, and `to_ours`
    turning a data row into our six fields (time ms, symbol, id, price, quantity, is_buyer_maker)."""

    name: str
    columns: tuple[int, ...]  # accepted field counts
    has_header: bool
    to_ours: Callable[[Row], Row]
    symbol: str | None = None  # the file's one symbol, where its name says it


FileFormat = Callable[[Path, Sequence[str]], ReplayFormat | None]
"""A venue's public file format: its ReplayFormat for `path` (and the file's first row), None if not one."""

OURS = ReplayFormat("ours", (6,), True, list)


def detect(
    path: Path, first_row: Sequence[str], venue_formats: Sequence[tuple[FileFormat, str]] = ()
) -> ReplayFormat:
    """The format of `path` from its first row and name: ours, else the first venue format that knows it
    (`venue_formats`: (reader, what it accepts)); ConfigError saying what is accepted."""
    if tuple(cell.strip() for cell in first_row) == OUR_COLUMNS:
        return OURS
    for known, _ in venue_formats:
        found = known(path, first_row)
        if found is not None:
            return found
    accepted = "; ".join(what for _, what in venue_formats)
    raise ConfigError(
        f"replay file {path}: expected the header {','.join(OUR_COLUMNS)}"
        f"{', or ' + accepted if accepted else ''}; got first row {list(first_row)[:8]}"
    )
