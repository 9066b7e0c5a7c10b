"""REST gap repair and instrument discovery over aiohttp: the collectors' HTTP edge.

aiohttp and timeout errors become `core.errors.ExchangeError` here; HTTP 429/418 become
`RateLimitedError` and further calls are refused locally until `Retry-After` has passed. Every call goes
through a `CircuitBreaker` (component `<exchange>_rest`) so an unreachable exchange is not hammered.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Protocol

import aiohttp

from collectors.adapter import ExchangeAdapter, RestRequest
from collectors.registry import create_adapter
from core.clock import Clock, SystemClock
from core.errors import ExchangeError, RateLimitedError
from core.types import SymbolInfo, Trade
from monitoring.circuit_breaker import CircuitBreaker
from monitoring.metrics import METRICS, PlatformMetrics

DEFAULT_RETRY_AFTER_S = 60.0
_BODY_PREVIEW = 200


class TradeBackfill(Protocol):
    """What the session needs to repair a gap."""

    async def fetch_range(self, raw_symbol: str, first_id: int, last_id: int) -> list[Trade]:
        """Trades with first_id <= id <= last_id, ascending, backfilled=True (may be fewer)."""
        ...


class RestBackfiller:
    """Pages an adapter's backfill request until a gap is covered; also fetches the symbol list.

    One aiohttp `ClientSession` (created on first use, closed by `close()`), a total timeout per request
    (`timeout`, seconds) and at most `max_pages` requests per `fetch_range` call. `adapter` is public so
    that it can be replaced once the symbols are known (see `discover`).
    """

    def __init__(
        self,
        adapter: ExchangeAdapter,
        base_url: str | None = None,
        *,
        metrics: PlatformMetrics = METRICS,
        breaker: CircuitBreaker | None = None,
        timeout: float = 10.0,
        max_pages: int = 100,
        clock: Clock | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.adapter = adapter
        self.base_url = (base_url or adapter.default_rest_url).rstrip("/")
        self.breaker = breaker or CircuitBreaker(
            f"{adapter.name}_rest", failure_exceptions=(ExchangeError,), metrics=metrics, monotonic=monotonic
        )
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_pages = max_pages
        self._clock = clock or SystemClock()
        self._monotonic = monotonic
        self._blocked_until = 0.0
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> RestBackfiller:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def fetch_symbols(self) -> list[SymbolInfo]:
        body = await self.get(self.adapter.symbols_request())
        return self.adapter.parse_symbols(body)

    async def fetch_range(self, raw_symbol: str, first_id: int, last_id: int) -> list[Trade]:
        out: list[Trade] = []
        from_id = first_id
        page_size = self.adapter.limits.backfill_page_size
        for _ in range(self._max_pages):
            body = await self.get(self.adapter.backfill_request(raw_symbol, from_id, page_size))
            rows = self.adapter.parse_backfill(body, raw_symbol, self._clock.now_ns())
            if not rows:
                break
            out.extend(t for t in rows if first_id <= t.trade_id <= last_id)
            newest = rows[-1].trade_id
            if newest >= last_id or newest < from_id:
                break
            from_id = newest + 1
        return out

    async def get(self, request: RestRequest) -> bytes:
        """The body of a successful response; RateLimitedError, ExchangeError or CircuitOpenError."""
        wait = self._blocked_until - self._monotonic()
        if wait > 0:
            raise RateLimitedError(f"{self.adapter.name} REST rate limited for {wait:.1f}s more", wait)
        return await self.breaker.call(self._request, request)

    async def _request(self, request: RestRequest) -> bytes:
        url = f"{self.base_url}{request.path}"
        try:
            async with self._client().request(request.method, url, params=list(request.params)) as resp:
                body = await resp.read()
                self._check_status(resp.status, resp.headers.get("Retry-After"), url, body)
                return body
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise ExchangeError(f"GET {url} failed: {type(exc).__name__}: {exc}") from exc

    def _check_status(self, status: int, retry_after: str | None, url: str, body: bytes) -> None:
        if status in (429, 418):
            seconds = _retry_after_seconds(retry_after)
            self._blocked_until = self._monotonic() + seconds
            raise RateLimitedError(f"HTTP {status} from {url}; retry after {seconds:.0f}s", seconds)
        if status >= 400:
            preview = body[:_BODY_PREVIEW].decode("utf-8", "replace")
            raise ExchangeError(f"HTTP {status} from {url}: {preview}")

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session


def _retry_after_seconds(header: str | None) -> float:
    try:
        seconds = float(header) if header is not None else DEFAULT_RETRY_AFTER_S
    except ValueError:
        return DEFAULT_RETRY_AFTER_S
    return seconds if seconds >= 0 else DEFAULT_RETRY_AFTER_S


async def discover(
    exchange: str,
    rest_base_url: str | None = None,
    *,
    metrics: PlatformMetrics = METRICS,
    timeout: float = 10.0,
    known: Sequence[SymbolInfo] = (),
) -> RestBackfiller:
    """A backfiller whose `.adapter` knows the exchange's instruments, fetched over REST at start-up.

    `known` instruments (e.g. from storage) are used instead of the request when given. The caller owns
    the result: `async with await discover(...) as backfiller:`.
    """
    backfiller = RestBackfiller(create_adapter(exchange), rest_base_url, metrics=metrics, timeout=timeout)
    try:
        symbols = list(known) or await backfiller.fetch_symbols()
    except BaseException:
        await backfiller.close()
        raise
    backfiller.adapter = create_adapter(exchange, symbols)
    return backfiller
