"""Fault drills on the platform as separate daemons over PostgreSQL and Redis, against the simulator.

Starts `cryptostock simulate` (Binance, BTCUSDT+ETHUSDT at --tps), `collector`, `processor` and `api`, with
PostgreSQL and Redis reached through loopback TCP proxies the drill can cut (the shared servers are never
touched), then runs each fault in turn on the live pipeline:

  collector-kill      SIGKILL the collector, start it again --restart-delay seconds later
  collector-term      cut Redis, SIGTERM the collector (it spools what it holds), bring Redis and a new
                      collector back --restart-delay seconds later
  processor-kill      SIGKILL the processor, start it again --restart-delay seconds later
  database-outage     PostgreSQL unreachable for --outage seconds
  redis-outage        Redis unreachable for --outage seconds
  overload            the market at --overload-factor times --tps for --overload-seconds

Per fault it prints the trades the simulator made from the fault's start to the next fault's start, how many
of them are not stored (missing), how many of those the platform reported (abandoned/unverified coverage
events), duplicates, the time from the end of the fault until every trade made up to then was stored
(catch-up), and the peak RSS of each daemon during the fault and its catch-up.

Run:  .venv/bin/python bench/drills.py                       (60 s outages, 2,500 trades/s; about 7 minutes)
      .venv/bin/python bench/drills.py --outage 5 --tps 500   (the short variant tests/integration runs)
Needs PostgreSQL (creates and drops a scratch database) and Redis (db 10, keys under a random prefix).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import asyncpg
import httpx
import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import free_port  # noqa: E402
from tests.integration.conftest import Platform  # noqa: E402
from tests.integration.procs import Daemon, wait_until  # noqa: E402
from tests.storage.tcp_proxy import TcpProxy  # noqa: E402

PG_ADMIN = os.environ.get("DRILL_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("DRILL_REDIS_URL", "redis://127.0.0.1:6379/10")
FAULTS = ("collector-kill", "collector-term", "processor-kill", "database-outage", "redis-outage", "overload")
DAEMONS = ("simulator", "collector", "processor", "api")
EXCHANGE = "binance"
CANONICAL = {"BTCUSDT": "BTC-USDT", "ETHUSDT": "ETH-USDT"}


_STARTED = time.monotonic()


def elapsed() -> float:
    return time.monotonic() - _STARTED


@dataclass
class Result:
    """One fault's numbers. Trades are counted by the simulator's ids in [first_id, last_id] per symbol."""

    fault: str
    made: int = 0
    stored: int = 0
    missing: int = 0
    reported: int = 0  # missing trades the platform reported (abandoned or unverified coverage)
    duplicates: int = 0
    catch_up_s: float | None = None
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    window: dict[str, tuple[int, int]] = field(default_factory=dict)
    since_ns: int = 0
    missing_ids: dict[str, list[int]] = field(default_factory=dict)  # the first 50 per symbol

    @property
    def silent_loss(self) -> int:
        return self.missing - self.reported


class RssSampler:
    """Peak resident memory of every daemon, by name, since the last reset (sampled every 0.25 s)."""

    def __init__(self, platform: Platform) -> None:
        self._platform = platform
        self.peaks: dict[str, int] = {}

    def reset(self) -> dict[str, float]:
        peaks, self.peaks = self.peaks, {}
        return {name: round(kb / 1024, 1) for name, kb in sorted(peaks.items())}

    async def run(self) -> None:
        while True:
            for daemon in self._platform.daemons:
                rss = _rss_kb(daemon)
                if rss:
                    self.peaks[daemon.name] = max(self.peaks.get(daemon.name, 0), rss)
            await asyncio.sleep(0.25)


def _rss_kb(daemon: Daemon) -> int:
    if daemon.process is None or daemon.process.poll() is not None:
        return 0
    try:
        status = Path(f"/proc/{daemon.process.pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Drill:
    def __init__(self, args: argparse.Namespace, tmp: Path, db_url: str) -> None:
        self.args = args
        self.db_url = db_url  # direct, for the drill's own queries
        self.pg_proxy = TcpProxy("127.0.0.1", 5432, free_port())
        redis_port = int(REDIS_URL.split(":")[2].split("/")[0])
        self.redis_proxy = TcpProxy("127.0.0.1", redis_port, free_port())
        proxied_db = db_url.replace(":5432/", f":{self.pg_proxy.port}/")
        proxied_redis = REDIS_URL.replace(f":{redis_port}/", f":{self.redis_proxy.port}/")
        self.platform = Platform(tmp, proxied_db, proxied_redis)
        self.platform.redis_prefix = f"drill{uuid.uuid4().hex[:8]}"
        self.rss = RssSampler(self.platform)
        self.daemons: dict[str, Daemon] = {}
        self.final_ids: dict[str, int] = {}  # the simulator's last ids when the accounting starts

    async def start(self) -> None:
        await self.pg_proxy.start()
        await self.redis_proxy.start()
        history = ("--max-history-age", str(self.args.sim_history_age)) if self.args.sim_history_age else ()
        self.daemons["simulator"] = self.platform.simulator(*history, tps=self.args.tps)
        await self.daemons["simulator"].wait_ready()
        self.daemons["processor"] = self.platform.processor()
        self.daemons["api"] = self.platform.api()
        self.daemons["collector"] = self.platform.collector()
        for name in ("processor", "api", "collector"):
            await self.daemons[name].wait_ready(60)
        await wait_until(self._stored_anything, 60, "first stored trades")

    async def _stored_anything(self) -> bool:
        return bool(await self._fetch("SELECT 1 FROM trades LIMIT 1"))

    async def _fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.db_url)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    async def sim_last_ids(self) -> dict[str, int]:
        async with httpx.AsyncClient(timeout=10) as client:
            state = (await client.get(f"{self.platform.sim_url}/admin/state")).json()
        return {s: int(v["last_trade_id"]) for s, v in state["symbols"].items()}

    async def sim_fault(self, **fault: object) -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(f"{self.platform.sim_url}/admin/faults", json=fault)
            response.raise_for_status()

    # -- the faults ------------------------------------------------------------------------------------

    async def collector_kill(self) -> None:
        self.daemons["collector"].kill()
        await asyncio.sleep(self.args.restart_delay)
        await self._restart("collector")

    async def collector_term(self) -> None:
        await self.redis_proxy.stop()
        await asyncio.sleep(1.0)  # trades arrive while Redis is down: the collector holds them
        code, took = await asyncio.to_thread(self.daemons["collector"].stop)
        print(f"   collector stopped (exit {code}) in {took:.1f}s", flush=True)
        if code != 0:
            raise RuntimeError(f"collector exited {code} on SIGTERM\n{self.daemons['collector'].output()}")
        await asyncio.sleep(self.args.restart_delay)
        await self.redis_proxy.start()
        await self._restart("collector")

    async def processor_kill(self) -> None:
        self.daemons["processor"].kill()
        await asyncio.sleep(self.args.restart_delay)
        await self._restart("processor")

    async def database_outage(self) -> None:
        await self.pg_proxy.stop()
        await asyncio.sleep(self.args.outage)
        await self.pg_proxy.start()

    async def redis_outage(self) -> None:
        await self.redis_proxy.stop()
        await asyncio.sleep(self.args.outage)
        await self.redis_proxy.start()

    async def overload(self) -> None:
        await self.sim_fault(tps=self.args.tps * self.args.overload_factor)
        await asyncio.sleep(self.args.overload_seconds)
        await self.sim_fault(tps=self.args.tps)

    async def _restart(self, name: str) -> None:
        daemon = getattr(self.platform, name)()
        self.daemons[name] = daemon
        await daemon.wait_ready(120)

    # -- measuring ----------------------------------------------------------------------------------

    async def run_fault(self, name: str) -> Result:
        result = Result(name, since_ns=time.time_ns() - 5 * 10**9)
        first = await self.sim_last_ids()
        self.rss.reset()
        action: Callable[[], Awaitable[None]] = getattr(self, name.replace("-", "_"))
        print(f"-- {name} (at {elapsed():.0f}s)", flush=True)
        await action()
        ended = time.monotonic()
        target = await self.sim_last_ids()
        result.window = {s: (first[s] + 1, target[s]) for s in first}
        await self._wait_caught_up(result)
        if result.catch_up_s is None:  # else -1: not caught up within --catch-up-timeout
            result.catch_up_s = round(time.monotonic() - ended, 1)
        await asyncio.sleep(self.args.settle)
        result.peak_rss_mb = self.rss.reset()
        for daemon in self.daemons.values():
            daemon.assert_running()
        return result

    async def _wait_caught_up(self, result: Result) -> None:
        deadline = time.monotonic() + self.args.catch_up_timeout
        while time.monotonic() < deadline:
            if await self._stored_in_window(result) >= sum(b - a + 1 for a, b in result.window.values()):
                return
            await asyncio.sleep(0.5)
        result.catch_up_s = -1.0  # marker: not caught up in time

    async def _stored_in_window(self, result: Result) -> int:
        total = 0
        for raw, (a, b) in result.window.items():
            rows = await self._fetch(
                "SELECT count(DISTINCT sequence) FROM trades WHERE exchange = $1 AND symbol = $2 "
                "AND ts_event >= to_timestamp($3 / 1e9) AND sequence BETWEEN $4 AND $5",
                EXCHANGE, CANONICAL[raw], result.since_ns, a, b,
            )  # fmt: skip
            total += int(rows[0][0])
        return total

    async def account(self, results: list[Result]) -> None:
        """After the last fault: each fault's window extends to the next fault's start; count what is
        stored, missing, reported and duplicated in it."""
        last = self.final_ids
        for i, result in enumerate(results):
            ends = results[i + 1].window if i + 1 < len(results) else None
            for raw, (a, b) in list(result.window.items()):
                end = ends[raw][0] - 1 if ends else max(b, last[raw])
                result.window[raw] = (a, end)
        stored = await self._fetch(
            "SELECT raw_symbol, sequence, count(*) AS n FROM trades WHERE exchange = $1 GROUP BY 1, 2",
            EXCHANGE,
        )
        have: dict[str, dict[int, int]] = {}
        for r in stored:
            have.setdefault(r["raw_symbol"], {})[r["sequence"]] = r["n"]
        coverage = await self._fetch(
            "SELECT raw_symbol, first_sequence, last_sequence FROM coverage WHERE exchange = $1 "
            "AND kind IN ('abandoned', 'unverified') AND first_sequence IS NOT NULL",
            EXCHANGE,
        )
        for result in results:
            for raw, (a, b) in result.window.items():
                ids = have.get(raw, {})
                result.made += b - a + 1
                present = [i for i in range(a, b + 1) if i in ids]
                result.stored += len(present)
                result.duplicates += sum(ids[i] - 1 for i in present)
                missing = {i for i in range(a, b + 1) if i not in ids}
                result.missing += len(missing)
                if missing:
                    result.missing_ids[raw] = sorted(missing)[:50]
                reported: set[int] = set()  # coverage rows may overlap: each missing trade counts once
                for c in coverage:
                    if c["raw_symbol"] == raw:
                        span = range(max(a, c["first_sequence"]), min(b, c["last_sequence"]) + 1)
                        reported |= missing.intersection(span)
                result.reported += len(reported)

    async def wait_final(self, results: list[Result]) -> bool:
        """Let the pipeline store everything made before the accounting (the last window's end)."""
        final = Result("final", since_ns=results[0].since_ns if results else time.time_ns())
        self.final_ids = last = await self.sim_last_ids()
        final.window = {s: (results[-1].window[s][0], last[s]) for s in last} if results else {}
        await self._wait_caught_up(final)
        return final.catch_up_s is None

    async def stop(self) -> None:
        """SIGTERM every daemon at once (each flushes what it holds), then wait for all."""
        live = [d for d in self.platform.daemons if d.process is not None and d.process.poll() is None]
        outcomes = await asyncio.gather(
            *(asyncio.to_thread(d.stop, timeout=20) for d in live), return_exceptions=True
        )
        for daemon, outcome in zip(live, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                print(f"   {daemon.name} did not stop: {outcome!s:.300}", file=sys.stderr)
        await self.pg_proxy.stop()
        await self.redis_proxy.stop()


async def drill(args: argparse.Namespace) -> list[Result]:
    name = f"drills_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    db_url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    with tempfile.TemporaryDirectory(prefix="drills-") as tmp:
        runner = Drill(args, Path(tmp), db_url)
        sampler = asyncio.create_task(runner.rss.run())
        results: list[Result] = []
        try:
            await runner.start()
            print(f"-- pipeline up (at {elapsed():.0f}s)", flush=True)
            await asyncio.sleep(args.settle)
            for fault in args.faults:
                results.append(await runner.run_fault(fault))
                r = results[-1]
                print(f"   caught up in {r.catch_up_s}s; peak RSS MB {r.peak_rss_mb}", flush=True)
            stored = await runner.wait_final(results)
            state = "everything stored" if stored else "gave up waiting for the rest"
            print(f"-- {state} (at {elapsed():.0f}s)", flush=True)
            await runner.account(results)
            if args.keep_logs is not None:
                args.keep_logs.mkdir(parents=True, exist_ok=True)
                for d in runner.platform.daemons:
                    shutil.copy(d.log_path, args.keep_logs / d.log_path.name)
        except BaseException:
            if args.logs:
                for d in runner.platform.daemons:
                    print(f"===== {d.name}\n{d.output()}", file=sys.stderr)
            raise
        finally:
            sampler.cancel()
            await runner.stop()
            print(f"-- daemons stopped (at {elapsed():.0f}s)", flush=True)
            await _drop(name)
            await _flush_redis(runner.platform.redis_prefix)
    return results


async def _drop(name: str) -> None:
    admin = await asyncpg.connect(PG_ADMIN)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def _flush_redis(prefix: str) -> None:
    client = aioredis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def format_row(r: Result) -> str:
    rss = " ".join(f"{n}={r.peak_rss_mb.get(n, 0):.0f}" for n in DAEMONS)
    catch = "not caught up" if r.catch_up_s == -1.0 else f"{r.catch_up_s}s"
    return (
        f"{r.fault:<16} made={r.made:<8} stored={r.stored:<8} missing={r.missing:<6} "
        f"reported={r.reported:<6} dup={r.duplicates:<4} catch-up={catch:<8} peak RSS MB: {rss}"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tps", type=float, default=2500.0, help="market rate, trades/s (default 2500)")
    p.add_argument("--outage", type=float, default=60.0, help="database/Redis outage, s (default 60)")
    p.add_argument("--restart-delay", type=float, default=5.0, help="before a restart, s (default 5)")
    p.add_argument("--overload-factor", type=float, default=4.0, help="times --tps (default 4)")
    p.add_argument("--overload-seconds", type=float, default=30.0, help="overload duration (default 30)")
    p.add_argument("--settle", type=float, default=5.0, help="quiet time after each catch-up, s")
    p.add_argument("--catch-up-timeout", type=float, default=300.0, help="per fault, s (default 300)")
    p.add_argument("--faults", type=lambda s: s.split(","), default=list(FAULTS), help=",".join(FAULTS))
    p.add_argument(
        "--sim-history-age",
        type=float,
        help="seconds of trades the simulator's REST keeps (default its own, 120): shorter than a fault "
        "makes losses the drill must report (a check of the drill itself)",
    )
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--logs", action="store_true", help="print the daemons' logs on failure")
    p.add_argument("--keep-logs", type=Path, help="copy the daemons' whole logs to this directory")
    args = p.parse_args(argv)
    unknown = set(args.faults) - set(FAULTS)
    if unknown:
        p.error(f"unknown faults {sorted(unknown)}; known: {', '.join(FAULTS)}")
    return args


def main(argv: list[str] | None = None) -> list[Result]:
    args = parse_args(argv)
    print(
        f"drills: {args.tps:g} trades/s, outages {args.outage:g}s, restarts after {args.restart_delay:g}s, "
        f"overload {args.overload_factor:g}x for {args.overload_seconds:g}s",
        flush=True,
    )
    results = asyncio.run(drill(args))
    print("\n== results (windows run from one fault's start to the next's)")
    for r in results:
        print(format_row(r))
    total_missing = sum(r.missing for r in results)
    print(
        f"total: made {sum(r.made for r in results)}, missing {total_missing} "
        f"(reported {sum(r.reported for r in results)}, silent {sum(r.silent_loss for r in results)}), "
        f"duplicates {sum(r.duplicates for r in results)}"
    )
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))
    return results


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    main()
