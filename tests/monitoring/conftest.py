"""Fixtures for monitoring tests: configure logging into a temporary directory and undo it afterwards
(loguru and the stdlib root logger are process globals)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from monitoring.log_files import DailyFile
from monitoring.logger import NOISY_LIBRARIES, LoggingSetup, flush_logs, setup_logging, shutdown_logging


@pytest.fixture
def configure_logging(tmp_path: Path) -> Iterator[Callable[..., LoggingSetup]]:
    """`configure_logging(**kwargs)` calls setup_logging with console off and files under tmp_path."""
    root = logging.getLogger()
    saved_root = (list(root.handlers), root.level)
    saved_libs = {
        n: (list(logging.getLogger(n).handlers), logging.getLogger(n).level) for n in NOISY_LIBRARIES
    }

    def configure(**kwargs: Any) -> LoggingSetup:
        kwargs.setdefault("console", False)
        kwargs.setdefault("log_dir", tmp_path / "logs")
        kwargs.setdefault("service", "svc")
        return setup_logging(**kwargs)

    yield configure
    assert flush_logs()
    shutdown_logging()
    root.handlers[:], root.level = saved_root
    for name, (handlers, level) in saved_libs.items():
        logging.getLogger(name).handlers[:] = handlers
        logging.getLogger(name).setLevel(level)


def read_lines(path: Path) -> list[str]:
    assert flush_logs()
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def read_json(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in read_lines(path)]


def current_file(daily: DailyFile | None) -> Path:
    """The file a DailyFile writes now, once everything logged so far is written."""
    assert flush_logs()
    assert daily is not None and daily.current_path is not None
    return daily.current_path
