"""`cryptostock run --replay FILE --speed 0` over a messy market (see replay_oracle): every bar of every
timeframe, the last ones included, equals the independent pandas oracle field by field with exact
decimals, on SQLite and on PostgreSQL, uninterrupted and with SIGKILLs at several points of the replay."""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import httpx
import pandas as pd
import pytest

from tests.conftest import free_port, fresh_pg_database
from tests.integration.procs import Daemon, base_env, wait_until
from tests.integration.replay_oracle import GRACE_MS, TIMEFRAMES, messy_rows, oracle_bars, write_rows

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]
SEED = 11
SYMBOLS = {"BTCUSDT": "BTC-USDT", "ETHUSDT": "ETH-USDT"}
EXACT_FIELDS = ("open", "close", "trade_count", "first_trade_id", "last_trade_id")
DECIMAL_FIELDS = ("high", "low", "volume", "quote_volume", "buy_volume", "sell_volume")


@pytest.fixture(params=["sqlite", "postgres"])
async def database_env(request: pytest.FixtureRequest) -> AsyncIterator[dict[str, str]]:
    if request.param == "sqlite":
        yield {}
        return
    async with fresh_pg_database() as url:
        yield {"DATABASE_URL": url}


class Replay:
    """`cryptostock run --replay` on one data directory (and database), started again after a kill."""

    def __init__(self, tmp_path: Path, csv_path: Path, env: dict[str, str]) -> None:
        self.tmp_path, self.csv_path = tmp_path, csv_path
        self.env = base_env(tmp_path, **env)
        self.api_port = free_port()
        self.runs = 0

    def start(self, speed: str = "0") -> Daemon:
        self.runs += 1
        args = ["run", "--replay", str(self.csv_path), "--speed", speed, "--timeframes", ",".join(TIMEFRAMES)]
        args += ["--grace-seconds", str(GRACE_MS / 1000)]
        args += ["--api-port", str(self.api_port), "--sim-port", str(free_port())]
        args += ["--data-dir", str(self.tmp_path / "data")]
        return Daemon(
            name=f"run-{self.runs}",
            args=args,
            env=self.env,
            log_path=self.tmp_path / f"run-{self.runs}.log",
            metrics_port=free_port(),
        ).start()

    async def bars(self, symbol: str, timeframe: str) -> list[dict] | None:
        """The served bars, or None while the API is not up or does not know the exchange or symbol yet."""
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.api_port}", timeout=10) as client:
                response = await client.get(
                    "/api/v1/bars",
                    params={"symbol": symbol, "timeframe": timeframe, "limit": 5000, "exchange": "binance"},
                )
        except httpx.ConnectError:
            return None
        if response.status_code == 404:  # the processor has not registered the exchange or symbol yet
            return None
        assert response.status_code == 200, response.text
        return response.json()["bars"]


def expected_bars(by_symbol: dict[str, list]) -> dict[tuple[str, str], pd.DataFrame]:
    return {
        (SYMBOLS[raw], timeframe): oracle_bars(rows, timeframe)
        for raw, rows in by_symbol.items()
        for timeframe in TIMEFRAMES
    }


async def wait_for_every_bar(replay: Replay, run: Daemon, expected: dict) -> dict[tuple[str, str], list]:
    """Every expected bar served (the replay's last bars close when it ends); returns them."""
    served: dict[tuple[str, str], list] = {}

    async def complete() -> bool:
        run.assert_running()
        for key, want in expected.items():
            bars = await replay.bars(*key)
            if bars is None or len(bars) < len(want):
                return False
            served[key] = bars
        return True

    counts = {key: len(want) for key, want in expected.items()}
    await wait_until(complete, 120, f"bars {counts}\n{run.output()[-3000:]}", interval=0.5)
    return served


def assert_bars_equal(served: dict[tuple[str, str], list], expected: dict) -> None:
    for key, want in expected.items():
        bars = served[key]
        assert len(bars) == len(want), (key, len(bars), len(want))
        for bar, (bucket, row) in zip(bars, want.iterrows(), strict=True):
            where = (key, bar["open_time"])
            assert pd.Timestamp(bar["open_time"]) == pd.Timestamp(int(bucket), unit="ms", tz="UTC"), where
            for field in EXACT_FIELDS:
                assert bar[field] == row[field], (where, field, bar[field], row[field])
            for field in DECIMAL_FIELDS:
                assert Decimal(bar[field]) == row[field], (where, field, bar[field], row[field])


