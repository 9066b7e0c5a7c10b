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
import bisect
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from contextlib import ExitStack, closing
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
    """CPU seconds (user + system) each named group of processes spends in a window. A thread samples
    every group every SAMPLE_S from start(), so that the window can be placed afterwards: from the first
    trade received (a time read from the store once the run is over) to the last one stored."""

    SAMPLE_S = 0.02

    def __init__(self) -> None:
        self.groups: dict[str, Callable[[], list[int]]] = {}
        self.notes: list[str] = []
        self.spent: dict[str, float] = {}
        self._samples: list[tuple[float, dict[str, float]]] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample_until_done, name="cpu-meter", daemon=True)

    def add(self, name: str, pids: Callable[[], list[int]]) -> None:
        """Add a group; call before start()."""
        self.groups[name] = pids

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._done.set()
        if self._thread.is_alive():
            self._thread.join()

    def measure(self, start: float, end: float) -> None:
        """Stop sampling; `spent` becomes each group's CPU seconds between wall-clock times start and end."""
        self.close()
        if self._samples:
            self.spent = {name: self._at(name, end) - self._at(name, start) for name in self.groups}

    def _sample_until_done(self) -> None:
        while not self._done.is_set():
            now = time.time()
            cpu = {name: sum(map(cpu_seconds, find())) for name, find in self.groups.items()}
            self._samples.append((now, cpu))
            self._done.wait(self.SAMPLE_S)

    def _at(self, name: str, when: float) -> float:
        """The group's CPU seconds at `when`, interpolated between the samples around it."""
        times = [t for t, _ in self._samples]
        i = min(max(bisect.bisect_left(times, when), 1), len(times) - 1) if len(times) > 1 else 0
        (t0, a), (t1, b) = self._samples[max(i - 1, 0)], self._samples[i]
        if t1 <= t0:
            return b[name]
        share = min(max((when - t0) / (t1 - t0), 0.0), 1.0)
        return a[name] + share * (b[name] - a[name])

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


def process_tree(name: str) -> Callable[[], list[int]]:
    """The oldest process named `name` (a server's main process, looked up once) and its children at each
    call: cheap enough to call at every CPU sample, so a new PostgreSQL backend is counted from its start."""
    found = subprocess.run(["pgrep", "-o", "-x", name], capture_output=True, text=True).stdout.split()
    roots = [int(pid) for pid in found]

    def find() -> list[int]:
        return [pid for root in roots for pid in (root, *children(root))]

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


def rate_until(stored_port: int, total: int, meter: CpuMeter, database: str | Path) -> tuple[float, float]:
    """(trades/s, seconds) from the first trade the collector received to the last one stored (seen on
    `stored_port`): the whole pipeline's time, not one stage's. The start is the earliest receive time
    in `database` (a scrape of a busy daemon answers late, by as much as a short run). The end is placed
    between the last two polls. `meter`, started before any trade, measures the CPU in that window."""
    deadline = time.monotonic() + 300.0
    # A scrape costs the daemon several ms of CPU (the embedded process exposes every metric): poll
    # every half second and place the end by linear interpolation within the last interval.
    before = (time.time(), 0.0)
    while (stored := metric(stored_port, "trades_processed_total")) < total:
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out: {stored:.0f}/{total} stored")
        before = (time.time(), stored)
        time.sleep(0.5)
    now = time.time()
    share = (total - before[1]) / (stored - before[1]) if stored > before[1] else 1.0
    first, last = first_received(database), before[0] + share * (now - before[0])
    meter.measure(first, last)
    elapsed = last - first
    inserts = metric(stored_port, 'db_query_duration_seconds_count{operation="insert_trades"}')
    seconds = metric(stored_port, 'db_query_duration_seconds_sum{operation="insert_trades"}')
    if inserts:
        each = seconds / inserts * 1000
        meter.notes.append(f"{inserts:.0f} trade inserts of {total / inserts:.0f} trades, {each:.1f} ms each")
    return total / elapsed, elapsed


def first_received(database: str | Path) -> float:
    """Wall-clock time (s) at which the collector received the earliest stored trade: `database` is a
    PostgreSQL URL or the directory of an embedded SQLite file."""
    if isinstance(database, Path):
        (path,) = database.glob("*.db")
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            return float(conn.execute("SELECT min(ts_recv) FROM trades").fetchone()[0]) / 1e9

    async def fetch() -> float:
        conn = await asyncpg.connect(database)
        try:
            return float(await conn.fetchval("SELECT extract(epoch FROM min(ts_recv)) FROM trades"))
        finally:
            await conn.close()

    return asyncio.run(fetch())


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
        stack.callback(meter.close)
        port = daemon(stack, tmp, "run", *args, meter=meter)
        meter.start()
        rate, took = rate_until(port, rows, meter, tmp / "embedded")
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
    sim_port = free_port()
    meter = CpuMeter()
    platform_cpus, simulator_cpus = ({0}, {1}) if one_core else (None, None)
    with ExitStack() as stack:
        stack.callback(meter.close)
        database = fresh_database(stack)
        sim = ("--replay", str(csv), "--speed", "0", "--port", str(sim_port))
        wait_up(daemon(stack, tmp, "simulator", "simulate", *sim, meter=meter, cpus=simulator_cpus))
        args = ("run", *sim_urls(sim_port), "--ws-client", ws_client, "--api-port", str(free_port()))
        env = {"DATABASE_URL": database}
        data_dir = ("--data-dir", str(tmp / "pipeline"))
        port = daemon(stack, tmp, "run", *args, *data_dir, env=env, meter=meter, cpus=platform_cpus)
        meter.add("postgresql", process_tree("postgres"))
        meter.start()
        rate, took = rate_until(port, rows, meter, database)
    where = "pinned to CPU 0, simulator to CPU 1" if one_core else "in-process bus"
    print(
        f"one pipeline process (simulator -> cryptostock run ({ws_client}, {where}) -> PostgreSQL): "
        f"{rate:,.0f} trades/s into storage ({took:.1f}s)\n  {meter.report(rate * took)}"
    )


def fresh_database(stack: ExitStack) -> str:
    """A new, empty database for one part, dropped when `stack` closes (after the daemons started later
    on the same stack have stopped)."""
    name = f"bench_{os.getpid()}_{time.monotonic_ns()}"
    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    stack.callback(lambda: asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')))
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


async def admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def flush_redis() -> None:
    subprocess.run(["redis-cli", "-u", REDIS_URL, "flushdb"], check=False, capture_output=True)


def distributed(csv: Path, rows: int, tmp: Path, ws_client: str) -> None:
    flush_redis()
    sim_port = free_port()
    meter = CpuMeter()
    with ExitStack() as stack:
        stack.callback(meter.close)
        env = {"DATABASE_URL": fresh_database(stack), "REDIS_URL": REDIS_URL}
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
        meter.add("postgresql", process_tree("postgres"))
        meter.add("redis", process_tree("redis-server"))
        meter.start()
        wait_up(collector)
        rate, took = rate_until(processor, rows, meter, env["DATABASE_URL"])
    print(
        f"separate processes (simulator -> collector ({ws_client}) -> Redis Streams -> processor -> "
        "PostgreSQL): "
        f"{rate:,.0f} trades/s into storage ({took:.1f}s)\n  {meter.report(rate * took)}"
    )


def latency(tmp: Path, seconds: float = 20.0, tps: int = 2000) -> None:
    flush_redis()
    sim_port = free_port()
    with ExitStack() as stack:
        env = {"DATABASE_URL": fresh_database(stack), "REDIS_URL": REDIS_URL}
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
