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
from simulator.serve import SimulatorSettings, serve
from simulator.venues import DEFAULT_VENUE, VENUES


def _parse(argv: list[str] | None) -> SimulatorSettings:
    """Flags named after the settings' fields; an absent flag keeps the setting's default."""
    parser = argparse.ArgumentParser(
        prog="python -m simulator", description=__doc__, argument_default=argparse.SUPPRESS
    )
    parser.add_argument("--exchange", help=f"one of {', '.join(sorted(VENUES))} (default {DEFAULT_VENUE})")
    parser.add_argument("--host", help="default 127.0.0.1")
    parser.add_argument("--port", type=int, help="default 8765; 0 = any free port")
    parser.add_argument("--symbols", help="comma-separated, e.g. BTC-USDT,ETH-USDT (default: the venue's)")
    parser.add_argument("--tps", type=float, help="synthetic trades/s in total (default 50); 0 = on demand")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--start-trade-id", type=int, help="first synthetic trade id (default 1000000)")
    parser.add_argument("--replay", help="CSV: timestamp_ms,symbol,trade_id,price,quantity,is_buyer_maker")
    parser.add_argument("--speed", type=float, help="replay speed (default 1); 0 = as fast as clients read")
    parser.add_argument("--ping-interval", type=float, help="seconds between server pings (default 20)")
    parser.add_argument("--ping-timeout", type=float, help="seconds to answer a ping (default 60)")
    parser.add_argument(
        "--heartbeat-interval",
        type=float,
        help="seconds between heartbeat-channel messages, where the venue has one (default 1)",
    )
    parser.add_argument(
        "--idle-timeout", type=float, help="seconds of silence before a venue that does closes (default 30)"
    )
    parser.add_argument(
        "--subscribe-timeout",
        type=float,
        help="seconds to subscribe, where the venue requires it (default 5)",
    )
    parser.add_argument("--faults", help='JSON injected at start, e.g. {"skip": 5}')
    return SimulatorSettings(**vars(parser.parse_args(argv)))


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
