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
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulator.csv_market import write_random_walk_csv  # noqa: E402

PG_ADMIN = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
PROFILE = set(filter(None, os.environ.get("BENCH_PROFILE", "").split(",")))
"""Daemon names to run under py-spy, e.g. BENCH_PROFILE=processor,collector (needs py-spy on PATH)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/livez", timeout=1):
                return
        except OSError:
            time.sleep(0.02)
    raise SystemExit(f"no daemon answered on port {port}")


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


class CpuMeter:
    """CPU seconds (user + system) each named group of processes spent between start() and stop()."""

    def __init__(self) -> None:
        self.groups: dict[str, Callable[[], list[int]]] = {}
        self._start: dict[str, float] = {}
        self.started = False
        self.notes: list[str] = []
        self.spent: dict[str, float] = {}

    def add(self, name: str, pids: Callable[[], list[int]]) -> None:
        self.groups[name] = pids

    def _sample(self) -> dict[str, float]:
        return {name: sum(cpu_seconds(pid) for pid in pids()) for name, pids in self.groups.items()}

    def start(self) -> None:
        self._start = self._sample()
        self.started = True

    def stop(self) -> None:
        end = self._sample()
        self.spent = {name: end[name] - self._start.get(name, 0.0) for name in end}

    def report(self, trades: float) -> str:
        parts = [f"{name} {seconds / trades * 1e6:.1f}" for name, seconds in self.spent.items()]
        total = sum(self.spent.values()) / trades * 1e6
        return "; ".join([f"CPU us per trade: {', '.join(parts)}; total {total:.1f}", *self.notes])


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def pids_named(name: str) -> Callable[[], list[int]]:
    def find() -> list[int]:
        found = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True).stdout.split()
        return [int(pid) for pid in found]

    return find


def daemon(
    stack: ExitStack,
    tmp: Path,
    name: str,
    *args: str,
    env: dict[str, str] | None = None,
    meter: CpuMeter | None = None,
    cpus: set[int] | None = None,
) -> int:
    """Start `cryptostock <args>` (on the CPUs `cpus` only, when given); returns its metrics port."""
    port = free_port()
    log = (tmp / f"{name}.log").open("wb")
    full_env = {**os.environ, "LOG_DIR": str(tmp / "logs"), "LOG_LEVEL": "WARNING", **(env or {})}
    command = [sys.executable, "-m", "cryptostock.cli", *args, "--metrics-port", str(port)]
    if name in PROFILE:  # py-spy's raw (collapsed) stacks; the CPU meter then counts py-spy's process
        command = ["py-spy", "record", "-r", "250", "-f", "raw", "-o", f"profile-{name}.txt", "--", *command]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=full_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=None if cpus is None else lambda: os.sched_setaffinity(0, cpus),
    )

    def stop() -> None:
        for pid in children(process.pid) if name in PROFILE else [process.pid]:
            os.kill(pid, signal.SIGTERM)  # py-spy writes its profile once the daemon it runs has exited
        process.wait(20)
        log.close()

    stack.callback(stop)
    if meter is not None:
        meter.add(name, lambda: children(process.pid) if name in PROFILE else [process.pid])
    return port


def rate_until(
    stored_port: int, total: int, received_port: int, meter: CpuMeter, timeout: float = 300.0
) -> tuple[float, float]:
    """(trades/s, seconds) from the first trade the collector received (on `received_port`) to the last
    one stored (on `stored_port`): the whole pipeline's time, not one stage's. The end is seen at the
    next poll, so the rate errs low. `meter` measures the CPU spent until the end."""
    deadline = time.monotonic() + timeout
    while metric(received_port, "trades_received_total") <= 0:
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting for the first trade")
        time.sleep(0.01)
    first = time.monotonic()
    if not meter.started:
        meter.start()
    # A scrape costs the daemon several ms of CPU (the embedded process exposes every metric): poll
    # every half second and place the end by linear interpolation within the last interval.
    before = (first, 0.0)
    while (stored := metric(stored_port, "trades_processed_total")) < total:
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out: {stored:.0f}/{total} stored")
        before = (time.monotonic(), stored)
        time.sleep(0.5)
    now = time.monotonic()
    meter.stop()
    share = (total - before[1]) / (stored - before[1]) if stored > before[1] else 1.0
    elapsed = before[0] + share * (now - before[0]) - first
    inserts = metric(stored_port, 'db_query_duration_seconds_count{operation="insert_trades"}')
    seconds = metric(stored_port, 'db_query_duration_seconds_sum{operation="insert_trades"}')
    if inserts:
        each = seconds / inserts * 1000
        meter.notes.append(f"{inserts:.0f} trade inserts of {total / inserts:.0f} trades, {each:.1f} ms each")
    return total / elapsed, elapsed


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
        meter = CpuMeter()
        port = daemon(stack, tmp, "run", *args, meter=meter)
        rate, took = rate_until(port, rows, port, meter)
    print(
        f"embedded (cryptostock run: one process, SQLite, in-process bus, {ws_client}): "
        f"{rate:,.0f} trades/s into storage ({took:.1f}s)\n  {meter.report(rate * took)}"
    )


def sim_urls(sim_port: int) -> tuple[str, ...]:
    """Flags pointing a collector (or `run`) at the simulator on `sim_port`."""
    return ("--ws-url", f"ws://127.0.0.1:{sim_port}", "--rest-url", f"http://127.0.0.1:{sim_port}")


def pipeline(csv: Path, rows: int, tmp: Path, ws_client: str, *, one_core: bool = False) -> None:
    """The simulator in its own process; collector, processor and API in one (`cryptostock run` pointed at
    the simulator), storing into PostgreSQL over the in-process bus. With `one_core`, the platform
    process may run on CPU 0 only and the simulator on CPU 1 only (PostgreSQL, a system service, is
    left where the kernel puts it): the platform's own throughput on one core."""
    database = asyncio.run(fresh_database())
    sim_port = free_port()
    meter = CpuMeter()
    platform_cpus, simulator_cpus = ({0}, {1}) if one_core else (None, None)
    with ExitStack() as stack:
        sim = ("--replay", str(csv), "--speed", "0", "--port", str(sim_port))
        wait_up(daemon(stack, tmp, "simulator", "simulate", *sim, meter=meter, cpus=simulator_cpus))
        args = ("run", *sim_urls(sim_port), "--ws-client", ws_client, "--api-port", str(free_port()))
        env = {"DATABASE_URL": database}
        data_dir = ("--data-dir", str(tmp / "pipeline"))
        port = daemon(stack, tmp, "run", *args, *data_dir, env=env, meter=meter, cpus=platform_cpus)
        meter.add("postgresql", pids_named("postgres"))
        rate, took = rate_until(port, rows, port, meter)
    where = "pinned to CPU 0, simulator to CPU 1" if one_core else "in-process bus"
    print(
        f"one pipeline process (simulator -> cryptostock run ({ws_client}, {where}) -> PostgreSQL): "
        f"{rate:,.0f} trades/s into storage ({took:.1f}s)\n  {meter.report(rate * took)}"
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
    meter = CpuMeter()
    with ExitStack() as stack:
        daemon(
            stack,
            tmp,
            "simulator",
            "simulate",
            *("--replay", str(csv), "--speed", "0", "--port", str(sim_port)),
            meter=meter,
        )
        processor = daemon(
            stack,
            tmp,
            "processor",
            "processor",
            *("--timeframes", "1m,5m,15m,1h,4h,1d"),
            env=env,
            meter=meter,
        )
        time.sleep(2.0)  # the processor has created its consumer group before trades arrive
        collector = daemon(
            stack,
            tmp,
            "collector",
            "collector",
            *("--symbols", "BTCUSDT,ETHUSDT", *sim_urls(sim_port), "--ws-client", ws_client),
            env=env,
            meter=meter,
        )
        meter.add("postgresql", pids_named("postgres"))
        meter.add("redis", pids_named("redis-server"))
        # From the moment the collector is up (its imports done, before it reads): the simulator and the
        # collector do most of their work before the processor has stored its first trade.
        wait_up(collector)
        meter.start()
        rate, took = rate_until(processor, rows, collector, meter)
    print(
        f"separate processes (simulator -> collector ({ws_client}) -> Redis Streams -> processor -> "
        "PostgreSQL): "
        f"{rate:,.0f} trades/s into storage ({took:.1f}s)\n  {meter.report(rate * took)}"
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
            *("--symbols", "BTCUSDT,ETHUSDT", *sim_urls(sim_port)),
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
    parser.add_argument(
        "--parts",
        default="embedded,pipeline,one-core,distributed,latency",
        help="comma-separated subset of embedded,pipeline,one-core,distributed,latency",
    )
    parser.add_argument("--ws-client", choices=["websockets", "picows"], default="picows")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        tmp = Path(directory)
        csv = tmp / "market.csv"
        rows = write_random_walk_csv(csv, trades_per_symbol=args.trades // 2, mean_gap_ms=5.0, seed=2)
        parts = set(args.parts.split(","))
        if args.skip_services:
            parts &= {"embedded"}
        if "embedded" in parts:
            embedded(csv, rows, tmp, args.ws_client)
        if "pipeline" in parts:
            pipeline(csv, rows, tmp, args.ws_client)
        if "one-core" in parts and len(os.sched_getaffinity(0)) >= 2:
            pipeline(csv, rows, tmp, args.ws_client, one_core=True)
        if "distributed" in parts:
            distributed(csv, rows, tmp, args.ws_client)
        if "latency" in parts:
            latency(tmp)


if __name__ == "__main__":
    main()
