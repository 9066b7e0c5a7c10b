"""`python -m simulator`: serve a simulated exchange (websocket and REST on one port) until stopped.

The platform's own entry point is `cryptostock simulate`; this one needs nothing but the simulator.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

import pydantic

from core.errors import ConfigError
from simulator.faults import FaultRequest
from simulator.serve import SimulatorSettings, serve
from simulator.venues import VENUES


def _parse(argv: list[str] | None) -> SimulatorSettings:
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__)
    parser.add_argument("--exchange", default="binance", help=f"one of {', '.join(sorted(VENUES))}")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--symbols", default=None, help="comma-separated, e.g. BTC-USDT,ETH-USDT")
    parser.add_argument("--tps", type=float, default=50.0, help="synthetic trades/s in total; 0 = on demand")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--replay", default=None, help="CSV: timestamp_ms,symbol,trade_id,price,quantity,...")
    parser.add_argument("--speed", type=float, default=1.0, help="replay speed; 0 = as fast as clients read")
    parser.add_argument("--ping-interval", type=float, default=20.0)
    parser.add_argument("--ping-timeout", type=float, default=60.0)
    parser.add_argument("--heartbeat-interval", type=float, default=1.0, help="seconds (Coinbase)")
    parser.add_argument("--idle-timeout", type=float, default=30.0, help="seconds (OKX closes 4004)")
    parser.add_argument("--subscribe-timeout", type=float, default=5.0, help="seconds (Coinbase)")
    parser.add_argument("--faults", default=None, help='JSON injected at start, e.g. {"skip": 5}')
    args = parser.parse_args(argv)
    faults = FaultRequest.model_validate_json(args.faults) if args.faults else None
    return SimulatorSettings(
        exchange=args.exchange,
        host=args.host,
        port=args.port,
        symbols=args.symbols,
        tps=args.tps,
        seed=args.seed,
        replay=args.replay,
        speed=args.speed,
        ping_interval=args.ping_interval,
        ping_timeout=args.ping_timeout,
        heartbeat_interval=args.heartbeat_interval,
        idle_timeout=args.idle_timeout,
        subscribe_timeout=args.subscribe_timeout,
        faults=faults,
    )


async def _main(settings: SimulatorSettings) -> None:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await serve(settings, on_ready=lambda sim: print(f"READY {sim.ws_url}", flush=True))


def main(argv: list[str] | None = None) -> int:
    try:
        settings = _parse(argv)
        asyncio.run(_main(settings))
    except (ConfigError, pydantic.ValidationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
