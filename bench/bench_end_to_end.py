"""End to end through the real daemons: the simulator replays a CSV at --speed 0 (as fast as the collector
reads), the collector normalizes and publishes, the processor stores trades and bars. Prints trades/s into
storage for the embedded platform (`cryptostock run`: one process, SQLite) and for separate processes
over Redis Streams and PostgreSQL (COPY), then the latency from a bar's end to the bar stored and
published, on a live synthetic market.

Run: .venv/bin/python bench/bench_end_to_end.py [--trades 200000]   (needs PostgreSQL and Redis for the
second and third parts: `make services`)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulator.csv_market import write_random_walk_csv  # noqa: E402

PG_ADMIN = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def metric(port: int, name: str) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return 0.0
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def histogram_quantile(port: int, name: str, q: float) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
        text = response.read().decode()
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith(f"{name}_bucket"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            bound = float("inf") if le == "+Inf" else float(le)
            buckets[bound] = buckets.get(bound, 0.0) + float(line.rsplit(" ", 1)[1])
    total = buckets.get(float("inf"), 0.0)
    for bound in sorted(buckets):
        if total and buckets[bound] >= q * total:
            return bound
    return float("nan")


def daemon(stack: ExitStack, tmp: Path, name: str, *args: str, env: dict[str, str] | None = None) -> int:
    port = free_port()
    log = (tmp / f"{name}.log").open("wb")
    full_env = {**os.environ, "LOG_DIR": str(tmp / "logs"), "LOG_LEVEL": "WARNING", **(env or {})}
    process = subprocess.Popen(
        [sys.executable, "-m", "cryptostock.cli", *args, "--metrics-port", str(port)],
        cwd=ROOT,
        env=full_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    stack.callback(lambda: (process.terminate(), process.wait(20), log.close()))
    return port


def rate_until(port: int, name: str, total: int, timeout: float = 300.0) -> tuple[float, float]:
    """(trades/s from the first processed trade to the last, seconds it took)."""
    deadline = time.monotonic() + timeout
    first = None
    while time.monotonic() < deadline:
        done = metric(port, name)
        now = time.monotonic()
        if first is None and done > 0:
            first = (now, done)
        if done >= total and first is not None:
            elapsed = now - first[0]
            return (done - first[1]) / elapsed if elapsed > 0 else float("inf"), elapsed
        time.sleep(0.05)
    raise SystemExit(f"timed out: {metric(port, name):.0f}/{total} {name}")


def embedded(csv: Path, rows: int, tmp: Path, ws_client: str) -> None:
    with ExitStack() as stack:
        args = ["run", "--replay", str(csv), "--speed", "0", "--ws-client", ws_client]
        args += [
            "--api-port",
            str(free_port()),
            "--sim-port",
            str(free_port()),
            "--data-dir",
            str(tmp / "embedded"),
        ]
        port = daemon(stack, tmp, "run", *args)
        rate, took = rate_until(port, "trades_processed_total", rows)
    print(
        f"embedded (cryptostock run: one process, SQLite, in-process bus, {ws_client}): "
        f"{rate:,.0f} trades/s into storage ({took:.1f}s)"
    )


async def fresh_database() -> str:
    name = f"bench_{int(time.time())}"
    conn = await asyncpg.connect(PG_ADMIN)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


def flush_redis() -> None:
    subprocess.run(["redis-cli", "-u", REDIS_URL, "flushdb"], check=False, capture_output=True)


def distributed(csv: Path, rows: int, tmp: Path, ws_client: str) -> None:
    database = asyncio.run(fresh_database())
    flush_redis()
    env = {"DATABASE_URL": database, "REDIS_URL": REDIS_URL}
    sim_port = free_port()
    with ExitStack() as stack:
        processor = daemon(
            stack, tmp, "processor", "processor", "--timeframes", "1m,5m,15m,1h,4h,1d", env=env
        )
        time.sleep(2.0)
        daemon(stack, tmp, "sim", "simulate", "--replay", str(csv), "--speed", "0", "--port", str(sim_port))
        time.sleep(1.5)
        daemon(
            stack,
            tmp,
            "collector",
            "collector",
            "--symbols",
            "BTCUSDT,ETHUSDT",
            "--ws-url",
            f"ws://127.0.0.1:{sim_port}",
            "--rest-url",
            f"http://127.0.0.1:{sim_port}",
            "--ws-client",
            ws_client,
            env=env,
        )
        rate, took = rate_until(processor, "trades_processed_total", rows)
    print(
        f"separate processes (simulator -> collector ({ws_client}) -> Redis Streams -> processor -> "
        "PostgreSQL COPY + upsert): "
        f"{rate:,.0f} trades/s into storage ({took:.1f}s)"
    )


def latency(tmp: Path, seconds: float = 20.0, tps: int = 2000) -> None:
    database = asyncio.run(fresh_database())
    flush_redis()
    env = {"DATABASE_URL": database, "REDIS_URL": REDIS_URL}
    sim_port = free_port()
    with ExitStack() as stack:
        daemon(stack, tmp, "sim-live", "simulate", "--tps", str(tps), "--port", str(sim_port))
        processor = daemon(
            stack,
            tmp,
            "processor-live",
            "processor",
            "--timeframes",
            "1s,1m",
            "--grace-seconds",
            "0.25",
            env=env,
        )
        time.sleep(1.5)
        daemon(
            stack,
            tmp,
            "collector-live",
            "collector",
            "--symbols",
            "BTCUSDT,ETHUSDT",
            "--ws-url",
            f"ws://127.0.0.1:{sim_port}",
            "--rest-url",
            f"http://127.0.0.1:{sim_port}",
            env=env,
        )
        time.sleep(seconds)
        p50 = histogram_quantile(processor, "bar_completion_duration_seconds", 0.5)
        p95 = histogram_quantile(processor, "bar_completion_duration_seconds", 0.95)
        bars = metric(processor, "bars_completed_total")
    print(
        f"bar end -> bar stored and published ({tps} trades/s live, 1s bars, grace 0.25s, {bars:.0f} bars): "
        f"p50 <= {p50 * 1000:.0f} ms, p95 <= {p95 * 1000:.0f} ms "
        "(histogram bucket bounds; includes the grace)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trades", type=int, default=400_000)
    parser.add_argument("--skip-services", action="store_true", help="only the embedded measurement")
    parser.add_argument("--ws-client", choices=["websockets", "picows"], default="picows")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        tmp = Path(directory)
        csv = tmp / "market.csv"
        rows = write_random_walk_csv(csv, trades_per_symbol=args.trades // 2, mean_gap_ms=5.0, seed=2)
        embedded(csv, rows, tmp, args.ws_client)
        if not args.skip_services:
            distributed(csv, rows, tmp, args.ws_client)
            latency(tmp)


if __name__ == "__main__":
    main()
