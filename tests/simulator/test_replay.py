"""Replayed markets: exact rows at speed 0, pacing at speed > 0, waiting for clients, bad rows."""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path

import pytest

from core.errors import ConfigError
from simulator.markets import ReplayMarket
from tests.simulator.conftest import StartSim, write_csv, ws_connect

ODD_STRINGS = [("16543.21", "0.0015"), ("0.00000001", "12"), ("100", "1.50000000"), ("7.1E-5", "3.300")]


def replay_rows(count: int, start_ms: int = 1_700_000_000_000, step_ms: int = 7) -> list[list[object]]:
    rows: list[list[object]] = []
    for i in range(count):
        symbol = "BTCUSDT" if i % 3 else "ETHUSDT"
        price, qty = ODD_STRINGS[i % len(ODD_STRINGS)]
        rows.append([start_ms + i * step_ms, symbol, 5000 + i, price, qty, "true" if i % 2 else "false"])
    return rows


async def wait_for(predicate: object, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0.01)


async def test_speed_0_delivers_exactly_the_csv_rows(start_sim: StartSim, tmp_path: Path) -> None:
    rows = replay_rows(3000)
    sim = await start_sim(ReplayMarket(write_csv(tmp_path / "r.csv", rows), speed=0))
    await asyncio.sleep(0.1)
    assert sim.history("BTCUSDT") == [] and not sim.finished  # nobody subscribed: the replay waits
    async with ws_connect(f"{sim.ws_url}/stream?streams=btcusdt@trade/ethusdt@trade") as ws:
        received = [json.loads(await asyncio.wait_for(ws.recv(), 5))["data"] for _ in range(len(rows))]
    for row, event in zip(rows, received, strict=True):
        ts, symbol, trade_id, price, qty, maker = row
        assert (event["s"], event["t"], event["p"], event["q"]) == (symbol, trade_id, price, qty)
        assert event["T"] == event["E"] == ts and event["m"] is (maker == "true")
    await wait_for(lambda: sim.finished)
    assert sim.state()["symbols"]["BTCUSDT"]["last_trade_id"] == rows[-1][2]
    assert [t.price for t in sim.history("ETHUSDT")] == [r[3] for r in rows if r[1] == "ETHUSDT"]


async def test_speed_0_waits_for_a_slow_client(start_sim: StartSim, tmp_path: Path) -> None:
    sim = await start_sim(
        ReplayMarket(write_csv(tmp_path / "r.csv", replay_rows(200_000, step_ms=1)), speed=0)
    )
    async with ws_connect(f"{sim.ws_url}/ws/btcusdt@trade", max_queue=4, close_timeout=0.2) as ws:
        await ws.recv()
        await asyncio.sleep(0.3)  # not reading: production must stop well short of the whole file
        produced = sum(len(sim.history(s)) for s in ("BTCUSDT", "ETHUSDT"))
        assert produced < 150_000 and not sim.finished


async def test_speed_multiplier_scales_the_gaps(start_sim: StartSim, tmp_path: Path) -> None:
    start = 1_700_000_000_000
    rows = [[start, "BTCUSDT", 1, "1.0", "1.0", "true"]]
    rows += [[start + 1000 + i * 100, "BTCUSDT", 2 + i, "1.0", "1.0", "true"] for i in range(11)]
    sim = await start_sim(ReplayMarket(write_csv(tmp_path / "r.csv", rows), speed=2.0))
    loop = asyncio.get_running_loop()
    arrivals: dict[int, float] = {}
    async with ws_connect(f"{sim.ws_url}/ws/btcusdt@trade") as ws:
        while len(arrivals) < 12:  # every trade, the first too: the replay started when we subscribed
            event = json.loads(await asyncio.wait_for(ws.recv(), 5))
            arrivals[event["t"]] = loop.time()
    span = arrivals[12] - arrivals[2]  # 1000 ms of file time at speed 2
    assert 0.4 <= span <= 1.0
    await wait_for(lambda: sim.finished)


