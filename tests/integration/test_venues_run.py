"""`cryptostock run --exchange binance,coinbase,okx` as a user runs it: one process, a simulator per venue,
bars and trades served per venue, metrics per venue, ids kept exactly as each venue sent them, and a gap
injected in a venue's simulator detected and repaired over REST."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.integration.procs import Daemon, base_env, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
VENUES = {"binance": "BTC-USDT", "coinbase": "BTC-USD", "okx": "BTC-USDT"}  # a default symbol of each


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


async def test_three_venues_in_one_process_serve_bars_metrics_exact_ids_and_repair_gaps(run: Run) -> None:
    await run.daemon.wait_ready(timeout=60)
    for venue in VENUES:
        await wait_until(_closed_bars(run, venue), 60, f"closed bars for {venue}\n{run.daemon.output()}")
        assert await run.daemon.metric("trades_received_total", exchange=venue) > 0

    for venue in ("coinbase", "okx"):  # a gap in each: detected, fetched over REST, nothing missing
        raw = VENUES[venue]
        async with httpx.AsyncClient(timeout=5) as client:
            injected = await client.post(
                f"{run.sims[venue]}/admin/faults", json={"skip": 5, "skip_symbol": raw}
            )
        assert injected.status_code == 200, injected.text

        async def repaired(venue: str = venue) -> bool:
            return await run.daemon.metric("trades_backfilled_total", exchange=venue) >= 5

        await wait_until(repaired, 30, f"{venue} gap repaired\n{run.daemon.output()}")
        assert await run.daemon.metric("trade_gaps_total", exchange=venue) >= 1

    for venue, symbol in VENUES.items():
        body = (await _get(f"{run.api}/api/v1/trades", exchange=venue, symbol=symbol, limit="1000")).json()
        trades = body["trades"]
        sequences = sorted(t["sequence"] for t in trades)  # served by time, then receipt: repairs come later
        assert sequences == list(range(sequences[0], sequences[0] + len(sequences))), venue  # none missing
        assert all(t["trade_id"] == str(t["sequence"]) for t in trades), venue  # the venue's id, as sent
        state = (await _get(f"{run.sims[venue]}/admin/state")).json()
        assert state["exchange"] == venue
        coverage = (await _get(f"{run.api}/api/v1/coverage", exchange=venue, symbol=symbol)).json()
        if venue != "binance":
            assert "repaired" in {e["kind"] for e in coverage["events"]}, coverage
    feeds = (await _get(f"{run.api}/api/v1/feeds")).json()["feeds"]
    assert {f["exchange"] for f in feeds} == set(VENUES)
    code, _ = run.daemon.stop()
    assert code == 0, run.daemon.output()
