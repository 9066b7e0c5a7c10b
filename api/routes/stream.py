"""WS /api/v1/ws/bars: pushes every closed bar published on the cache that matches the filter.

Query: exchange (default from settings), symbol (optional, any accepted spelling; absent = every
symbol), timeframe (optional; absent = every timeframe). The server first sends
{"type": "subscribed", "exchange", "symbol", "timeframe"} once the cache subscription is open, then
{"type": "bar", "data": <bar with indicators>} per bar. Invalid parameters: the connection is accepted
and closed with code 1008 and a reason naming the parameter.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from fastapi import APIRouter, WebSocket
from loguru import logger
from prometheus_client import Counter
from starlette.websockets import WebSocketDisconnect

from api.deps import ContextDep
from api.errors import ApiError
from api.params import parse_exchange, parse_timeframe
from api.schemas import BarMessage, BarOut
from api.symbols import SymbolDirectory
from core.errors import CircuitOpenError, StorageError
from core.types import Bar, ClosedBar

router = APIRouter(tags=["stream"])

GOING_AWAY = 1001
POLICY_VIOLATION = 1008
INTERNAL_ERROR = 1011
_MAX_REASON_BYTES = 123  # RFC 6455: a close frame's reason fits in 123 bytes


@dataclass(frozen=True)
class BarFilter:
    """Which bars a client wants; None matches anything."""

    exchange: str
    symbol: str | None
    timeframe: str | None

    def matches(self, bar: Bar) -> bool:
        return (
            bar.exchange == self.exchange
            and (self.symbol is None or bar.symbol == self.symbol)
            and (self.timeframe is None or bar.timeframe == self.timeframe)
        )


def _reason(text: str) -> str:
    return text.encode()[:_MAX_REASON_BYTES].decode(errors="ignore")


async def _filter_of(websocket: WebSocket, default_exchange: str, symbols: SymbolDirectory) -> BarFilter:
    params = websocket.query_params
    exchange = parse_exchange(params.get("exchange") or default_exchange)
    raw_timeframe = params.get("timeframe")
    timeframe = parse_timeframe(raw_timeframe) if raw_timeframe else None
    raw_symbol = params.get("symbol")
    symbol = (await symbols.resolve(exchange, raw_symbol[:64])).symbol if raw_symbol else None
    return BarFilter(exchange, symbol, timeframe)


@router.websocket("/api/v1/ws/bars", name="stream_bars")
async def stream_bars(websocket: WebSocket, context: ContextDep) -> None:
    await websocket.accept()
    try:
        bar_filter = await _filter_of(websocket, context.settings.default_exchange, context.symbols)
    except ApiError as exc:
        await websocket.close(code=POLICY_VIOLATION, reason=_reason(exc.message))
        return
    except (StorageError, CircuitOpenError):
        await websocket.close(code=INTERNAL_ERROR, reason="storage unavailable, try again later")
        return
    log = logger.bind(ws_filter=f"{bar_filter.exchange}:{bar_filter.symbol}:{bar_filter.timeframe}")
    gauge, sent = context.metrics.websocket_connections, context.metrics.websocket_messages_sent
    gauge.inc()
    log.info("websocket client subscribed")
    try:
        await _serve(websocket, context.cache.subscribe(), bar_filter, sent)
    except WebSocketDisconnect:
        pass
    finally:
        gauge.dec()
        log.info("websocket client gone")


async def _serve(
    websocket: WebSocket, subscription: AsyncIterator[ClosedBar], bar_filter: BarFilter, sent: Counter
) -> None:
    """Forward bars until the client leaves or the subscription ends; always close the subscription."""
    forward = asyncio.create_task(_forward(websocket, subscription, bar_filter, sent))
    listen = asyncio.create_task(_until_disconnect(websocket))
    try:
        await asyncio.sleep(0)  # a cache that subscribes on first iteration gets to do so first
        await websocket.send_json(
            {
                "type": "subscribed",
                "exchange": bar_filter.exchange,
                "symbol": bar_filter.symbol,
                "timeframe": bar_filter.timeframe,
            }
        )
        await asyncio.wait({forward, listen}, return_when=asyncio.FIRST_COMPLETED)
        client_left = listen.done()
    finally:
        forward.cancel()
        listen.cancel()
        results = await asyncio.gather(forward, listen, return_exceptions=True)
        closer = getattr(subscription, "aclose", None)
        if closer is not None:
            await closer()
    if client_left or any(isinstance(r, WebSocketDisconnect) for r in results):
        return
    failure = results[0]
    if isinstance(failure, Exception):
        logger.opt(exception=failure).error("websocket bar stream failed")
        await websocket.close(code=INTERNAL_ERROR, reason="bar stream failed")
    else:
        await websocket.close(code=GOING_AWAY, reason="bar stream ended")


async def _forward(
    websocket: WebSocket, subscription: AsyncIterator[ClosedBar], bar_filter: BarFilter, sent: Counter
) -> None:
    async for closed in subscription:
        if bar_filter.matches(closed.bar):
            message = BarMessage(data=BarOut.of(closed))
            await websocket.send_text(message.model_dump_json())
            sent.inc()


async def _until_disconnect(websocket: WebSocket) -> None:
    """Read (and ignore) client messages until it disconnects."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