async def test_replayed_messy_market_equals_the_oracle(tmp_path: Path, database_env: dict[str, str]) -> None:
    by_symbol = messy_rows(SEED)
    csv_path = tmp_path / "messy.csv"
    write_rows(csv_path, by_symbol, SEED)
    expected = expected_bars(by_symbol)
    replay = Replay(tmp_path, csv_path, database_env)
    run = replay.start()
    try:
        await run.wait_ready()
        served = await wait_for_every_bar(replay, run, expected)
        assert await run.metric("late_trades_total") > 0  # the late rows reached the platform
        assert await run.metric("trades_duplicate_total") > 0  # and so did the duplicates
    finally:
        code, _ = run.stop()
    assert code == 0, run.output()[-3000:]
    assert_bars_equal(served, expected)


async def test_sigkills_during_a_replay_change_no_bar(tmp_path: Path, database_env: dict[str, str]) -> None:
    by_symbol = messy_rows(SEED + 1)
    csv_path = tmp_path / "messy.csv"
    rows = write_rows(csv_path, by_symbol, SEED + 1)
    expected = expected_bars(by_symbol)
    replay = Replay(tmp_path, csv_path, database_env)
    stored = 0
    for share in (0.25, 0.6):  # kill at about a quarter and at about 60% of the file, counting all runs
        run = replay.start()
        await run.wait_ready()
        target = share * rows - stored

        async def far_enough(run: Daemon = run, target: float = target) -> bool:
            run.assert_running()
            return await run.metric("trades_processed_total") >= target

        await wait_until(far_enough, 90, f"{target} trades processed\n{run.output()[-3000:]}", interval=0.05)
        stored += int(await run.metric("trades_processed_total"))
        run.kill()
    run = replay.start()
    try:
        await run.wait_ready()
        served = await wait_for_every_bar(replay, run, expected)
    finally:
        code, _ = run.stop()
    assert code == 0, run.output()[-3000:]
    assert_bars_equal(served, expected)


async def test_a_paced_replay_loses_nothing(tmp_path: Path) -> None:
    """At --speed 100 the simulator plays by the file's clock: it starts when the collector has
    subscribed, so the first trades and the first bars are there too."""
    by_symbol = messy_rows(SEED + 2, per_symbol=400, span_ms=10 * 60_000)
    csv_path = tmp_path / "paced.csv"
    write_rows(csv_path, by_symbol, SEED + 2)
    expected = expected_bars(by_symbol)
    replay = Replay(tmp_path, csv_path, {})
    run = replay.start(speed="100")
    try:
        await run.wait_ready()
        served = await wait_for_every_bar(replay, run, expected)
    finally:
        code, _ = run.stop()
    assert code == 0, run.output()[-3000:]
    assert_bars_equal(served, expected)


async def test_the_shipped_sample_replays_into_a_database_of_its_own(tmp_path: Path) -> None:
    """The README's replay: `cryptostock run --replay samples/btc-eth-trades.csv --speed 0` serves every
    bar of the file, the last ones included, from data/replay-btc-eth-trades.db."""
    sample = Path(__file__).resolve().parents[2] / "samples" / "btc-eth-trades.csv"
    by_symbol: dict[str, list] = {}
    with sample.open(newline="") as handle:
        for row in csv.DictReader(handle):
            by_symbol.setdefault(row["symbol"], []).append(
                (int(row["timestamp_ms"]), row["symbol"], int(row["trade_id"]), row["price"],
                 row["quantity"], row["is_buyer_maker"] == "true")
            )  # fmt: skip
    expected = expected_bars(by_symbol)
    replay = Replay(tmp_path, sample, {})
    run = replay.start()
    try:
        await run.wait_ready()
        served = await wait_for_every_bar(replay, run, expected)
    finally:
        code, _ = run.stop()
    assert code == 0, run.output()[-3000:]
    assert_bars_equal(served, expected)
    assert (tmp_path / "data" / "replay-btc-eth-trades.db").is_file()
    assert not (tmp_path / "data" / "simulated.db").exists()
