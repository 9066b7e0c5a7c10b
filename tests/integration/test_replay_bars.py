"""`cryptostock run --replay FILE --speed 0`: bars built through the whole platform (simulator websocket,
collector, bus, processor, embedded store, API) equal bars computed independently with pandas from the
CSV file."""

from __future__ import annotations

import math
from decimal import Decimal
from pathlib import Path

import httpx
import pandas as pd
import pytest

from simulator.csv_market import write_random_walk_csv
from tests.conftest import free_port
from tests.integration.procs import Daemon, base_env, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
TRADES_PER_SYMBOL = 6000


def pandas_bars(csv_path: Path, symbol: str, timeframe: str) -> pd.DataFrame:
    frame = pd.read_csv(csv_path, dtype={"price": str, "quantity": str})
    frame = frame[frame["symbol"] == symbol].sort_values(["timestamp_ms", "trade_id"], kind="stable")
    frame["px"] = frame["price"].astype(float)
    frame["qty"] = frame["quantity"].map(Decimal)
    frame["bucket"] = pd.to_datetime(frame["timestamp_ms"], unit="ms", utc=True).dt.floor(timeframe)
    frame["buy"] = frame["qty"].where(frame["is_buyer_maker"].astype(str).str.lower() == "false", Decimal(0))
    grouped = frame.groupby("bucket")
    bars = pd.DataFrame(
        {
            "open": grouped["price"].first(),
            "close": grouped["price"].last(),
            "high": grouped["px"].max(),
            "low": grouped["px"].min(),
            "volume": grouped["qty"].agg(lambda sizes: sum(sizes, Decimal(0))),
            "buy_volume": grouped["buy"].agg(lambda sizes: sum(sizes, Decimal(0))),
            "trade_count": grouped.size(),
        }
    )
    return bars


def end_on_a_five_minute_boundary(csv_path: Path) -> int:
    """Add a last trade per symbol just before the end of the last 5-minute bucket, so that every bar of
    the replay is due (by its own event clock) within the grace period of the replay's end."""
    frame = pd.read_csv(csv_path)
    last_ms = int(frame["timestamp_ms"].max())
    boundary = (last_ms // 300_000 + 1) * 300_000 - 1
    with csv_path.open("a") as handle:
        for symbol, group in frame.groupby("symbol"):
            handle.write(f"{boundary},{symbol},{int(group['trade_id'].max()) + 1},1.00,0.00100000,true\n")
    return int(frame["symbol"].nunique())


@pytest.mark.parametrize("timeframe", ["1min", "5min"])
async def test_replayed_csv_bars_equal_pandas(tmp_path: Path, timeframe: str) -> None:
    csv_path = tmp_path / "market.csv"
    rows = write_random_walk_csv(csv_path, trades_per_symbol=TRADES_PER_SYMBOL, seed=3)
    rows += end_on_a_five_minute_boundary(csv_path)
    api_port, metrics_port = free_port(), free_port()
    run = Daemon(
        name="run",
        args=[
            "run",
            "--replay",
            str(csv_path),
            "--speed",
            "0",
            "--timeframes",
            "1m,5m",
            "--grace-seconds",
            "0.5",
            "--api-port",
            str(api_port),
            "--sim-port",
            str(free_port()),
            "--data-dir",
            str(tmp_path / "data"),
        ],
        env=base_env(tmp_path),
        log_path=tmp_path / "run.log",
        metrics_port=metrics_port,
    ).start()
    try:
        await run.wait_ready()

        async def all_processed() -> bool:
            run.assert_running()
            return await run.metric("trades_processed_total") >= rows

        await wait_until(all_processed, 90, f"{rows} trades processed\n{run.output()}")
        tf = {"1min": "1m", "5min": "5m"}[timeframe]
        expected = pandas_bars(csv_path, "BTCUSDT", timeframe)

        async def all_bars() -> list[dict]:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}", timeout=10) as client:
                response = await client.get(
                    "/api/v1/bars", params={"symbol": "BTC-USDT", "timeframe": tf, "limit": 5000}
                )
            assert response.status_code == 200, response.text
            return response.json()["bars"]

        async def closed() -> bool:
            return len(await all_bars()) == len(expected)

        await wait_until(closed, 30, f"{len(expected)} {tf} bars\n{run.output()}")
        bars = await all_bars()
        assert await run.metric("late_trades_total") == 0
    finally:
        code, _ = run.stop()
    assert code == 0, run.output()

    for bar, (bucket, want) in zip(bars, expected.iterrows(), strict=True):
        assert pd.Timestamp(bar["open_time"]) == bucket
        assert (bar["open"], bar["close"]) == (want["open"], want["close"])  # exact strings
        assert float(bar["high"]) == want["high"] and float(bar["low"]) == want["low"]
        assert bar["trade_count"] == want["trade_count"]
        assert Decimal(bar["volume"]) == want["volume"]  # exact decimal sums
        assert Decimal(bar["buy_volume"]) == want["buy_volume"]

    # ML features travel with each bar through the store and the API
    closes = [float(bar["close"]) for bar in bars]
    assert bars[0]["features"]["log_return"] is None
    for bar, previous_close, close in zip(bars[1:], closes, closes[1:], strict=False):
        assert bar["features"]["log_return"] == pytest.approx(math.log(close / previous_close), rel=1e-9)
        assert bar["features"]["taker_buy_ratio"] == pytest.approx(
            float(Decimal(bar["buy_volume"]) / Decimal(bar["volume"])), rel=1e-9
        )
