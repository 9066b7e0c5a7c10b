"""The fault drills of bench/drills.py in their short variant (5 s outages, 500 trades/s): separate daemons
over PostgreSQL and Redis behind cuttable proxies, every fault in turn, and not one trade lost, reported
or duplicated. The full variant (60 s outages, 2,500 trades/s) is run by hand: docs/operations.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(420)]


def test_short_drills_lose_nothing(tmp_path: Path) -> None:
    out = tmp_path / "drills.json"
    args = ["--tps", "500", "--outage", "5", "--restart-delay", "2", "--overload-factor", "4",
            "--overload-seconds", "5", "--settle", "1", "--catch-up-timeout", "90",
            "--json", str(out), "--logs", "--keep-logs", str(tmp_path / "logs")]  # fmt: skip
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "drills.py"), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=400, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-6000:]
    results = json.loads(out.read_text())
    assert [r["fault"] for r in results] == [
        "collector-kill", "collector-term", "processor-kill", "database-outage", "redis-outage", "overload"
    ]  # fmt: skip
    for r in results:
        assert r["made"] > 0 and r["stored"] == r["made"], r  # the daemons' logs: tmp_path / "logs"
        assert (r["missing"], r["reported"], r["duplicates"]) == (0, 0, 0), r
        assert r["catch_up_s"] is not None and r["catch_up_s"] >= 0, r  # caught up within the timeout
