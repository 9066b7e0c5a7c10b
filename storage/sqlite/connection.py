"""SQLite connections off the event loop: sqlite3 calls never run on it. A ConnectionThread is one thread
owning one connection (the store has one for writes and migrations, another for reads: WAL lets reads
proceed while a write commits). Connections use the WAL journal with synchronous=NORMAL; several processes
may share the file, and writes serialize on SQLite's own lock.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from core.errors import StorageError

T = TypeVar("T")

ConnectionSetup = Callable[[sqlite3.Connection], None]
"""Run once on each new connection, after its pragmas are set."""


class ConnectionThread:
    """One thread owning one sqlite3 connection; every call on that connection runs in that thread."""

    def __init__(self, path: str, name: str, busy_timeout_s: float, setup: ConnectionSetup) -> None:
        self._path = path
        self._busy_timeout_s = busy_timeout_s
        self._setup = setup
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._conn: sqlite3.Connection | None = None
        self.in_flight = 0
        self.closed = False

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self.closed:
            raise StorageError("the SQLite store is closed")
        self.in_flight += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, self._call, fn)
        finally:
            self.in_flight -= 1

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None:
            self._conn = connect(self._path, self._busy_timeout_s)
            self._setup(self._conn)
        return fn(self._conn)

    @property
    def connected(self) -> bool:
        return self._conn is not None

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close_conn)
        self._executor.shutdown(wait=False)

    def _close_conn(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def connect(path: str, busy_timeout_s: float) -> sqlite3.Connection:
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
    # Switching a new file to WAL needs an exclusive lock and SQLite answers "database is locked" at once,
    # without its busy handler, while another connection opens the same new file: retry until the timeout.
    deadline = time.monotonic() + busy_timeout_s
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                conn.close()
                raise
            time.sleep(0.005)
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE takes the write lock up front, so concurrent writers wait (busy timeout), not fail."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
