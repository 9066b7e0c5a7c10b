"""Frames per second the simulated Binance delivers to one `websockets` client at speed 0.

The server runs in its own process (`python -m simulator`), the client in this one, so each has a core as
in a real deployment. Two runs: a replay of a generated 200k-trade CSV at speed 0, and the synthetic
market on demand (tps 0) for a few seconds. Prints frames/s as seen by the client. Takes ~15 s.
"""

from __future__ import annotations

import asyncio
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import websockets

from simulator.synthetic import SyntheticMarket

ROOT = Path(__file__).resolve().parent.parent
REPLAY_TRADES = 200_000
SYNTHETIC_SECONDS = 4.0
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


def write_replay(path: Path, count: int) -> None:
    market = SyntheticMarket(SYMBOLS, seed=7)
    start_ms = 1_700_000_000_000
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp_ms", "symbol", "trade_id", "price", "quantity", "is_buyer_maker"])
        trades = market.generate(count, 0)[:count]
        for i, t in enumerate(trades):
            maker = "true" if t.is_buyer_maker else "false"
            writer.writerow([start_ms + i // 10, t.symbol, t.trade_id, t.price, t.quantity, maker])


def start_server(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulator", "--port", "0", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY "):
        proc.kill()
        raise RuntimeError(f"simulator did not start: {line!r}")
    return proc, line.split()[1]


async def receive(url: str, *, count: int | None, seconds: float | None) -> tuple[int, float]:
    streams = "/".join(f"{s.lower()}@trade" for s in SYMBOLS)
    async with websockets.connect(f"{url}/stream?streams={streams}", max_size=None, compression=None) as ws:
        first = await ws.recv()
        assert b"trade" in (first if isinstance(first, bytes) else first.encode())
        received, started = 1, time.perf_counter()
        deadline = started + (seconds or 1e9)
        while (count is None or received < count) and time.perf_counter() < deadline:
            await ws.recv()
            received += 1
        return received, time.perf_counter() - started


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (Linux /proc), or NaN elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(label: str, server_args: list[str], *, count: int | None, seconds: float | None) -> None:
    proc, url = start_server(*server_args)
    try:
        server_cpu = cpu_seconds(proc.pid)
        client_cpu = time.process_time()
        received, elapsed = asyncio.run(receive(url, count=count, seconds=seconds))
        server_cpu = cpu_seconds(proc.pid) - server_cpu
        client_cpu = time.process_time() - client_cpu
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    print(
        f"{label}: {received} frames in {elapsed:.2f} s = {received / elapsed:,.0f} frames/s "
        f"(server CPU {server_cpu / received * 1e6:.1f} us/frame, "
        f"client CPU {client_cpu / elapsed:.0%} of a core)"
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "replay.csv"
        write_replay(path, REPLAY_TRADES)
        run("replay speed 0", ["--replay", str(path), "--speed", "0"], count=REPLAY_TRADES, seconds=None)
    run(
        "synthetic tps 0",
        ["--tps", "0", "--symbols", ",".join(SYMBOLS)],
        count=None,
        seconds=SYNTHETIC_SECONDS,
    )


if __name__ == "__main__":
    main()
