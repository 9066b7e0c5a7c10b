"""End-to-end collector throughput per websocket client: simulator (own process, on-demand market) ->
CollectorSession (this process: recv, parse, gap check, publish to a counting sink). Prints trades/s.

    .venv/bin/python bench/bench_collector.py [seconds-per-transport]

The simulator produces as fast as the slowest client drains, so the number is the collector's ceiling
on this machine (2 cores: the simulator and the collector each get about one).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import socket
import sys
import time
from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry

from collectors.backfill import discover
from collectors.session import CollectorSession
from collectors.transport import WebsocketsConnector, WsConnector
from collectors.transport_picows import PicowsConnector
from core.types import Trade
from monitoring.metrics import PlatformMetrics

SYMBOLS = ["BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT"]


def _serve(port: int, ready: Any, seconds: float) -> None:
    from simulator.binance import BinanceSimulator
    from simulator.markets import SyntheticMarket

    async def main() -> None:
        metrics = PlatformMetrics(CollectorRegistry())
        sim = BinanceSimulator(SyntheticMarket(SYMBOLS, tps=0, seed=1), port=port, metrics=metrics)
        await sim.start()
        ready.set()
        await asyncio.sleep(seconds)
        await sim.stop()

    asyncio.run(main())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class CountingSink:
    def __init__(self) -> None:
        self.count = 0

    async def publish(self, trades: Sequence[Trade]) -> None:
        self.count += len(trades)


async def measure(label: str, connector: WsConnector, url: str, seconds: float) -> None:
    metrics = PlatformMetrics(CollectorRegistry())
    async with await discover("binance", url.replace("ws://", "http://"), metrics=metrics) as rest:
        sink = CountingSink()
        session = CollectorSession(
            rest.adapter,
            SYMBOLS,
            publisher=sink,
            ws_base_url=url,
            backfiller=rest,
            metrics=metrics,
            connector=connector,
        )
        task = asyncio.create_task(session.run())
        await asyncio.sleep(1.0)  # warm-up
        start_count, started, cpu = sink.count, time.perf_counter(), time.process_time()
        await asyncio.sleep(seconds)
        elapsed = time.perf_counter() - started
        rate = (sink.count - start_count) / elapsed
        busy = (time.process_time() - cpu) / elapsed
        session.stop()
        await task
    gaps = metrics.registry.get_sample_value(
        "trade_gaps_total", {"exchange": "binance", "symbol": "BTC-USDT"}
    )
    print(f"{label:<12} {rate / 1000:8.1f} k trades/s  CPU {busy:4.0%}  gaps repaired: {gaps or 0:.0f}")


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 4.0
    for label, connector in (("websockets", WebsocketsConnector()), ("picows", PicowsConnector())):
        port = free_port()
        ready = multiprocessing.get_context("spawn").Event()
        server = multiprocessing.get_context("spawn").Process(target=_serve, args=(port, ready, seconds + 4))
        server.start()
        ready.wait(10)
        asyncio.run(measure(label, connector, f"ws://127.0.0.1:{port}", seconds))
        server.join()


if __name__ == "__main__":
    main()
