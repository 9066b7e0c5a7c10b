"""What tracing and the request log cost, on this machine.

1. The collector's and processor's hot paths with tracing off, on (every batch sampled) and on with no
   batch sampled: a read's batch of 1000 trades into the outbox and out as one publish (what the session
   does per websocket read), and one Redis entry decoded (what the processor does per entry). Off, the
   only work added is a module attribute read per batch.
2. The api_response line alone: `emit("api_response", ...)` into a JSON log file (CPU time of the
   process, the log-writer thread included), and one API request through the ASGI app
   (httpx.ASGITransport, SQLite store) with the line (INFO) and without it (WARNING), in CPU time (wall
   time on a shared machine mostly measures the neighbours). The test client's own httpx log line is
   silenced: it is not the server's.

Run: .venv/bin/python bench/bench_tracing.py
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON
from prometheus_client import CollectorRegistry

from collectors.outbox import Outbox
from collectors.session_metrics import SessionMetrics
from core.types import Delivery, Side, Trade
from monitoring import tracing
from monitoring.logger import flush_logs, setup_logging, shutdown_logging
from monitoring.metrics import PlatformMetrics
from storage.codec import encode_trades
from storage.redis_bus import _decode_entry
from storage.redis_publisher import FIELD, TRACE_FIELD

BATCH = 1000
T0 = 1_700_000_000_000_000_000


def trades(n: int) -> list[Trade]:
    return [
        Trade("binance", "BTC-USDT", "BTCUSDT", str(i), i, "50000.10", "0.001", Side.BUY, T0 + i, T0 + i + 5)
        for i in range(n)
    ]


def emit_cost(count: int) -> float:
    """CPU microseconds per api_response event written to a JSON file (writer thread included)."""
    from monitoring.events import emit

    with tempfile.TemporaryDirectory() as tmp:
        setup_logging("bench", level="INFO", json=True, log_dir=Path(tmp), console=False)
        best = float("inf")
        for _ in range(3):
            started = time.process_time()
            for i in range(count):
                emit(
                    "api_response",
                    "GET /api/v1/bars 200",
                    component="api",
                    method="GET",
                    path="/api/v1/bars",
                    status=200,
                    duration_ms=1.234,
                    request_id=f"{i:032x}",
                )
            flush_logs()
            best = min(best, (time.process_time() - started) / count)
        shutdown_logging()
    return best * 1e6


def per_call(fn: Callable[[], object], repeat: int) -> float:
    """Best of 5 rounds, microseconds per call."""
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(repeat):
            fn()
        best = min(best, (time.perf_counter() - started) / repeat)
    return best * 1e6


def outbox_batch(outbox: Outbox, batch: list[Trade]) -> Callable[[], object]:
    def step() -> object:
        if tracing.ENABLED:  # as Connections._read does
            with tracing.trace_operation("collector.batch", {"trades": len(batch)}):
                outbox.put(batch)
        else:
            outbox.put(batch)
        return outbox._next_batch()

    return step


def hot_paths(repeat: int) -> None:
    metrics = PlatformMetrics(CollectorRegistry())
    outbox = Outbox(_Sink(), SessionMetrics(metrics, "binance", {"BTCUSDT": "BTC-USDT"}, 1))
    batch = trades(BATCH)
    payload = encode_trades(batch[:100])
    plain = {FIELD: payload}
    traced = {FIELD: payload, TRACE_FIELD: b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-01"}

    def decode(fields: dict[bytes, bytes]) -> Callable[[], object]:
        return lambda: _decode_entry(Delivery("s", "1-0", []), fields)

    for label, sampler in (("off", None), ("on, sampled", ALWAYS_ON), ("on, not sampled", ALWAYS_OFF)):
        if sampler is not None:
            tracing.configure_tracing("bench", exporter=InMemorySpanExporter(), sampler=sampler)
        us = per_call(outbox_batch(outbox, batch), repeat)
        fields = traced if sampler is ALWAYS_ON else plain
        entry = per_call(decode(fields), repeat * 10)
        print(
            f"tracing {label:<16}: outbox batch of {BATCH} trades {us:7.2f} us "
            f"({us * 1000 / BATCH:5.1f} ns/trade); Redis entry of 100 trades decoded {entry:6.2f} us"
        )
        tracing.shutdown_tracing()


class _Sink:
    async def publish(self, trades: object) -> None:
        return None

    async def publish_events(self, events: object) -> None:
        return None


async def api_requests(level: str, count: int) -> float:
    """CPU microseconds per GET /api/v1/symbols through the ASGI app with logging at `level`."""
    import httpx

    from api.app import create_app
    from api.settings import ApiSettings
    from storage.memory_cache import MemoryCache
    from storage.sqlite import SQLiteStore

    with tempfile.TemporaryDirectory() as tmp:
        setup_logging("bench", level=level, json=True, log_dir=Path(tmp), console=False)
        logging.getLogger("httpx").setLevel(logging.WARNING)  # the test client's line, not the server's
        metrics = PlatformMetrics(CollectorRegistry())
        store = SQLiteStore(Path(tmp) / "db.sqlite", metrics=metrics)
        await store.migrate()
        app = create_app(
            store,
            MemoryCache(metrics=metrics),
            metrics=metrics,
            settings=ApiSettings(rate_limit_per_second=0),
        )
        transport = httpx.ASGITransport(app=app)
        best = float("inf")
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as http:
            for _ in range(3):
                started = time.process_time()
                for _ in range(count):
                    await http.get("/api/v1/symbols")
                flush_logs()
                best = min(best, (time.process_time() - started) / count)
        await store.close()
        shutdown_logging()
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2000, help="batches per round")
    parser.add_argument("--requests", type=int, default=1500, help="API requests per round")
    args = parser.parse_args()
    hot_paths(args.repeat)
    print(f"api_response event into a JSON log file: {emit_cost(args.requests * 10):.1f} us CPU per event")
    for _ in range(2):  # alternate: the machine is noisy
        with_line = asyncio.run(api_requests("INFO", args.requests))
        without = asyncio.run(api_requests("WARNING", args.requests))
        extra = with_line - without
        print(
            f"API request through the ASGI app: {with_line:.0f} us CPU with the api_response JSON line, "
            f"{without:.0f} us without ({extra:+.1f} us, {100 * extra / without:+.1f}%)"
        )


if __name__ == "__main__":
    main()