async def test_bad_rows_are_skipped_and_counted(start_sim: StartSim, tmp_path: Path) -> None:
    rows = [
        [1_700_000_000_000, "BTCUSDT", 10, "1.0", "2.0", "false"],
        ["soon", "BTCUSDT", 11, "1.0", "2.0", "false"],
        [1_700_000_000_002, "BTCUSDT", 12, '1"0', "2.0", "false"],
        [1_700_000_000_003, "BTCUSDT", 13, "1.0", "2.0", "maybe"],
        [1_700_000_000_004, "BTCUSDT", 14, "1.0", "2.0"],
        [1_700_000_000_005, "btcusdt", 15, "3.0", "4.0", "1"],
    ]
    market = ReplayMarket(write_csv(tmp_path / "r.csv", rows), speed=1e9)
    sim = await start_sim(market)
    async with ws_connect(f"{sim.ws_url}/ws/btcusdt@trade"):
        await wait_for(lambda: sim.finished)
    assert [(t.trade_id, t.price, t.is_buyer_maker) for t in sim.history("BTCUSDT")] == [
        (10, "1.0", False),
        (15, "3.0", True),
    ]
    assert market.skipped_rows == 4


async def test_every_row_is_played_in_file_order_duplicates_and_late_rows_too(
    start_sim: StartSim, tmp_path: Path
) -> None:
    rows = [
        [1_700_000_000_000, "BTCUSDT", 10, "1.0", "2.0", "false"],
        [1_700_000_000_005, "BTCUSDT", 12, "1.2", "2.0", "false"],
        [1_700_000_000_005, "BTCUSDT", 12, "1.2", "2.0", "false"],  # a duplicate row
        [1_700_000_000_001, "BTCUSDT", 11, "1.1", "2.0", "true"],  # a late row, below the newest id
        [1_700_000_000_009, "BTCUSDT", 13, "1.3", "2.0", "false"],
    ]
    sim = await start_sim(ReplayMarket(write_csv(tmp_path / "r.csv", rows), speed=0))
    async with ws_connect(f"{sim.ws_url}/ws/btcusdt@trade") as ws:
        events = [json.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in rows]
    assert [(e["t"], e["T"]) for e in events] == [(r[2], r[0]) for r in rows]
    # REST serves each id once, in id order
    assert [(t.trade_id, t.price) for t in sim.history("BTCUSDT")] == [
        (10, "1.0"),
        (11, "1.1"),
        (12, "1.2"),
        (13, "1.3"),
    ]


async def test_a_paced_replay_starts_when_a_client_has_subscribed(
    start_sim: StartSim, tmp_path: Path
) -> None:
    start = 1_700_000_000_000
    rows = [[start + i * 10, "BTCUSDT", 1 + i, "1.0", "1.0", "true"] for i in range(20)]
    sim = await start_sim(ReplayMarket(write_csv(tmp_path / "r.csv", rows), speed=1.0))
    await asyncio.sleep(0.5)  # longer than the whole file at speed 1 (190 ms)
    assert sim.history("BTCUSDT") == [] and not sim.finished
    async with ws_connect(f"{sim.ws_url}/ws/btcusdt@trade") as ws:
        events = [json.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in rows]
    assert [e["t"] for e in events] == [r[2] for r in rows]  # the first trade is not lost


async def test_a_resumed_replay_sends_only_the_rows_after_the_collected_one(
    start_sim: StartSim, tmp_path: Path
) -> None:
    rows = [
        [1_700_000_000_000, "BTCUSDT", 1, "1.0", "1.0", "true"],
        [1_700_000_000_001, "ETHUSDT", 7, "5.0", "1.0", "true"],
        [1_700_000_000_002, "BTCUSDT", 3, "1.0", "1.0", "true"],
        [1_700_000_000_003, "BTCUSDT", 2, "1.0", "1.0", "true"],  # late, after the resume row: played
        [1_700_000_000_004, "ETHUSDT", 8, "5.0", "1.0", "true"],
        [1_700_000_000_005, "BTCUSDT", 4, "1.0", "1.0", "true"],
    ]
    market = ReplayMarket(write_csv(tmp_path / "r.csv", rows), speed=0, resume_after={"btc-usdt": 3})
    sim = await start_sim(market)
    async with ws_connect(f"{sim.ws_url}/stream?streams=btcusdt@trade/ethusdt@trade") as ws:
        events = [json.loads(await asyncio.wait_for(ws.recv(), 5))["data"] for _ in range(4)]
    assert [(e["s"], e["t"]) for e in events] == [
        ("ETHUSDT", 7),
        ("BTCUSDT", 2),
        ("ETHUSDT", 8),
        ("BTCUSDT", 4),
    ]
    assert [t.trade_id for t in sim.history("BTCUSDT")] == [1, 2, 3, 4]  # REST still serves the past
    assert market.resumed_rows == 2


