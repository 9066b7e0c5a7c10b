"""CollectorSession on a scripted transport, for what timing on a real socket cannot pin down: which frames
arrive in one read. A fake, because which frames share one read is up to the network."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from collectors.adapter import Capabilities
from collectors.exchanges.binance import BinanceAdapter
from collectors.session import CollectorSession
from collectors.transport import TransportClosed
from core.types import SymbolInfo
from monitoring.metrics import PlatformMetrics
from tests.collectors.session_harness import RecordingSink, Sample, eventually


class ScriptedConnector:
    """The first connection delivers `first_read` as one batch; every connection after that stays silent."""

    def __init__(self, first_read: list[bytes]) -> None:
        self.first_read = first_read
        self.connections = 0

    async def connect(self, url: str, caps: Capabilities) -> Any:
        self.connections += 1
        return _ScriptedConnection(self.first_read if self.connections == 1 else [])


class _ScriptedConnection:
    def __init__(self, frames: list[bytes]) -> None:
        self.frames = frames
        self.closed = asyncio.Event()

    async def recv_many(self, limit: int) -> list[bytes | str]:
        if self.frames:
            batch, self.frames = list(self.frames), []
            return batch
        await self.closed.wait()
        raise TransportClosed("closed")

    async def send(self, text: str) -> None:
        return None

    async def close(self) -> None:
        self.closed.set()

    def abort(self) -> None:
        self.closed.set()


async def test_trades_read_with_a_server_shutdown_are_published_before_reconnecting(
    metrics: PlatformMetrics,
) -> None:
    def trade(trade_id: int) -> bytes:
        event = {"e": "trade", "E": 1, "s": "BTCUSDT", "t": trade_id, "p": "100.5", "q": "0.25",
                 "T": 1_700_000_000_000 + trade_id, "m": False, "M": True}  # fmt: skip
        return json.dumps({"stream": "btcusdt@trade", "data": event}).encode()

    shutdown = json.dumps({"stream": "!serverShutdown", "data": {"e": "serverShutdown", "E": 1}}).encode()
    connector = ScriptedConnector([trade(7), trade(8), shutdown, trade(9)])
    sink = RecordingSink()
    adapter = BinanceAdapter([SymbolInfo("binance", "BTC-USDT", "BTCUSDT", "BTC", "USDT")])
    session = CollectorSession(
        adapter, ["BTCUSDT"], publisher=sink, metrics=metrics, connector=connector, ws_base_url="ws://unused"
    )
    task = asyncio.create_task(session.run())
    try:
        await eventually(lambda: connector.connections >= 2)
        await eventually(lambda: sink.ids("BTCUSDT") == [7, 8])  # 9 came after the announcement
        assert Sample(metrics, "binance")("websocket_reconnections_total") >= 1
    finally:
        session.stop()
        await asyncio.wait_for(task, 5)
    assert sink.ids("BTCUSDT") == [7, 8]
