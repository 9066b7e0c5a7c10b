"""The platform as separate real processes (simulator, collector, processor, API) over real sockets, with
PostgreSQL and Redis: faults end with no trade id missing, a killed processor loses and double-counts
nothing, SIGTERM flushes."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Callable

import asyncpg
import httpx
import pytest
import websockets

from tests.integration.conftest import Platform
from tests.integration.procs import Daemon, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
SYMBOLS = ("BTCUSDT", "ETHUSDT")


async def fetch(pg_url: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(pg_url)
    try:
        if not await conn.fetchval("SELECT to_regclass('trades') IS NOT NULL"):
            return []
        return await conn.fetch(sql)
    finally:
        await conn.close()


async def stored_ids(pg_url: str) -> dict[str, list[int]]:
    ids: dict[str, list[int]] = {}
    for row in await fetch(pg_url, "SELECT raw_symbol, sequence FROM trades ORDER BY raw_symbol, sequence"):
        ids.setdefault(row["raw_symbol"], []).append(row["sequence"])
    return ids


async def trade_count(pg_url: str) -> int:
    rows = await fetch(pg_url, "SELECT count(*) AS n FROM trades")
    return int(rows[0]["n"]) if rows else 0


async def inject(platform: Platform, **fault: object) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.post(f"{platform.sim_url}/admin/faults", json=fault)
        assert response.status_code == 200, response.text


def assert_contiguous(ids: dict[str, list[int]]) -> None:
    """Every id between the first and the last stored is stored exactly once."""
    for symbol in SYMBOLS:
        got = ids.get(symbol, [])
        assert got, f"no trades stored for {symbol}"
        missing = sorted(set(range(got[0], got[-1] + 1)) - set(got))
        assert not missing, f"{symbol}: {len(missing)} ids missing, first {missing[:10]}"
        assert len(got) == len(set(got)), f"{symbol}: a trade stored twice"


async def metric_at_least(daemon: Daemon, name: str, value: float, **labels: str) -> bool:
    daemon.assert_running()
    return await daemon.metric(name, **labels) >= value


async def wait_metric(daemon: Daemon, name: str, value: float, timeout: float = 20, **labels: str) -> None:
    await wait_until(lambda: metric_at_least(daemon, name, value, **labels), timeout, f"{name} >= {value}")


async def wait_stored(pg_url: str, expected: float, timeout: float = 45) -> int:
    """The stored trade count once it reaches `expected` (every trade the collector received), then
    half a second later to show nothing more (no duplicate) arrives."""

    async def reached() -> bool:
        return await trade_count(pg_url) >= expected

    try:
        await wait_until(reached, timeout, f"{expected:.0f} stored trades")
    except AssertionError:
        return await trade_count(pg_url)
    await asyncio.sleep(0.5)
    return await trade_count(pg_url)


async def start_pipeline(platform: Platform, *collector_args: str) -> tuple[Daemon, Daemon, Daemon]:
    simulator = platform.simulator(tps=200)
    await simulator.wait_ready()
    processor = platform.processor()
    collector = platform.collector(*collector_args)
    await processor.wait_ready()
    await collector.wait_ready()
    await wait_until(lambda: _has_trades(platform.pg_url), 30, "first stored trades")
    return simulator, collector, processor


async def _has_trades(pg_url: str) -> bool:
    return await trade_count(pg_url) > 0


async def stop_source_then_collector(simulator: Daemon, collector: Daemon) -> float:
    """Stop the exchange, let the collector settle, read what it received, then SIGTERM it (must exit 0)."""
    assert (await asyncio.to_thread(simulator.stop))[0] == 0
    await asyncio.sleep(1.0)
    received = await collector.metric("trades_received_total")
    code, took = await asyncio.to_thread(collector.stop)  # the event loop keeps serving test proxies
    assert code == 0, collector.output()
    assert took < 8, f"collector took {took:.1f}s to stop"
    return received


async def test_drop_stall_skip_and_malformed_end_with_no_trade_missing(
    platform: Platform, dump_logs: Callable[[], str]
) -> None:
    simulator, collector, processor = await start_pipeline(platform, "--stale-timeout", "1.5")

    # Each fault in turn, waiting for its own effect: a rise from what the metric showed before the fault
    # (the drop's reconnection already backfills a gap), and after the stall for trades to flow again
    # (frames queued for a stalled connection die with it).
    await inject(platform, drop=True)
    await wait_metric(collector, "websocket_reconnections_total", 1)
    await inject(platform, stall=4.0)
    await wait_metric(collector, "websocket_reconnections_total", 2)
    await wait_metric(collector, "trades_received_total", await collector.metric("trades_received_total") + 1)
    gaps, backfilled = (
        await collector.metric("trade_gaps_total"),
        await collector.metric("trades_backfilled_total"),
    )
    await inject(platform, skip=7)
    await wait_metric(collector, "trades_backfilled_total", backfilled + 7)
    assert await collector.metric("trade_gaps_total") > gaps
    errors = await collector.metric("collector_errors_total")
    await inject(platform, malformed=12)
    await wait_metric(collector, "collector_errors_total", errors + 5)
    await asyncio.sleep(0.5)

    received = await stop_source_then_collector(simulator, collector)
    stored = await wait_stored(platform.pg_url, received)
    assert stored == received, dump_logs()
    assert_contiguous(await stored_ids(platform.pg_url))
    assert await processor.metric("bars_completed_total") > 0
    assert await processor.metric("db_queries_total", operation="insert_trades", status="ok") > 0
    code, took = processor.stop()
    assert code == 0 and took < 8, dump_logs()


async def test_killed_processor_restarts_without_losing_or_double_counting(
    platform: Platform, dump_logs: Callable[[], str]
) -> None:
    simulator, collector, processor = await start_pipeline(platform)
    await wait_metric(processor, "bars_completed_total", 3)
    processor.kill()  # SIGKILL: no flush, no acknowledgement of what it was working on
    await asyncio.sleep(2.5)  # trades keep arriving on the Redis stream meanwhile
    restarted = platform.processor(name="processor-restarted")
    await restarted.wait_ready()
    await asyncio.sleep(2.0)

    received = await stop_source_then_collector(simulator, collector)
    stored = await wait_stored(platform.pg_url, received)
    assert stored == received, dump_logs()
    assert_contiguous(await stored_ids(platform.pg_url))
    # Each symbol's last 1s bars (the last second plus the 2 s grace) stay open: with its collector
    # stopped, its feed is not live, so the clock does not close them (a restarted collector would still
    # repair trades into them). Every earlier second has its bar.
    await asyncio.sleep(1.5)
    await assert_bars_match_trades(platform.pg_url)
    assert await restarted.metric("late_trades_total") == 0, dump_logs()
    code, took = restarted.stop()
    assert code == 0 and took < 8, dump_logs()


async def assert_bars_match_trades(pg_url: str) -> None:
    """Each stored bar equals an independent SQL aggregation of the stored trades in its interval, and
    every interval that holds trades, but each symbol's last three seconds (still open), has its bar
    (none lost, none counted twice)."""
    rows = await fetch(
        pg_url,
        """
        WITH buckets AS (
            SELECT b.timeframe, b.symbol, b.open_time, b.trade_count, b.volume,
                   b.open::text AS open, b.close::text AS close,
                   (SELECT count(*) FROM trades t WHERE t.symbol = b.symbol
                      AND t.ts_event >= b.open_time AND t.ts_event < b.close_time) AS n,
                   (SELECT sum(t.quantity) FROM trades t WHERE t.symbol = b.symbol
                      AND t.ts_event >= b.open_time AND t.ts_event < b.close_time) AS vol
            FROM bars b WHERE b.timeframe IN ('1s', '5s')
        ) SELECT * FROM buckets
        """,
    )
    assert rows, "no bars stored"
    for row in rows:
        assert row["trade_count"] == row["n"], dict(row)
        assert row["volume"] == row["vol"], dict(row)  # exact: numeric sums on both sides
    uncovered = await fetch(
        pg_url,
        """
        SELECT t.symbol, date_trunc('second', t.ts_event) AS second, count(*) AS n FROM trades t
        WHERE NOT EXISTS (SELECT 1 FROM bars b WHERE b.symbol = t.symbol AND b.timeframe = '1s'
                          AND t.ts_event >= b.open_time AND t.ts_event < b.close_time)
          AND t.ts_event < (SELECT max(l.ts_event) - interval '3 seconds'
                            FROM trades l WHERE l.symbol = t.symbol)
        GROUP BY 1, 2 ORDER BY 2
        """,
    )
    assert not uncovered, [dict(r) for r in uncovered[:5]]


async def test_api_process_serves_what_the_processor_stored(
    platform: Platform, dump_logs: Callable[[], str]
) -> None:
    simulator, collector, processor = await start_pipeline(platform)
    api = platform.api()
    await api.wait_ready()
    await wait_metric(processor, "bars_completed_total", 2, symbol="BTC-USDT", timeframe="1s")
    async with httpx.AsyncClient(base_url=platform.api_url, timeout=5) as client:
        bars = (await client.get("/api/v1/bars", params={"symbol": "BTC-USDT", "timeframe": "1s"})).json()
        assert bars.get("bars"), bars
        latest = await client.get("/api/v1/bars/latest", params={"symbol": "BTC-USDT", "timeframe": "1s"})
        assert latest.status_code == 200 and latest.headers["X-Request-ID"]
        bad = await client.get("/api/v1/bars", params={"symbol": "BTC-USDT", "timeframe": "7x"})
        assert bad.status_code == 422 and "timeframe" in bad.text
    assert await api.metric("http_requests_total", endpoint="/api/v1/bars", status="200") >= 1
    pushed = await next_pushed_bar(
        f"ws://127.0.0.1:{platform.api_port}/api/v1/ws/bars?symbol=BTC-USDT&timeframe=1s"
    )
    assert pushed["symbol"] == "BTC-USDT" and pushed["timeframe"] == "1s"
    assert await api.metric("websocket_messages_sent_total") >= 1
    for daemon in (simulator, collector, processor, api):
        code, took = daemon.stop(signal.SIGINT if daemon is api else signal.SIGTERM)
        assert code == 0 and took < 8, dump_logs()


async def test_database_and_redis_outages_are_survived_and_buffered_trades_written_after(
    platform: Platform, dump_logs: Callable[[], str]
) -> None:
    """PostgreSQL and Redis each go away for a few seconds (a proxy cuts every connection and refuses new
    ones) while trades keep flowing: the daemons stay up and every trade ends up stored exactly once."""
    from tests.conftest import free_port
    from tests.storage.tcp_proxy import TcpProxy

    pg_proxy = TcpProxy("127.0.0.1", 5432, free_port())
    redis_proxy = TcpProxy("127.0.0.1", 6379, free_port())
    await pg_proxy.start()
    await redis_proxy.start()
    platform.pg_url = platform.pg_url.replace(":5432/", f":{pg_proxy.port}/")
    direct_redis = platform.redis_url
    platform.redis_url = direct_redis.replace(":6379/", f":{redis_proxy.port}/")
    try:
        simulator, collector, processor = await start_pipeline(platform)
        await pg_proxy.stop()  # database outage: the processor retries, acknowledges nothing
        await asyncio.sleep(4.0)
        processor.assert_running()
        await pg_proxy.start()
        await wait_metric(processor, "db_queries_total", 1, operation="insert_trades", status="error")
        await redis_proxy.stop()  # bus outage: the collector buffers, the processor waits
        await asyncio.sleep(4.0)
        collector.assert_running()
        processor.assert_running()
        await redis_proxy.start()
        await asyncio.sleep(2.0)

        received = await stop_source_then_collector(simulator, collector)
        stored = await wait_stored(platform.pg_url, received)
        assert stored == received, dump_logs()
        assert_contiguous(await stored_ids(platform.pg_url))
        code, _ = await asyncio.to_thread(processor.stop)
        assert code == 0, dump_logs()
    finally:
        await pg_proxy.stop()
        await redis_proxy.stop()


async def next_pushed_bar(url: str) -> dict:
    """The first bar the API pushes over its WebSocket: the processor (another process) published it on
    Redis pub/sub, the API process relays it."""
    async with websockets.connect(url, open_timeout=5) as socket:
        first = json.loads(await asyncio.wait_for(socket.recv(), 5))
        assert first["type"] == "subscribed", first
        message = json.loads(await asyncio.wait_for(socket.recv(), 10))
    assert message["type"] == "bar", message
    return message["data"]


@pytest.mark.parametrize("client", ["websockets", "picows"])
async def test_collector_uses_the_websocket_client_it_is_told_to(platform: Platform, client: str) -> None:
    """--ws-client reaches the connection: the exchange sees that client's User-Agent, and trades flow."""
    simulator = platform.simulator(tps=100)
    await simulator.wait_ready()
    collector = platform.collector("--ws-client", client)
    await collector.wait_ready()
    await wait_metric(collector, "trades_received_total", 20)
    async with httpx.AsyncClient(timeout=5) as http:
        state = (await http.get(f"{platform.sim_url}/admin/state")).json()
    agents = [c["user_agent"] for c in state["connection_details"]]
    assert agents and all(agent.startswith("cryptostock/") and f"({client})" in agent for agent in agents), (
        agents
    )


