"""The benchmark scripts run and report every measurement they promise, at small sizes.

No speed is asserted here (timed tests would measure the machine, not the code): the numbers are what the
scripts print, reported in the README. These tests keep the scripts working as the code under them
changes, and check that what they print is a measurement (a positive rate, per-process CPU).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import PG_ADMIN_URL, REDIS_TEST_URL

ROOT = Path(__file__).resolve().parents[2]
RATE = re.compile(r"^(?P<label>[^:]+?) ?\(.*\): (?P<rate>[\d,]+) trades/s into storage", re.MULTILINE)
CPU = re.compile(r"CPU us per trade: (?P<parts>.*?); total (?P<total>[\d.]+)")


def run_bench(script: str, *args: str, timeout: float = 110.0) -> str:
    env = {**os.environ, "BENCH_PG_URL": PG_ADMIN_URL, "BENCH_REDIS_URL": REDIS_TEST_URL}
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done.stdout


def test_decode_bench_reports_every_case() -> None:
    out = run_bench("bench_decode.py", "--frames", "2000", "--rounds", "1")
    rates = re.findall(r"^(.+?)\s+([\d.]+) M frames/s", out, re.MULTILINE)
    assert len(rates) == 3 and all(float(rate) > 0 for _, rate in rates), out


def test_pipeline_bench_reports_every_case() -> None:
    out = run_bench("bench_pipeline.py", "--frames", "3000")
    rates = re.findall(r"\]\s\((.*?)\): ([\d,]+) trades/s \(best of 3, 3,000 frames", out)
    assert len(rates) == 4, out
    assert all(int(rate.replace(",", "")) > 0 for _, rate in rates)


def test_tracing_bench_reports_every_case() -> None:
    out = run_bench("bench_tracing.py", "--repeat", "20", "--requests", "20")
    hot = re.findall(
        r"^tracing (off|on, sampled|on, not sampled)\s*: outbox batch of 1000 trades\s+([\d.]+) us",
        out,
        re.MULTILINE,
    )
    assert [label for label, _ in hot] == ["off", "on, sampled", "on, not sampled"], out
    assert all(float(us) > 0 for _, us in hot)
    assert re.search(r"^api_response event into a JSON log file: [\d.]+ us CPU per event$", out, re.MULTILINE)
    api = re.findall(
        r"^API request through the ASGI app: (\d+) us CPU with .*?, (\d+) us without", out, re.MULTILINE
    )
    assert len(api) == 2 and all(int(a) > 0 and int(b) > 0 for a, b in api), out


async def bench_databases() -> set[str]:
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        rows = await conn.fetch("SELECT datname FROM pg_database WHERE datname LIKE 'bench\\_%'")
    finally:
        await conn.close()
    return {row[0] for row in rows}


@pytest.mark.integration
@pytest.mark.slow
async def test_end_to_end_bench_measures_each_configuration_and_cleans_up() -> None:
    before = await bench_databases()
    parts = "embedded,one-core,distributed" if len(os.sched_getaffinity(0)) >= 2 else "embedded,distributed"
    out = run_bench("bench_end_to_end.py", "--trades", "20000", "--parts", parts)
    labels = [m["label"] for m in RATE.finditer(out)]
    expected = ["embedded", "separate processes"]
    if "one-core" in parts:
        expected.insert(1, "one pipeline process")
    assert labels == expected, out
    assert all(int(m["rate"].replace(",", "")) > 0 for m in RATE.finditer(out))
    cpu = list(CPU.finditer(out))
    assert len(cpu) == len(expected), out
    assert "pinned to CPU 0" in out or "one-core" not in parts
    processes = {part.split()[0] for part in cpu[-1]["parts"].split(", ")}
    assert {"simulator", "collector", "processor", "postgresql", "redis"} <= processes
    assert all(float(m["total"]) > 0 for m in cpu)
    assert await bench_databases() == before  # each part's database is dropped
