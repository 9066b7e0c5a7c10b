"""A small client of a running API that returns pandas DataFrames (`pip install "cryptostock[client]"`).

    from cryptostock.client import Client
    api = Client("http://127.0.0.1:8000")
    bars = api.bars("BTC-USDT", timeframe="1m", start="2024-01-01", end="2024-01-02")
    bars["close"].plot()
    trades = api.trades("BTC-USDT", limit=1000)

Bars are indexed by `open_time` and trades by `time` (both pandas datetimes in UTC); the exact integer
ms (`open_time_ms`) or ns (`time_ns`) stay as columns. Prices and quantities are float64 for analysis,
or the exchange's exact strings with `exact=True`. Indicator and feature values are columns (NaN until
warm). A range longer than one response is fetched page by page (`page_size` up to the API's
`max_bars_limit`, 5000). Errors raise `ClientError` with the API's own message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from core.errors import PlatformError

try:
    import pandas as pd
except ImportError as exc:  # pragma: no cover - the client extra installs it
    raise ImportError("cryptostock.client needs pandas: pip install 'cryptostock[client]'") from exc

BAR_PRICES = ("open", "high", "low", "close")
TRADE_PRICES = ("price", "quantity")


class ClientError(PlatformError):
    """The API refused a request (`status`, `code` as in its error body) or could not be reached."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class Client:
    """Synchronous; `transport` lets tests or callers supply their own httpx transport."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        timeout: float = 10.0,
        page_size: int = 5000,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(base_url=base_url, timeout=timeout, transport=transport)
        self.page_size = page_size

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _get(self, path: str, params: Mapping[str, Any]) -> Any:
        wanted = {k: v for k, v in params.items() if v is not None}
        try:
            response = self._http.get(path, params=wanted)
        except httpx.HTTPError as exc:
            raise ClientError(f"{path}: {type(exc).__name__}: {exc}") from exc
        if response.status_code != 200:
            error = _error_of(response)
            raise ClientError(error.get("message", response.text[:200]), status=response.status_code,
                              code=error.get("code"))  # fmt: skip
        return response.json()

    def symbols(self) -> pd.DataFrame:
        return pd.DataFrame(self._get("/api/v1/symbols", {})["symbols"])

    def feeds(self) -> pd.DataFrame:
        """Each symbol's feed state as its collector last reported it (see /api/v1/feeds)."""
        return pd.DataFrame(self._get("/api/v1/feeds", {})["feeds"])

    def bars(
        self,
        symbol: str,
        *,
        exchange: str | None = None,
        timeframe: str = "1m",
        start: str | int | None = None,
        end: str | int | None = None,
        limit: int | None = None,
        indicators: bool = True,
        exact: bool = False,
    ) -> pd.DataFrame:
        """Closed bars with open_time in [start, end) (ISO-8601 or epoch ms), oldest first: every one in
        the range, or the most recent `limit`."""
        params = {"symbol": symbol, "exchange": exchange, "timeframe": timeframe, "start": start,
                  "indicators": str(indicators).lower()}  # fmt: skip
        pages: list[list[dict[str, Any]]] = []
        remaining = limit
        while remaining is None or remaining > 0:
            size = self.page_size if remaining is None else min(remaining, self.page_size)
            bars = self._get("/api/v1/bars", {**params, "end": end, "limit": size})["bars"]
            pages.insert(0, bars)
            remaining = None if remaining is None else remaining - len(bars)
            if len(bars) < size:
                break
            end = bars[0]["open_time_ms"]  # the next page ends where this one began
        return _bars_frame([bar for page in pages for bar in page], exact)

    def trades(
        self, symbol: str, *, exchange: str | None = None, limit: int = 1000, exact: bool = False
    ) -> pd.DataFrame:
        """The most recent `limit` trades (the API serves up to max_trades_limit, 1000), oldest first."""
        body = self._get("/api/v1/trades", {"symbol": symbol, "exchange": exchange, "limit": limit})
        frame = pd.DataFrame(body["trades"], columns=list(_TRADE_COLUMNS))
        frame.insert(0, "exchange", body["exchange"])
        frame.insert(1, "symbol", body["symbol"])
        frame["time"] = pd.to_datetime(frame["time_ns"], unit="ns", utc=True)
        return _numeric(frame, TRADE_PRICES, exact).set_index("time")


_TRADE_COLUMNS = (
    "trade_id",
    "sequence",
    "price",
    "quantity",
    "side",
    "time",
    "time_ms",
    "time_ns",
    "backfilled",
)


def _error_of(response: httpx.Response) -> dict[str, Any]:
    try:
        error = response.json().get("error")
    except ValueError:
        return {}
    return error if isinstance(error, dict) else {}


def _bars_frame(bars: list[dict[str, Any]], exact: bool) -> pd.DataFrame:
    rows = []
    for bar in bars:
        row = {k: v for k, v in bar.items() if k not in ("indicators", "features")}
        row.update(bar.get("indicators") or {})
        row.update(bar.get("features") or {})
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    for column in ("open_time", "close_time"):
        frame[column] = pd.to_datetime(frame[f"{column}_ms"] * 1_000_000, unit="ns", utc=True)
    return _numeric(frame, BAR_PRICES, exact).set_index("open_time")


def _numeric(frame: pd.DataFrame, columns: tuple[str, ...], exact: bool) -> pd.DataFrame:
    if not exact:
        for column in columns:
            frame[column] = pd.to_numeric(frame[column])
    return frame
