"""`cryptostock run --exchange binance,coinbase,okx,kraken,bybit` as a user runs it: one process, a simulator
per venue, bars and trades served per venue, metrics per venue, ids and prices kept exactly as each venue
sent them, a gap injected in a sequenced venue's simulator detected and repaired over REST (Kraken's forward
by time), and a Bybit outage longer than its REST reaches recorded as an unverified interval, served and
metered, with no trade invented."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port
from tests.integration.procs import Daemon, base_env, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
# a default symbol of each, canonical, and as the venue spells it
VENUES = {
    "binance": "BTC-USDT",
    "coinbase": "BTC-USD",
    "okx": "BTC-USDT",
    "kraken": "BTC-USD",
    "bybit": "BTC-USDT",
}
RAW = {
    "binance": "BTCUSDT",
    "coinbase": "BTC-USD",
    "okx": "BTC-USDT",
    "kraken": "BTC/USD",
    "bybit": "BTCUSDT",
}
SEQUENCED = ("binance", "coinbase", "okx", "kraken")
OUTAGE_S = 2.5  # at 75 trades/s per symbol, some 190 trades: more than Bybit's REST serves (60)


class Run:
    def __init__(self, daemon: Daemon, api_port: int, sim_port: int) -> None:
        self.daemon, self.api = daemon, f"http://127.0.0.1:{api_port}"
        self.sims = {venue: f"http://127.0.0.1:{sim_port + i}" for i, venue in enumerate(VENUES)}


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Run]:
    api_port, sim_port = free_port(), free_port()
    while any(_busy(sim_port + i) for i in range(1, len(VENUES))):
        sim_port = free_port()
    daemon = Daemon(
        name="run",
        args=["run", "--exchange", ",".join(VENUES), "--timeframes", "1s,5s", "--grace-seconds", "0.3",
              "--tps", "150", "--api-port", str(api_port), "--sim-port", str(sim_port)],
        env=base_env(tmp_path),
        log_path=tmp_path / "run.log",
        metrics_port=free_port(),
    ).start()  # fmt: skip
    try:
        yield Run(daemon, api_port, sim_port)
    finally:
        daemon.stop()


def _busy(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


async def _get(url: str, **params: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5) as client:
        return await client.get(url, params=params)


def _closed_bars(run: Run, venue: str) -> Callable[[], object]:
    async def check() -> bool:
        try:
            response = await _get(
                f"{run.api}/api/v1/bars", exchange=venue, symbol=VENUES[venue], timeframe="1s"
            )
        except httpx.HTTPError:
            return False
        return response.status_code == 200 and response.json()["count"] >= 2

    return check


async def _inject(run: Run, venue: str, faults: dict[str, object]) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        injected = await client.post(f"{run.sims[venue]}/admin/faults", json=faults)
    assert injected.status_code == 200, injected.text


async def _stored(run: Run, venue: str) -> list[dict[str, Any]]:
    body = (await _get(f"{run.api}/api/v1/trades", exchange=venue, symbol=VENUES[venue], limit="1000")).json()
    trades: list[dict[str, Any]] = body["trades"]
    return trades


async def _rest_prices(run: Run, venue: str) -> dict[str, tuple[str, str]]:
    """id -> (price, size) of the latest trades the venue's REST serves, as its text."""
    if venue == "kraken":
        result = (await _get(f"{run.sims[venue]}/0/public/Trades", pair=RAW[venue])).json()["result"]
        [rows] = [value for key, value in result.items() if key != "last"]
        return {str(row[6]): (row[0], row[1]) for row in rows}
    rows = (
        await _get(f"{run.sims[venue]}/v5/market/recent-trade", category="spot", symbol=RAW[venue])
    ).json()["result"]["list"]
    return {row["execId"]: (row["price"], row["size"]) for row in rows}


