"""Cost of one logging call in the calling thread (what the event loop pays), console off.

Compares the platform's sinks (format in the caller, write on the log-writer thread) with loguru's
`enqueue=True` and with a synchronous loguru file sink, for plain and JSON lines, and reports the
drain rate of the writer thread. Prints microseconds per call. Runs in a few seconds.

    .venv/bin/python bench/bench_logging.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loguru import logger

from monitoring.logger import flush_logs, get_logger, setup_logging, shutdown_logging

N = 20_000


def per_call(emit: Callable[[int], None], n: int = N) -> float:
    """Microseconds per call in the caller; best of 3 rounds."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for i in range(n):
            emit(i)
        best = min(best, time.perf_counter() - start)
    return best / n * 1e6


def report(name: str, us: float, drained_us: float | None = None) -> None:
    extra = "" if drained_us is None else f"   (caller + drain: {drained_us:7.2f} us/call)"
    print(f"{name:<58} {us:7.2f} us/call{extra}")


def bench_platform(tmp: Path, json: bool) -> None:
    setup_logging(service=f"bench_{json}", level="INFO", json=json, log_dir=tmp, console=False)
    log = get_logger("collector", exchange="binance", symbol="BTC-USDT")
    flush_logs()
    us = per_call(lambda i: log.info("trade {} at {}", i, "50000.10"))
    start = time.perf_counter()
    for i in range(N):
        log.info("trade {} at {}", i, "50000.10")
    flush_logs(60)
    drained = (time.perf_counter() - start) / N * 1e6
    report(f"platform {'JSON' if json else 'plain'} file (writer thread)", us, drained)
    report("  debug call filtered out by level", per_call(lambda i: log.debug("trade {}", i)))
    shutdown_logging()


def bench_loguru(tmp: Path, enqueue: bool) -> None:
    fmt = "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <8} | {extra[component]} | {message} | {extra}"
    handler = logger.add(tmp / f"loguru_{enqueue}.log", format=fmt, enqueue=enqueue, level="INFO")
    log = logger.bind(component="collector", exchange="binance", symbol="BTC-USDT")
    us = per_call(lambda i: log.info("trade {} at {}", i, "50000.10"), n=N // 4 if enqueue else N)
    logger.complete()
    name = "loguru enqueue=True plain file" if enqueue else "loguru synchronous plain file (I/O in caller)"
    report(name, us)
    logger.remove(handler)


def main() -> None:
    logger.remove()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        bench_platform(Path(tmp), json=True)
        bench_platform(Path(tmp), json=False)
        bench_loguru(Path(tmp), enqueue=True)
        bench_loguru(Path(tmp), enqueue=False)
        print(f"total {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
