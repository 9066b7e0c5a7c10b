"""A local spool for what could not be handed to the bus when a process stopped.

A collector that stops while its bus is unreachable (or a bus that closes with trades still buffered)
writes them here rather than dropping them; the next start publishes the spool first, then deletes it.
One file per save, `<name>-<ns>.spool` in `directory`, msgpack of a list of `core.types.BusItem`s in
publishing order, written to a temporary file, fsynced and renamed, so that a crash while saving leaves
either the whole file or nothing. Files are read oldest first.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
from loguru import logger

from core.errors import BusError, StorageError
from core.ports import TradeBus
from core.types import BusItem

SUFFIX = ".spool"


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(list[BusItem])


class Spool:
    """The spool directory of one kind of writer (`name`, e.g. "collector-binance")."""

    def __init__(self, directory: Path | str, name: str) -> None:
        self.directory = Path(directory)
        self.name = name

    def save(self, items: Sequence[BusItem]) -> Path | None:
        """Write `items` durably (StorageError if that fails); None when there is nothing to write."""
        items = [i for i in items if i.trades or i.events]
        if not items:
            return None
        path = self.directory / f"{self.name}-{time.time_ns()}{SUFFIX}"
        partial = path.with_suffix(".partial")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with partial.open("wb") as handle:
                handle.write(_encoder.encode(items))
                handle.flush()
                os.fsync(handle.fileno())
            partial.rename(path)
        except OSError as exc:
            raise StorageError(f"cannot write the spool {path}: {exc}") from exc
        return path

    def files(self) -> list[Path]:
        """Spool files waiting to be published, oldest first."""
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob(f"{self.name}-*{SUFFIX}"), key=lambda p: _stamp(p, self.name))

    def load(self, path: Path) -> list[BusItem]:
        """The items of one spool file; StorageError when it cannot be read or decoded."""
        try:
            return _decoder.decode(path.read_bytes())
        except (OSError, msgspec.DecodeError) as exc:
            raise StorageError(f"cannot read the spool {path}: {exc}") from exc


def _stamp(path: Path, name: str) -> int:
    text = path.name[len(name) + 1 : -len(SUFFIX)]
    return int(text) if text.isdigit() else 0


def count_trades(items: Sequence[BusItem]) -> int:
    return sum(len(i.trades) for i in items)


def save_leftover(spool: Spool | None, items: Sequence[BusItem], log: Any = logger) -> None:
    """What a closing bus could not deliver: into the spool (logged), or BusError saying how many trades
    are lost (no spool, or it cannot be written)."""
    trades = count_trades(items)
    if not items:
        return
    if spool is None:
        log.error("closing with {} trades and {} events undelivered and no spool: lost", trades, len(items))
        raise BusError(f"{trades} trades could not be delivered and there is no spool to keep them")
    try:
        path = spool.save(items)
    except StorageError as exc:
        log.error("closing with {} trades undelivered: {}", trades, exc)
        raise BusError(f"{trades} trades could not be delivered nor spooled: {exc}") from exc
    log.warning("{} undelivered trades spooled to {}; they are published at the next start", trades, path)


async def republish(spool: Spool, bus: TradeBus, log: Any = logger) -> int:
    """Publish every spool file, oldest first, each deleted once the bus holds it; the number of trades."""
    total = 0
    for path in spool.files():
        try:
            items = spool.load(path)
        except StorageError as exc:  # kept aside for a person to look at, never in the way of a start
            log.error("unreadable spool file set aside as {}: {}", path.with_suffix(".bad"), exc)
            path.rename(path.with_suffix(".bad"))
            continue
        for item in items:
            if item.trades:
                await bus.publish(item.trades)
            if item.events:
                await bus.publish_events(item.events)
        await bus.flush()
        path.unlink()
        total += count_trades(items)
        log.info("published {} spooled trades from {}", count_trades(items), path)
    return total
