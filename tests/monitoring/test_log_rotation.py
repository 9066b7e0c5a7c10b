"""Daily rotation at UTC midnight, gzip of rotated files and 30-day retention, driven by record time
(records are stamped with chosen instants through loguru's `patch`) instead of waiting a day."""

from __future__ import annotations

import datetime as dt
import gzip
from collections.abc import Callable
from pathlib import Path

from loguru import logger

from monitoring.log_files import DailyFile, day_number
from monitoring.logger import LoggingSetup, flush_logs
from tests.monitoring.conftest import read_lines

Configure = Callable[..., LoggingSetup]
UTC = dt.UTC


def log_at(instant: dt.datetime, level: str, message: str) -> None:
    logger.patch(lambda record: record.update(time=instant)).bind(component="rotation").log(level, message)


def touch(directory: Path, name: str, content: bytes = b"old\n") -> Path:
    path = directory / name
    if name.endswith(".gz"):
        with gzip.open(path, "wb") as f:
            f.write(content)
    else:
        path.write_bytes(content)
    return path


def names(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()}


def test_rotation_at_utc_midnight_compresses_and_applies_retention(configure_logging: Configure) -> None:
    setup = configure_logging(retention_days=30)
    folder = setup.service_dir
    assert folder is not None
    # Stamped in UTC+2, where it is already 01:59 on the 11th: the file must follow the UTC date.
    before = dt.datetime(2030, 1, 10, 23, 59, 59, tzinfo=UTC).astimezone(dt.timezone(dt.timedelta(hours=2)))
    after = dt.datetime(2030, 1, 11, 0, 0, 1, tzinfo=UTC)
    log_at(before, "INFO", "last of day one")
    assert flush_logs()
    assert names(folder) == {"app_2030-01-10.log"}
    # Files left by earlier runs: relative to 2030-01-11, 2029-12-12 is 30 days old, 2029-12-11 is 31.
    touch(folder, "app_2029-11-01.log.gz")
    touch(folder, "app_2029-12-11.log")
    touch(folder, "app_2029-12-12.log", b"stale but kept\n")
    touch(folder, "error_2029-11-01.log.gz")
    touch(folder, "error_2029-12-11.log")
    touch(folder, "notes.txt")

    log_at(after, "INFO", "first of day two")
    assert flush_logs()
    assert names(folder) == {
        "app_2029-12-12.log.gz",  # within 30 days: kept, compressed
        "app_2030-01-10.log.gz",  # rotated: compressed
        "app_2030-01-11.log",  # the new current file
        "error_2029-11-01.log.gz",  # the app log's retention never touches error logs
        "error_2029-12-11.log",
        "notes.txt",
    }
    with gzip.open(folder / "app_2030-01-10.log.gz", "rt") as f:
        rotated = f.read().splitlines()
    assert [line.rsplit(" | ", 1)[1] for line in rotated] == ["last of day one"]
    assert rotated[0].startswith("2030-01-10 23:59:59.000Z")
    with gzip.open(folder / "app_2029-12-12.log.gz", "rt") as f:
        assert f.read() == "stale but kept\n"
    assert [line.rsplit(" | ", 1)[1] for line in read_lines(folder / "app_2030-01-11.log")] == [
        "first of day two"
    ]

    # The error log has its own 30-day retention, applied when it opens its file.
    log_at(after, "ERROR", "first error of day two")
    assert flush_logs()
    errors = {n for n in names(folder) if n.startswith("error_")}
    assert errors == {"error_2030-01-11.log"}


def test_late_record_of_previous_day_goes_to_current_file(configure_logging: Configure) -> None:
    setup = configure_logging()
    folder = setup.service_dir
    assert folder is not None
    log_at(dt.datetime(2030, 3, 2, 0, 0, 1, tzinfo=UTC), "INFO", "new day")
    log_at(dt.datetime(2030, 3, 1, 23, 59, 59, 999000, tzinfo=UTC), "INFO", "late")
    assert flush_logs()
    assert names(folder) == {"app_2030-03-02.log"}
    assert [line.rsplit(" | ", 1)[1] for line in read_lines(folder / "app_2030-03-02.log")] == [
        "new day",
        "late",
    ]


def test_stale_plain_file_of_today_is_appended_and_an_existing_gz_gets_a_new_member(tmp_path: Path) -> None:
    daily = DailyFile(tmp_path, "app", retention_days=30)
    day = day_number(dt.datetime(2030, 5, 1, tzinfo=UTC).timestamp())
    touch(tmp_path, "app_2030-04-30.log.gz", b"first run\n")
    touch(tmp_path, "app_2030-04-30.log", b"second run\n")
    touch(tmp_path, "app_2030-05-01.log", b"earlier today\n")
    daily.write("now\n", day)
    daily.close()
    assert names(tmp_path) == {"app_2030-04-30.log.gz", "app_2030-05-01.log"}
    with gzip.open(tmp_path / "app_2030-04-30.log.gz", "rt") as f:
        assert f.read() == "first run\nsecond run\n"
    assert (tmp_path / "app_2030-05-01.log").read_text() == "earlier today\nnow\n"


def test_retention_days_is_configurable(tmp_path: Path) -> None:
    daily = DailyFile(tmp_path, "error", retention_days=7)
    touch(tmp_path, "error_2030-04-23.log.gz")  # 8 days before 2030-05-01
    touch(tmp_path, "error_2030-04-24.log.gz")  # 7 days before
    touch(tmp_path, "app_2000-01-01.log.gz")  # another sink's file
    daily.write("x\n", day_number(dt.datetime(2030, 5, 1, 12, tzinfo=UTC).timestamp()))
    daily.close()
    assert names(tmp_path) == {"error_2030-04-24.log.gz", "error_2030-05-01.log", "app_2000-01-01.log.gz"}
