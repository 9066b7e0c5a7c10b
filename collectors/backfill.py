"""REST gap repair and instrument discovery over aiohttp: the collectors' HTTP edge.

The adapter owns the conversation (which request comes next, what a page holds, what an answer means);
this module only executes it: aiohttp and timeout errors become `core.errors.ExchangeError`, an answer the
adapter classifies as rate limited or banned becomes `RateLimitedError` and further calls are refused
locally until its retry time has passed, and every call goes through a `CircuitBreaker` (component
`<exchange>_rest`) so an unreachable venue is not hammered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import aiohttp

from collectors.adapter import ExchangeAdapter, Gap, RestRequest, RestVerdict, by_sequence
from collectors.klines import minute_windows
from collectors.registry import create_adapter
from core.clock import Clock, SystemClock, receive_time_ns
from core.errors import ConfigError, ExchangeError, RateLimitedError
from core.types import Candle, SymbolInfo, Trade
from monitoring.circuit_breaker import CircuitBreaker
from monitoring.metrics import METRICS, PlatformMetrics


class TradeBackfill(Protocol):
    """What the session needs to repair a gap, or to look back after an outage."""

    async def fetch_gap(self, gap: Gap) -> list[Trade]:
        """Trades of `gap` the venue still has, in ascending sequence (backfilled=True; may be fewer than
        missing, or none)."""
        ...

    async def fetch_recent(self, raw_symbol: str) -> list[Trade] | None:
        """The latest trades REST serves for the symbol, oldest first (None: the venue serves none)."""
        ...


class RestBackfiller:
    """Runs an adapter's repair requests page by page until the adapter says the gap is covered; also
    fetches the symbol list.

    One aiohttp `ClientSession` (created on first use, closed by `close()`), a total timeout per request
    (`timeout`, seconds) and at most `max_pages` requests per `fetch_gap` call. `adapter` is public so
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

    async def fetch_gap(self, gap: Gap) -> list[Trade]:
        out: list[Trade] = []
        adapter = self.adapter
        request = adapter.repair_request(gap)
        pages = 0
        while request is not None and pages < self._max_pages:
            body = await self.get(request)
            page = adapter.repair_page(gap, request, body, receive_time_ns(self._clock))
            out.extend(page.trades)
            request = page.next
            pages += 1
        # Venues that page newest first (Coinbase, OKX) hand later pages of older trades: published in
        # page order, those would come after newer ones and miss bars that the newer ones closed.
        out.sort(key=by_sequence)
        return out

    async def fetch_recent(self, raw_symbol: str) -> list[Trade] | None:
        request = self.adapter.recent_request(raw_symbol)
        if request is None:
            return None
        body = await self.get(request)
        return self.adapter.parse_recent(raw_symbol, body, receive_time_ns(self._clock))

    async def fetch_klines(
        self, raw_symbol: str, start_ns: int, end_ns: int, *, max_wait_s: float = 60.0
    ) -> list[Candle]:
        """The venue's 1m candles opening in [start_ns, end_ns), oldest first, one request per window of
        `capabilities.klines.page_minutes`. A rate-limited answer is waited out (its retry time, at most
        `max_wait_s` seconds in all) and the request repeated; ConfigError where the venue has none."""
        support = self.adapter.capabilities.klines
        if not support.available:
            raise ConfigError(f"{self.adapter.name}: {support.reason}")
        out: list[Candle] = []
        waited = 0.0
        for start, end in minute_windows(start_ns, end_ns, support.page_minutes):
            request = self.adapter.klines_request(raw_symbol, start, end)
            if request is None:
                raise ConfigError(f"{self.adapter.name}: {support.reason or 'no klines request'}")
            while True:
                try:
                    body = await self.get(request)
                    break
                except RateLimitedError as exc:
                    if waited + exc.retry_after > max_wait_s:
                        raise
                    waited += exc.retry_after
                    await asyncio.sleep(exc.retry_after)
            out.extend(c for c in self.adapter.parse_klines(raw_symbol, body) if start <= c.open_time < end)
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
                self._check_answer(resp.status, resp.headers, url, body)
                return body
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise ExchangeError(f"GET {url} failed: {type(exc).__name__}: {exc}") from exc

    def _check_answer(self, status: int, headers: Mapping[str, str], url: str, body: bytes) -> None:
        answer = self.adapter.classify_response(status, headers, body)
        if answer.verdict is RestVerdict.OK:
            return
        if answer.verdict in (RestVerdict.RATE_LIMITED, RestVerdict.BANNED):
            seconds = answer.retry_after_s
            self._blocked_until = self._monotonic() + seconds
            raise RateLimitedError(
                f"{answer.verdict.value} by {url} ({answer.detail}); retry after {seconds:.0f}s", seconds
            )
        raise ExchangeError(f"{url}: {answer.detail}")

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session


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
