"""Instructions per trade and per batch, old tree against new, counted by valgrind (cachegrind).

Wall-clock and CPU-time benchmarks swing by +-50% on a shared 2-core VM, which hides a 3% change.
Instruction counts do not depend on other processes: this runs each tree's own code under
`valgrind --tool=cachegrind` twice, at two sizes, and reports the difference per unit (so start-up and
imports cancel out):

- pipeline: bench/bench_pipeline.py's `run()` (decode -> normalize -> bars, six timeframes) per trade;
- hot path: per batch of 1000 trades, what a collector read takes with tracing off: `Outbox.put` and
  `_next_batch`, `StreamPublisher._buffer`, and one Redis entry of 100 trades decoded (`_decode_entry`).

Run: .venv/bin/python bench/bench_instructions.py [OLD] [NEW]
OLD: a directory, or a git ref exported to a temporary directory (default `main`); NEW: default this
checkout. Needs valgrind (without it: says so and exits 0); takes 10-20 minutes (valgrind runs Python
~50x slower).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIPELINE_SIZES = (20_000, 60_000)
HOT_SIZES = (500, 1500)


def count(tree: Path, *args: str) -> int:
    """Instructions executed by this script's worker on `tree` (valgrind's 'I refs')."""
    command = [
        "valgrind",
        "--tool=cachegrind",
        "--cache-sim=no",
        "--cachegrind-out-file=/dev/null",
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        str(tree),
        *args,
    ]
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(tree)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tree, check=True)
    match = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if match is None:
        raise RuntimeError(done.stderr[-2000:])
    return int(match.group(1).replace(",", ""))


def per_unit(tree: Path, kind: str, sizes: tuple[int, int], *extra: str) -> float:
    low, high = (count(tree, kind, str(n), *extra) for n in sizes)
    return (high - low) / (sizes[1] - sizes[0])


def pipeline_worker(tree: str, n: int, realistic: bool) -> None:
    spec = importlib.util.spec_from_file_location("bench_pipeline", f"{tree}/bench/bench_pipeline.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from core.timeframes import DEFAULT_TIMEFRAMES

    data = module.frames(PIPELINE_SIZES[1], realistic=realistic)  # the same frames at both sizes
    module.run(data[:n], DEFAULT_TIMEFRAMES)


def hot_worker(k: int) -> None:
    from prometheus_client import CollectorRegistry

    from collectors.outbox import Outbox
    from collectors.session_metrics import SessionMetrics
    from core.types import Delivery, Side, Trade
    from monitoring.metrics import PlatformMetrics
    from storage.codec import encode_trades
    from storage.redis_bus import _decode_entry
    from storage.redis_publisher import FIELD, StreamPublisher

    t0 = 1_700_000_000_000_000_000
    batch = [
        Trade("binance", "BTC-USDT", "BTCUSDT", str(i), i, "50000.10", "0.001", Side.BUY, t0 + i, t0 + i)
        for i in range(1000)
    ]
    metrics = PlatformMetrics(CollectorRegistry())

    async def main() -> None:
        outbox = Outbox(None, SessionMetrics(metrics, "binance", {"BTCUSDT": "BTC-USDT"}, 1))  # type: ignore[arg-type]
        publisher = StreamPublisher(
            None,  # type: ignore[arg-type]  # _buffer never reaches Redis
            None,  # type: ignore[arg-type]
            stream_prefix="b:trades",
            registry="b:streams",
            resume_key="b:resume",
            max_pending_trades=10**9,
            max_stream_entries=10**9,
            flush_interval=0,
            batch_size=100,
            metrics=metrics,
        )
        fields = {FIELD: encode_trades(batch[:100])}
        for _ in range(k):
            outbox.put(batch)
            item = outbox._next_batch()
            publisher._buffer(item.trades)
            publisher._buffers.clear()
            publisher.buffered = 0
            _decode_entry(Delivery("s", "1-0", []), fields)

    asyncio.run(main())


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        tree, kind, n = sys.argv[2], sys.argv[3], int(sys.argv[4])
        if kind == "pipeline":
            pipeline_worker(tree, n, sys.argv[5] == "1")
        else:
            hot_worker(n)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", nargs="?", default="main", help="directory or git ref to compare against")
    parser.add_argument("new", type=Path, nargs="?", default=ROOT)
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        print("valgrind not found: instruction counts skipped")
        return
    if Path(args.old).is_dir():
        compare(Path(args.old), args.new)
        return
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "archive", args.old], cwd=ROOT, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        compare(Path(tmp), args.new)


def compare(old_tree: Path, new_tree: Path) -> None:
    cases = [
        ("pipeline, tick-grid prices", "pipeline", PIPELINE_SIZES, ("1",), "trade"),
        ("pipeline, every value distinct", "pipeline", PIPELINE_SIZES, ("0",), "trade"),
        ("collector/bus hot path, tracing off", "hot", HOT_SIZES, (), "batch of 1000 trades"),
    ]
    for label, kind, sizes, extra, unit in cases:
        if kind == "hot" and not (old_tree / "collectors" / "outbox.py").exists():
            print(f"{label}: skipped, {old_tree} predates collectors/outbox.py (the code it measures)")
            continue
        old, new = (per_unit(tree, kind, sizes, *extra) for tree in (old_tree, new_tree))
        print(f"{label}: {old:,.0f} -> {new:,.0f} instructions per {unit} ({100 * (new / old - 1):+.2f}%)")


if __name__ == "__main__":
    main()