async def test_five_venues_in_one_process_serve_bars_metrics_exact_ids_and_repair_gaps(run: Run) -> None:
    await run.daemon.wait_ready(timeout=60)
    for venue in VENUES:
        await wait_until(_closed_bars(run, venue), 60, f"closed bars for {venue}\n{run.daemon.output()}")
        assert await run.daemon.metric("trades_received_total", exchange=venue) > 0

    for venue in ("coinbase", "okx", "kraken"):  # a gap in each: detected, fetched over REST, nothing missing
        await _inject(run, venue, {"skip": 5, "skip_symbol": VENUES[venue]})

        async def repaired(venue: str = venue) -> bool:
            return await run.daemon.metric("trades_backfilled_total", exchange=venue) >= 5

        await wait_until(repaired, 30, f"{venue} gap repaired\n{run.daemon.output()}")
        assert await run.daemon.metric("trade_gaps_total", exchange=venue) >= 1

    for venue in SEQUENCED:
        trades = await _stored(run, venue)
        sequences = sorted(t["sequence"] for t in trades)  # served by time, then receipt: repairs come later
        assert sequences == list(range(sequences[0], sequences[0] + len(sequences))), venue  # none missing
        assert all(t["trade_id"] == str(t["sequence"]) for t in trades), venue  # the venue's id, as sent
        state = (await _get(f"{run.sims[venue]}/admin/state")).json()
        assert state["exchange"] == venue
        coverage = (await _get(f"{run.api}/api/v1/coverage", exchange=venue, symbol=VENUES[venue])).json()
        if venue != "binance":
            assert "repaired" in {e["kind"] for e in coverage["events"]}, coverage
    served = await _rest_prices(run, "kraken")  # JSON-number prices kept as the digits sent
    exact = [t for t in await _stored(run, "kraken") if t["trade_id"] in served]
    assert exact and all((t["price"], t["quantity"]) == served[t["trade_id"]] for t in exact)
    feeds = (await _get(f"{run.api}/api/v1/feeds")).json()["feeds"]
    assert {f["exchange"] for f in feeds} == set(VENUES)
    await _bybit_outage_beyond_rest_is_unverified(run)
    code, _ = run.daemon.stop()
    assert code == 0, run.daemon.output()


async def _bybit_outage_beyond_rest_is_unverified(run: Run) -> None:
    """Bybit has no sequence and REST serves its latest 60 trades: an outage during which more happened
    leaves an unverified interval (stored, served, metered), the trades REST still had go in, and nothing
    else is made up."""
    before = {t["trade_id"] for t in await _stored(run, "bybit")}
    await _inject(run, "bybit", {"outage": OUTAGE_S})

    async def recorded() -> bool:
        return await run.daemon.metric("coverage_events_total", exchange="bybit", kind="unverified") >= 1

    await wait_until(recorded, 30, f"bybit unverified interval\n{run.daemon.output()}")
    assert await run.daemon.metric("unverified_seconds_total", exchange="bybit") > 0
    coverage = (await _get(f"{run.api}/api/v1/coverage", exchange="bybit", symbol=VENUES["bybit"])).json()
    unverified = max(  # the outage's (a reconnect under load may have recorded a short one too)
        (e for e in coverage["events"] if e["kind"] == "unverified"),
        key=lambda e: e["end_ns"] - e["start_ns"],
    )
    assert 0 < unverified["start_ns"] < unverified["end_ns"], unverified
    assert unverified["end_ns"] - unverified["start_ns"] >= 1e9, unverified  # most of the outage
    trades = await _stored(run, "bybit")
    state = (await _get(f"{run.sims['bybit']}/admin/state")).json()["symbols"][RAW["bybit"]]
    ids = [int(t["trade_id"]) for t in trades]
    assert len(ids) == len(set(ids)) and max(ids) <= state["last_trade_id"]  # no duplicate, no invented id
    assert all(t["sequence"] is None for t in trades)
    inside = [t for t in trades if unverified["start_ns"] < t["time_ns"] < unverified["end_ns"]]
    assert len(inside) <= 60  # only what REST still served: the rest of the interval is a hole, admitted
    assert before < {t["trade_id"] for t in trades} | before  # trades went on after the outage
    served = await _rest_prices(run, "bybit")
    exact = [t for t in trades if t["trade_id"] in served]
    assert exact and all((t["price"], t["quantity"]) == served[t["trade_id"]] for t in exact)


@pytest.mark.parametrize("venue", ["kraken", "bybit"])
async def test_one_new_venue_alone_runs_offline(venue: str, tmp_path: Path) -> None:
    """`cryptostock run --exchange kraken` (or bybit): its simulator on --sim-port, closed bars served."""
    api_port, sim_port = free_port(), free_port()
    daemon = Daemon(
        name=f"run-{venue}",
        args=["run", "--exchange", venue, "--timeframes", "1s", "--grace-seconds", "0.3", "--tps", "50",
              "--api-port", str(api_port), "--sim-port", str(sim_port)],
        env=base_env(tmp_path),
        log_path=tmp_path / "run.log",
        metrics_port=free_port(),
    ).start()  # fmt: skip
    try:
        await daemon.wait_ready(timeout=60)
        run = Run(daemon, api_port, sim_port)
        await wait_until(_closed_bars(run, venue), 60, f"closed bars for {venue}\n{daemon.output()}")
        state = (await _get(f"http://127.0.0.1:{sim_port}/admin/state")).json()
        assert state["exchange"] == venue and state["connections"] >= 1
        assert await daemon.metric("trades_received_total", exchange=venue) > 0
        assert (
            await daemon.metric("collector_errors_total", exchange=venue, error_type="unexpected_schema") == 0
        )
    finally:
        code, _ = daemon.stop()
    assert code == 0, daemon.output()