async def test_collector_flags_reach_the_session(platform: Platform, dump_logs: Callable[[], str]) -> None:
    # --max-connection-age replaces each connection (make before break) once it is that old.
    simulator = platform.simulator(tps=50)
    await simulator.wait_ready()
    collector = platform.collector("--max-connection-age", "1", "--backoff-max", "2")
    await collector.wait_ready()
    await wait_metric(collector, "websocket_reconnections_total", 2, timeout=15)
    assert await collector.metric("collector_errors_total", error_type="stale") == 0, dump_logs()
    for daemon in (simulator, collector):
        code, _ = daemon.stop()
        assert code == 0, dump_logs()


async def test_simulate_injects_the_faults_given_at_start(platform: Platform) -> None:
    simulator = platform.simulator("--faults", '{"stall": 60, "skip": 3}')
    await simulator.wait_ready()
    async with httpx.AsyncClient(base_url=platform.sim_url, timeout=5) as client:
        faults = (await client.get("/admin/state")).json()["faults"]
    assert faults["stall_remaining_s"] > 30
    assert faults["skip_pending"] or faults["trades_skipped"] > 0, faults  # withheld, or still to be
    code, _ = simulator.stop()
    assert code == 0


async def test_instruments_travel_from_the_collector_to_the_processor_over_redis(
    platform: Platform, dump_logs: Callable[[], str]
) -> None:
    """Three processes: the collector describes its instruments on the Redis feed board, the processor (its
    own process) stores those descriptions, not a guess from the symbol, and the API serves them."""
    await start_pipeline(platform)
    sql = "SELECT exchange, symbol, raw_symbol, base, quote FROM symbols"

    async def both_stored() -> bool:
        return len(await fetch(platform.pg_url, sql)) == 2

    await wait_until(both_stored, 30, f"both symbols stored\n{dump_logs()}")
    rows = await fetch(platform.pg_url, sql)
    assert sorted(tuple(r.values()) for r in rows) == [
        ("binance", "BTC-USDT", "BTCUSDT", "BTC", "USDT"),
        ("binance", "ETH-USDT", "ETHUSDT", "ETH", "USDT"),
    ], dump_logs()
    processor = next(d for d in platform.daemons if d.name == "processor")
    log = processor.log_path.read_text(errors="replace")  # the whole log (output() is its tail)
    assert "warmed up" in log and "no collector described" not in log, dump_logs()  # read from the board
    api = platform.api()
    await api.wait_ready()
    async with httpx.AsyncClient(timeout=5) as client:
        served = (await client.get(f"{platform.api_url}/api/v1/symbols")).json()
    listed = served["symbols"] if isinstance(served, dict) else served
    assert {(s["symbol"], s["base"], s["quote"]) for s in listed} >= {("BTC-USDT", "BTC", "USDT")}, served
