"""Dead letters: bus content that could not be stored, kept for a person to inspect.

The Redis bus keeps them in the stream `{prefix}:dead-letter` (capped at MAX_DEAD_LETTERS); the
in-process bus appends them to a JSON-lines file in the data directory (`dead-letters.jsonl`), since
nothing in its memory outlives the process. `cryptostock dead-letters` prints either. Each one is counted
in `bus_dead_letters_total{bus, reason}` and logged with what it holds.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from pathlib import Path

import msgspec
from loguru import logger
from prometheus_client import Counter

from core.errors import StorageError
from core.types import DeadLetter, DeadLetterRecord

MAX_DEAD_LETTERS = 100_000
RAW_PREVIEW_BYTES = 64 * 1024
_json_encoder = msgspec.json.Encoder()
_json_decoder = msgspec.json.Decoder(DeadLetterRecord)


def report(letters: Sequence[DeadLetter], counter: Counter, bus: str) -> None:
    """Count and log each dead letter (what it holds, why)."""
    for letter in letters:
        counter.labels(bus, letter.reason.split(":", 1)[0]).inc()
        logger.bind(component="bus", bus=bus).error(
            "dead letter from {} entry {}: {} ({} trades{})",
            letter.stream,
            letter.delivery_id,
            letter.reason,
            len(letter.trades),
            f", {len(letter.raw)} raw bytes" if letter.raw else "",
        )


class DeadLetterFile:
    """Dead letters as JSON lines in one file (bytes are base64, as msgspec writes them)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def append(self, letters: Sequence[DeadLetter]) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("ab") as handle:
                for letter in letters:
                    handle.write(_json_encoder.encode(letter) + b"\n")
        except OSError as exc:
            raise StorageError(f"cannot write dead letters to {self.path}: {exc}") from exc

    def read(self, limit: int) -> list[DeadLetterRecord]:
        if not self.path.is_file():
            return []
        with self.path.open("rb") as handle:
            lines = deque(handle, maxlen=max(limit, 0))
        return [_json_decoder.decode(line) for line in lines if line.strip()]


def as_record(letter: DeadLetter) -> DeadLetterRecord:
    """The inspection form of a dead letter (trades as field lists)."""
    return msgspec.convert(msgspec.to_builtins(letter), DeadLetterRecord)
