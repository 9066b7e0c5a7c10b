"""A local exchange on one port (aiohttp), fed by a market and speaking one venue's protocol.

Semantics, the same for every venue:
- The market produces trades into a per-symbol history (at most `max_history` per symbol, oldest dropped)
  that REST serves, and into a global log that every websocket tails from the live end.
- Paced markets (synthetic with tps > 0, replay with speed > 0) follow the wall clock whether or not
  anyone listens. On-demand markets (speed 0, tps 0) produce only while at least one connection is
  subscribed, and never more than LOOKAHEAD trades ahead of the slowest subscribed connection.
- A subscribed connection that falls `max_backlog` trades behind the live end is closed (1008), as
  venues close slow consumers. When a replay ends the server stays up, idle; `finished` turns true.
The venue (simulator/venue.py) decides paths, payloads, control messages, keep-alive and REST shapes.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import time
from collections.abc import Sequence
from typing import Any

from aiohttp import web
from loguru import logger

from core.errors import ConfigError
from monitoring.metrics import METRICS, PlatformMetrics
from simulator.connection import Connection
from simulator.faults import FaultRequest, FaultState
from simulator.history import Notifier, Recorded, SymbolHistory, TradeLog
from simulator.rest import RestFront
from simulator.synthetic import SyntheticMarket
from simulator.trades import MarketSource, MarketTrade
from simulator.venue import HandshakeRefused, VenueProtocol

LOOKAHEAD = 4096
TRIM_CHUNK = 4096
DEFAULT_MAX_HISTORY = 2_000_000
DEFAULT_MAX_HISTORY_AGE_S = 120.0  # REST reaches back over a collector's restart or a 60 s outage
DEFAULT_MAX_BACKLOG = 1_000_000


class SimulatedExchange:
    """The simulated exchange (see the module docstring). Implements TradeTape for its market.

    Public state: `venue`, `port` (the bound one after start), `symbols` (raw), `trades_sent` (trade frames
    written, summed over connections), `malformed_sent`, `client_errors` (client frames answered with the
    venue's error), `connection_count`, `finished` (the market ended), `faults` (pending faults),
    `history(symbol)`, `state()` (what GET /admin/state answers).
    max_history: trades kept per symbol for REST; max_history_age_s: and only those at most this much
    older than the symbol's newest trade (None: no age bound); max_backlog: how far (in trades) a
    subscribed connection may fall behind before it is closed.
    """

    def __init__(
        self,
        market: MarketSource,
        venue: VenueProtocol,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        metrics: PlatformMetrics = METRICS,
        max_history: int = DEFAULT_MAX_HISTORY,
        max_history_age_s: float | None = None,
        max_backlog: int = DEFAULT_MAX_BACKLOG,
    ) -> None:
        _check_symbols(market, venue)
        self.market, self.venue = market, venue
        self.host, self._requested_port, self.port = host, port, port
        self.metrics, self.max_backlog = metrics, max_backlog
        self.symbols: frozenset[str] = frozenset(market.symbols)
        self.log = TradeLog()
        self.wake = self.log.grew
        self.drained = Notifier()
        self.faults = FaultState()
        self.trades_sent = 0
        self.malformed_sent = 0
        self.client_errors = 0
        self.finished = False
        self.connections: dict[int, Connection] = {}
        age_ms = None if max_history_age_s is None else round(max_history_age_s * 1000)
        self._histories = {s: SymbolHistory(s, max_history, age_ms) for s in market.symbols}
        self._conn_ids = itertools.count(1)
        self._handlers: set[asyncio.Task[Any]] = set()
        self._runner: web.AppRunner | None = None
        self._market_task: asyncio.Task[None] | None = None
        self._log = logger.bind(component="simulator", exchange=venue.name)

    # -- lifecycle --------------------------------------------------------------------------------------

    @property
    def ws_url(self) -> str:
        """The websocket base a collector connects to; the venue's paths (README) go after it."""
        return f"ws://{self.host}:{self.port}"

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def connection_count(self) -> int:
        return len(self.connections)

    async def start(self) -> None:
        app = web.Application()
        RestFront(self, self.venue).install(app)
        for path in self.venue.ws_paths:
            app.router.add_get(path, self._ws_handler)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=2.0, max_line_size=65536
        )
        await self._runner.setup()
        try:
            sock = socket.create_server((self.host, self._requested_port), reuse_port=False)
        except OSError as exc:
            await self._runner.cleanup()
            raise ConfigError(
                f"simulator cannot listen on {self.host}:{self._requested_port}: {exc}"
            ) from exc
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        self._market_task = asyncio.create_task(self._run_market(), name="sim-market")
        self._log.info(
            "{} listening on {} ({} market, symbols {})",
            self.venue.name,
            self.ws_url,
            self.market.kind,
            sorted(self.symbols),
        )

    async def stop(self) -> None:
        """Stop the market, send the venue's farewell and close every websocket with 1001, stop listening."""
        if self._market_task is not None:
            self._market_task.cancel()
            await asyncio.gather(self._market_task, return_exceptions=True)
            self._market_task = None
        now_ms = time.time_ns() // 1_000_000
        await asyncio.gather(*(c.shutdown(now_ms) for c in list(self.connections.values())))
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=5.0)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _run_market(self) -> None:
        try:
            await self.market.run(self)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001
            # The top of the market task (CancelledError re-raised above): a failing synthetic or replayed
            # market is logged with its traceback and the server keeps serving what it has.
            self._log.exception("market failed; the server stays up without new trades")
        else:
            total = sum(len(h) for h in self._histories.values())
            self._log.info("market finished ({} trades in history)", total)
        self.finished = True

    # -- TradeTape --------------------------------------------------------------------------------------

    def publish(self, trades: Sequence[MarketTrade]) -> None:
        """Record trades and send them to websocket clients in order. A trade id seen before (a replayed
        file's duplicate row) is sent again, as the file has it, but served over REST once."""
        faults, histories, encode = self.faults, self._histories, self.venue.encode_trade
        entries: list[Recorded] = []
        append = entries.append
        for trade in trades:
            history = histories.get(trade.symbol)
            if history is None:
                continue  # a symbol the exchange does not list
            hidden = bool(faults.skip_pending) and faults.take_skip(trade.symbol)
            entry = (trade, encode(trade), hidden)
            history.append(entry)
            append(entry)
        self.log.extend(entries)
        self._trim_log()

    def record_past(self, trades: Sequence[MarketTrade]) -> None:
        """Trades the exchange had before this run (a resumed replay's rows already collected): served
        over REST, never sent on a websocket."""
        histories, encode = self._histories, self.venue.encode_trade
        for trade in trades:
            history = histories.get(trade.symbol)
            if history is not None:
                history.append((trade, encode(trade), False))

    async def subscribed(self) -> None:
        """Wait until a websocket client has subscribed."""
        while not any(c.subscribed for c in self.connections.values()):
            await self.drained.wait(timeout=0.05)

    @property
    def all_sent(self) -> bool:
        """Every trade recorded so far has been written to every subscribed connection (and at least
        one connection has subscribed)."""
        cursors = [c.cursor for c in self.connections.values() if c.subscribed]
        return bool(cursors) and min(cursors) >= self.log.end

    async def demand(self) -> int:
        while True:
            cursors = [c.cursor for c in self.connections.values() if c.subscribed]
            if cursors:
                lag = self.log.end - min(cursors)
                if lag < LOOKAHEAD:
                    return LOOKAHEAD - lag
            await self.drained.wait(timeout=1.0)

    def _trim_log(self) -> None:
        end = self.log.end
        floor = min((c.cursor for c in self.connections.values() if c.subscribed), default=end)
        floor = max(floor, end - self.max_backlog)
        if floor - self.log.start >= TRIM_CHUNK or (floor == end and end > self.log.start):
            self.log.trim(floor)

    # -- websockets -------------------------------------------------------------------------------------

    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        conn_id = next(self._conn_ids)
        if self.faults.outage_for(asyncio.get_running_loop().time()) > 0:
            return web.Response(status=503, text="Service Unavailable")
        try:
            session = self.venue.open(request, conn_id, self)
        except HandshakeRefused as exc:
            return exc.response
        ws = web.WebSocketResponse(autoping=False, compress=False, timeout=2.0, max_msg_size=1 << 20)
        await ws.prepare(request)
        if request.transport is None:  # the client left during the handshake
            return ws
        conn = Connection(conn_id, ws, request, session, self)
        task = asyncio.current_task()
        assert task is not None
        self.connections[conn_id] = conn
        self._handlers.add(task)
        self.drained.notify()
        self._log.debug("connection {} opened: {}", conn_id, conn.path)
        try:
            await conn.serve()
        finally:
            self.connections.pop(conn_id, None)
            self._handlers.discard(task)
            self._log.debug("connection {} closed after {} trades", conn_id, conn.sent)
        return ws

    # -- faults ------------------------------------------------------------------------------------------

    def drop_connections(self) -> None:
        """Drop every websocket without a close frame."""
        for conn in list(self.connections.values()):
            conn.abort()
        self._log.info("fault: dropped {} connections", len(self.connections))

    def stall(self, seconds: float) -> None:
        """Send no data and no heartbeats (pings are still answered) on any websocket for `seconds`."""
        self.faults.stall_until = max(self.faults.stall_until, asyncio.get_running_loop().time() + seconds)
        self.wake.notify()
        self._log.info("fault: stalling for {}s", seconds)

    def outage(self, seconds: float) -> None:
        """Drop every websocket and answer websocket upgrades 503 for `seconds` (REST keeps serving and the
        market keeps trading: what happened meanwhile is only in history)."""
        until = asyncio.get_running_loop().time() + seconds
        self.faults.outage_until = max(self.faults.outage_until, until)
        self.drop_connections()
        self._log.info("fault: websocket outage for {}s", seconds)

    def send_malformed(self, count: int) -> None:
        """Send `count` malformed frames (the venue's kinds in rotation) on every websocket."""
        for conn in self.connections.values():
            conn.malformed_pending += count
        self.wake.notify()
        self._log.info("fault: {} malformed frames to {} connections", count, len(self.connections))

    def send_frames(self, frames: Sequence[tuple[bytes, int]]) -> None:
        """Send these (payload, opcode) frames, unchanged, on every subscribed websocket, between the trades
        (a fuzzer's damaged frames)."""
        for conn in self.connections.values():
            if conn.subscribed:
                conn.raw_pending.extend(frames)
        self.wake.notify()

    def source_message(self) -> bytes | None:
        """The good message broken frames are made from on the first subscribed websocket (its latest
        visible trade as that connection receives it), or None before any subscription."""
        conn = next((c for c in self.connections.values() if c.subscribed), None)
        return None if conn is None else conn.source_message()

    def skip_ids(self, count: int, symbol: str | None = None) -> None:
        """Withhold the next `count` trades (of `symbol`, or of each symbol) from every websocket."""
        raw = self._listed(symbol) if symbol else None
        self.faults.add_skip([raw] if raw else sorted(self.symbols), count)
        self._log.info("fault: skipping the next {} ids of {}", count, raw or "every symbol")

    def rate_limit(self, count: int, retry_after: int = 1) -> None:
        """Answer the next `count` REST calls with 429 and Retry-After: `retry_after` seconds."""
        self.faults.rate_limited += count
        self.faults.retry_after = retry_after
        self._log.info("fault: next {} REST calls get 429", count)

    def apply_faults(self, request: FaultRequest) -> None:
        if request.skip:
            self.skip_ids(request.skip, request.skip_symbol)
        if request.rate_limit:
            self.rate_limit(request.rate_limit, request.retry_after)
        if request.malformed:
            self.send_malformed(request.malformed)
        if request.stall:
            self.stall(request.stall)
        if request.drop:
            self.drop_connections()
        if request.outage:
            self.outage(request.outage)
        if request.tps:
            self.set_rate(request.tps)

    def set_rate(self, tps: float) -> None:
        """A paced synthetic market's trades per second from now on; ValueError for other markets."""
        if not isinstance(self.market, SyntheticMarket) or self.market.on_demand:
            raise ValueError("only a paced synthetic market (tps > 0) can change its rate")
        self.market.tps = tps
        self._log.info("fault: market rate now {} trades/s", tps)

    def _listed(self, text: str) -> str:
        """A listed symbol as the user spelled it ('btcusdt', 'BTC/USDT'); ValueError if not listed."""
        try:
            symbol = self.venue.raw_symbol(text)
        except ConfigError:
            symbol = text
        if symbol not in self.symbols:
            raise ValueError(f"unknown symbol {text!r}")
        return symbol

    # -- what venues and tests read ---------------------------------------------------------------------

    def history_of(self, symbol: str) -> SymbolHistory:
        return self._histories[symbol]

    def history(self, symbol: str) -> list[MarketTrade]:
        """Every retained trade of `symbol` (including skipped ones), oldest first."""
        return [e[0] for e in self._histories[symbol].retained()]

    def latest_trade(self, symbol: str) -> MarketTrade | None:
        history = self._histories.get(symbol)
        entries = history.latest(1) if history is not None else []
        return entries[0][0] if entries else None

    def latest_before(self, symbol: str, cursor: int, *, visible: bool) -> MarketTrade | None:
        recent = self.recent_before(symbol, cursor, 1, visible=visible)
        return recent[0] if recent else None

    def recent_before(self, symbol: str, cursor: int, count: int, *, visible: bool) -> list[MarketTrade]:
        history = self._histories.get(symbol)
        if history is None:
            return []
        pending = self.log.first_of(symbol, cursor)  # ids grow in log order: older ids were before cursor
        entries = history.recent_below(pending.trade_id if pending else None, count, visible=visible)
        return [entry[0] for entry in entries]

    def count_request(self, method: str, endpoint: str, status: int) -> None:
        self.metrics.http_requests.labels(method=method, endpoint=endpoint, status=str(status)).inc()

    def state(self) -> dict[str, Any]:
        now = asyncio.get_running_loop().time()
        return {
            "exchange": self.venue.name,
            "market": self.market.kind,
            "finished": self.finished,
            "symbols": {
                s: {"last_trade_id": h.last_id, "trades": len(h)} for s, h in sorted(self._histories.items())
            },
            "connections": len(self.connections),
            "connection_details": [
                {
                    "id": c.conn_id,
                    "path": c.path,
                    "user_agent": c.user_agent,
                    "streams": c.session.streams(),
                    "sent": c.sent,
                    "lag": self.log.end - c.cursor,
                }
                for c in self.connections.values()
            ],
            "trades_sent": self.trades_sent,
            "malformed_sent": self.malformed_sent,
            "client_errors": self.client_errors,
            "faults": self.faults.snapshot(now),
        }


def _check_symbols(market: MarketSource, venue: VenueProtocol) -> None:
    """Every market symbol must be the venue's raw symbol (a market built for another venue's spelling
    would list BTCUSDT on a venue that speaks BTC-USDT)."""
    for symbol in market.symbols:
        expected = venue.raw_symbol(symbol)
        if expected != symbol:
            raise ConfigError(
                f"market symbol {symbol!r} is not a {venue.name} symbol (expected {expected!r}); "
                f"build the market with symbol_form=venue.raw_symbol"
            )
