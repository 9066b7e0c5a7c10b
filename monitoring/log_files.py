"""Daily log files named by their UTC date, gzip-compressed once rotated, kept `retention_days` days.

`DailyFile` owns exactly the files `<directory>/<prefix>_YYYY-MM-DD.log[.gz]`: rotation, compression and
retention never look at any other file, so the app log's retention cannot delete error logs (different
prefix) and two services never share a file (one directory per service).

Rotation is driven by the time of the records written (UTC day number = unix seconds // 86400), not by a
timer: a record stamped after midnight UTC closes yesterday's file, compresses it and applies retention.
Tests drive it by writing records with a later timestamp. Not thread-safe: one writer thread calls it.
"""

from __future__ import annotations

import datetime as dt
import gzip
import os
import re
import shutil
from pathlib import Path
from typing import IO

SECONDS_PER_DAY = 86_400
_EPOCH = dt.date(1970, 1, 1)


def day_number(unix_seconds: float) -> int:
    """UTC calendar day of a unix timestamp, as days since 1970-01-01."""
    return int(unix_seconds // SECONDS_PER_DAY)


def day_date(day: int) -> dt.date:
    return _EPOCH + dt.timedelta(days=day)


class DailyFile:
    """`<directory>/<prefix>_<UTC date>.log`, switched at UTC midnight.

    On every switch (and on the first write of the process) it compresses every plain file of its own
    prefix dated before the new day (`.log` -> `.log.gz`, appending a gzip member if one exists already)
    and deletes files of its own prefix dated more than `retention_days` days before the new day.
    """

    def __init__(
        self, directory: Path, prefix: str, *, retention_days: int = 30, compress: bool = True
    ) -> None:
        if retention_days < 1:
            raise ValueError("retention_days must be at least 1")
        self.directory = Path(directory)
        self.prefix = prefix
        self.retention_days = retention_days
        self.compress = compress
        self._pattern = re.compile(rf"^{re.escape(prefix)}_(\d{{4}}-\d{{2}}-\d{{2}})\.log(\.gz)?$")
        self._day: int | None = None
        self._file: IO[str] | None = None

    def path_for(self, day: int) -> Path:
        return self.directory / f"{self.prefix}_{day_date(day).isoformat()}.log"

    @property
    def current_path(self) -> Path | None:
        return None if self._day is None else self.path_for(self._day)

    def write(self, line: str, day: int) -> None:
        """Append `line`; `day` is the record's UTC day. Late records of an earlier day go to today's file."""
        if self._file is None or (self._day is not None and day > self._day):
            self._switch(day if self._day is None else max(day, self._day))
        assert self._file is not None
        self._file.write(line)

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _switch(self, day: int) -> None:
        self.close()
        self._day = day
        self.directory.mkdir(parents=True, exist_ok=True)
        self.housekeep(day)
        self._file = open(self.path_for(day), "a", encoding="utf-8")  # noqa: SIM115 (kept open)

    def housekeep(self, today: int) -> None:
        """Compress own files dated before `today`; delete own files older than the retention window."""
        oldest_kept = day_date(today) - dt.timedelta(days=self.retention_days)
        for entry in os.scandir(self.directory):
            match = self._pattern.match(entry.name)
            if match is None or not entry.is_file():
                continue
            date = dt.date.fromisoformat(match.group(1))
            if date < oldest_kept:
                os.unlink(entry.path)
            elif self.compress and match.group(2) is None and date < day_date(today):
                _gzip_into(Path(entry.path))


def _gzip_into(path: Path) -> None:
    """`path` -> `path.gz` (appending a new gzip member when the .gz exists), then remove `path`."""
    target = path.with_name(path.name + ".gz")
    with open(path, "rb") as src, gzip.open(target, "ab") as dst:
        shutil.copyfileobj(src, dst)
    path.unlink()
