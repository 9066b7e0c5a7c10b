"""A one-line progress bar for long commands (export, db migrate), on stderr and only on a terminal.

    bar = ProgressBar("export bars", total=1.0)
    bar.update(0.25, rows=1200)     # redrawn at most every `interval` seconds
    bar.close()                     # clears the line; the command then prints its result

With no total it is a spinner with the elapsed time (`spinning(...)` keeps it turning while one long
await runs). Output never goes to a pipe or a file: scripts and logs see only the command's result.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TextIO

WIDTH = 24
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


class ProgressBar:
    """`total` in the caller's unit (None: a spinner); times in seconds from `clock`."""

    def __init__(
        self,
        label: str,
        total: float | None = None,
        *,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.total = total
        self._stream = stream or sys.stderr
        self.enabled = _is_terminal(self._stream) if enabled is None else enabled
        self._interval = interval
        self._clock = clock
        self._started = clock()
        self._drawn_at = -float("inf")
        self._ticks = 0
        self._done = 0.0
        self._rows: int | None = None

    def update(self, done: float | None = None, rows: int | None = None, *, force: bool = False) -> None:
        """Record progress (`done` of `total`, `rows` so far) and redraw if due."""
        if done is not None:
            self._done = done
        if rows is not None:
            self._rows = rows
        now = self._clock()
        if self.enabled and (force or now - self._drawn_at >= self._interval):
            self._drawn_at = now
            self._ticks += 1
            self._stream.write("\r\x1b[2K" + self.render(now))
            self._stream.flush()

    def render(self, now: float) -> str:
        """The line as drawn (without the carriage return)."""
        elapsed = f"{now - self._started:.1f} s"
        rows = f"  {self._rows:,} rows" if self._rows is not None else ""
        if not self.total:
            return f"{self.label}  {SPINNER[self._ticks % len(SPINNER)]}{rows}  {elapsed}"
        share = min(max(self._done / self.total, 0.0), 1.0)
        filled = round(share * WIDTH)
        bar = "█" * filled + "░" * (WIDTH - filled)
        return f"{self.label}  [{bar}] {share:4.0%}{rows}  {elapsed}"

    def close(self) -> None:
        """Clear the line (the command prints its own result after)."""
        if self.enabled and self._ticks:
            self._stream.write("\r\x1b[2K")
            self._stream.flush()


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


@asynccontextmanager
async def spinning(label: str, *, stream: TextIO | None = None) -> AsyncIterator[ProgressBar]:
    """A spinner kept turning by a task while the block awaits something long."""
    bar = ProgressBar(label, stream=stream)

    async def turn() -> None:
        while True:
            bar.update()
            await asyncio.sleep(0.1)

    task = asyncio.create_task(turn(), name="progress-spinner") if bar.enabled else None
    try:
        yield bar
    finally:
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        bar.close()