def test_header_and_speed_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        ReplayMarket(write_csv(tmp_path / "a.csv", [], header=["ts", "symbol"]))
    with pytest.raises(ConfigError):
        ReplayMarket(write_csv(tmp_path / "b.csv", replay_rows(3)), speed=-1)
    with pytest.raises(ConfigError):
        ReplayMarket(tmp_path / "missing.csv")
    assert ReplayMarket(write_csv(tmp_path / "c.csv", replay_rows(3))).symbols == ("ETHUSDT", "BTCUSDT")


async def test_symbols_spelled_otherwise_and_frames_over_64_kib_are_replayed(
    start_sim: StartSim, tmp_path: Path
) -> None:
    huge = "1" * 70_000  # a frame beyond the 16-bit websocket length: the 64-bit header form
    rows = [
        [1_700_000_000_000, "btc-usdt", 1, "100.5", "0.1", "true"],
        [1_700_000_000_001, "BTC/USDT", 2, "100.6", "0.2", "false"],
        [1_700_000_000_002, "BTCUSDT", 3, huge, "0.3", "false"],
        [1_700_000_000_003, "btcusdt", 4, "100.7", "0.4", "true"],
    ]
    sim = await start_sim(ReplayMarket(write_csv(tmp_path / "r.csv", rows), speed=0))
    async with ws_connect(f"{sim.ws_url}/ws/btcusdt@trade") as ws:
        events = [json.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in rows]
    assert [(e["s"], e["t"]) for e in events] == [("BTCUSDT", i) for i in (1, 2, 3, 4)]
    assert events[2]["p"] == huge


def _binance_file(path: Path, rows: list[list[object]], header: list[str] | None) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        if header is not None:
            writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.mark.parametrize("with_header", [False, True])
async def test_binance_public_trade_files_are_replayed(
    start_sim: StartSim, tmp_path: Path, with_header: bool
) -> None:
    """data.binance.vision's trades (id, price, qty, quote_qty, time, is_buyer_maker, is_best_match) and
    aggTrades files, with or without a header, times in ms or (spot since 2025) microseconds; the symbol
    comes from the file name."""
    trades = _binance_file(
        tmp_path / "BTCUSDT-trades-2024-01-01.csv",
        [
            [1001, "42283.58000000", "0.00100000", "42.28358000", 1704067200005, "True", "True"],
            [1002, "42283.59000000", "0.00200000", "84.56718000", 1704067200007123, "False", "True"],
        ],
        ["id", "price", "qty", "quote_qty", "time", "is_buyer_maker", "is_best_match"]
        if with_header
        else None,
    )
    aggs = _binance_file(
        tmp_path / "ETHUSDT-aggTrades-2024-01-01.csv",
        [[55, "2281.20", "0.5000", 90, 91, 1704067200009, "false", "true"]],
        ["agg_trade_id", "price", "quantity", "first_trade_id", "last_trade_id", "transact_time",
         "is_buyer_maker", "is_best_match"] if with_header else None,
    )  # fmt: skip
    for path, stream, count in ((trades, "btcusdt@trade", 2), (aggs, "ethusdt@trade", 1)):
        market = ReplayMarket(path, speed=0)
        sim = await start_sim(market)
        async with ws_connect(f"{sim.ws_url}/ws/{stream}") as ws:
            events = [json.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in range(count)]
        assert market.skipped_rows == 0
        if count == 2:
            assert [(e["s"], e["t"], e["p"], e["q"], e["T"], e["m"]) for e in events] == [
                ("BTCUSDT", 1001, "42283.58000000", "0.00100000", 1704067200005, True),
                ("BTCUSDT", 1002, "42283.59000000", "0.00200000", 1704067200007, False),
            ]
        else:
            assert [(e["s"], e["t"], e["p"], e["q"], e["T"], e["m"]) for e in events] == [
                ("ETHUSDT", 55, "2281.20", "0.5000", 1704067200009, False)
            ]


def test_an_unknown_file_says_what_is_accepted(tmp_path: Path) -> None:
    path = _binance_file(tmp_path / "whatever.csv", [[1, "2.0", "3.0", "6.0", 1704067200000, "true"]], None)
    with pytest.raises(ConfigError, match=r"SYMBOL-trades-DATE\.csv"):
        ReplayMarket(path)


def test_the_shipped_sample_is_a_valid_replay() -> None:
    sample = Path(__file__).resolve().parents[2] / "samples" / "btc-eth-trades.csv"
    market = ReplayMarket(sample, speed=0)
    assert market.symbols == ("BTCUSDT", "ETHUSDT")
    assert sum(1 for _ in market.trades()) == 3000 and market.skipped_rows == 0
