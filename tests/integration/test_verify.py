"""`cryptostock verify` over real sockets: a simulated venue serves klines computed from its trades, the
store holds 1m bars the processor's aggregator built from the same trades, and the command (a subprocess)
finds them equal; a tampered, a missing and an extra stored bar are each reported by minute and field."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from api.params import format_time
from core.types import Bar, ClosedBar, Indicators
from monitoring.metrics import PlatformMetrics
from storage.sqlite import SQLiteStore
from tests.integration.procs import CRYPTOSTOCK, ROOT
from tests.integration.verify_scene import MINUTE_MS, MINUTES, NS_PER_MS, VENUES, Scene, make_scene

pytestmark = pytest.mark.integration


@pytest.fixture
async def scenes() -> AsyncIterator[list[Scene]]:
    made: list[Scene] = []
    yield made
    for scene in made:
        await scene.sim.stop()
        await scene.store.close()


async def verify(scene: Scene, *extra: str) -> tuple[int, str, str]:
    """Run `cryptostock verify` as a subprocess while this loop keeps serving the simulator."""
    process = await asyncio.create_subprocess_exec(
        *CRYPTOSTOCK, "verify", "--exchange", scene.exchange, "--symbol", scene.symbol,
        "--from", str(scene.start_ms), "--to", str(scene.end_ms), "--rest-url", scene.sim.rest_url,
        *scene.db_args, *extra,
        cwd=ROOT, env=scene.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def minute_text(bar: Bar) -> str:
    return format_time(bar.open_time)


@pytest.mark.parametrize("exchange", sorted(VENUES))
async def test_bars_built_from_the_venues_trades_equal_its_candles_and_a_tampered_one_is_named(
    exchange: str, tmp_path: Path, metrics: PlatformMetrics, scenes: list[Scene]
) -> None:
    scene = await make_scene(exchange, tmp_path, metrics)
    scenes.append(scene)
    code, out, err = await verify(scene)
    assert code == 0, out + err
    assert f"{MINUTES} minutes compared, all equal" in out

    tampered = scene.bars[2]
    volume = f"{tampered.volume}1"  # one more digit: a different decimal, not just a trailing zero
    changed = msgspec.structs.replace(tampered, volume=volume)
    await scene.store.upsert_bars([ClosedBar(changed, Indicators())])
    code, out, err = await verify(scene)
    assert code == 1, out + err
    lines = out.splitlines()
    assert lines[0] == (
        f"{minute_text(tampered)} differs: volume stored {volume} venue {_venue_volume(exchange, tampered)}"
    )
    assert "1 differ (differs 1)" in lines[-1]


def _venue_volume(exchange: str, bar: Bar) -> str:
    """The volume as the venue writes it: Binance and Kraken pad to 8 decimals, Bybit drops trailing
    zeros, the others as summed."""
    from decimal import Decimal

    exact = Decimal(bar.volume)
    if exchange in ("binance", "kraken"):
        return f"{exact.quantize(Decimal('0.00000001')):f}"
    return f"{exact.normalize():f}" if exchange == "bybit" else f"{exact:f}"


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_missing_and_extra_bars_and_trailing_zeros(
    kind: str, tmp_path: Path, metrics: PlatformMetrics, pg_url: str, scenes: list[Scene]
) -> None:
    scene = await make_scene("binance", tmp_path, metrics, kind, pg_url)
    scenes.append(scene)
    first, last = scene.bars[0], scene.bars[-1]
    # Trailing zeros are not a difference: the simulated Binance writes 8 decimals; store fewer.
    padded = msgspec.structs.replace(last, volume=last.volume.rstrip("0").rstrip(".") or "0")
    await scene.store.upsert_bars([ClosedBar(padded, Indicators())])
    # A stored bar the venue never had: in the minute before its first trade (after it, Binance serves
    # quiet minutes: a candle at the previous close without trades, which equals no stored bar).
    scene.start_ms -= MINUTE_MS
    quiet = scene.start_ms * NS_PER_MS
    extra = msgspec.structs.replace(first, open_time=quiet, close_time=quiet + 60 * 10**9)
    await scene.store.upsert_bars([ClosedBar(extra, Indicators())])
    code, out, err = await verify(scene)
    assert code == 1, out + err
    assert out.splitlines()[0] == (
        f"{minute_text(extra)} stored bar, the venue has no candle: volume stored {extra.volume}; "
        f"trade_count stored {extra.trade_count}"
    )
    assert "missing_venue 1" in out and "differs" not in out.splitlines()[-1].split("(")[1]


async def test_a_minute_the_store_never_got_is_reported(
    tmp_path: Path, metrics: PlatformMetrics, scenes: list[Scene]
) -> None:
    scene = await make_scene("binance", tmp_path, metrics)
    scenes.append(scene)
    gone = scene.bars[1]
    store = scene.store
    assert isinstance(store, SQLiteStore)
    await _delete_bar(tmp_path / "verify.db", gone)
    code, out, _ = await verify(scene, "--log-format", "json")
    assert code == 1
    first = msgspec.json.decode(out.splitlines()[0])
    assert first["open_time"] == minute_text(gone) and first["verdict"] == "missing_stored"
    assert {"field": "trade_count", "stored": "", "venue": str(gone.trade_count)} in first["fields"]
    summary = msgspec.json.decode(out.splitlines()[-1])
    assert summary["differences"] == 1 and summary["compared"] == MINUTES


async def _delete_bar(db: Path, bar: Bar) -> None:
    import sqlite3

    with sqlite3.connect(db) as connection:
        deleted = connection.execute(
            "DELETE FROM bars WHERE exchange = ? AND symbol = ? AND timeframe = '1m' AND open_time = ?",
            (bar.exchange, bar.symbol, bar.open_time),
        ).rowcount
    assert deleted == 1


async def test_usage_errors_exit_2(tmp_path: Path, metrics: PlatformMetrics, scenes: list[Scene]) -> None:
    scene = await make_scene("binance", tmp_path, metrics)
    scenes.append(scene)
    code, _, err = await verify(scene, "--to", str(scene.start_ms - MINUTE_MS))
    assert code == 2 and "must come before" in err
    scene.symbol = "NOPE-USDT"
    code, _, err = await verify(scene)
    assert code == 2 and "unknown symbol" in err


async def test_the_venues_rate_limit_is_waited_out_or_fails_the_command(
    tmp_path: Path, metrics: PlatformMetrics, scenes: list[Scene]
) -> None:
    scene = await make_scene("okx", tmp_path, metrics)
    scenes.append(scene)
    scene.sim.rate_limit(2, retry_after=1)  # the next two REST calls answer 429 with Retry-After: 1
    code, out, err = await verify(scene)
    assert code == 0, out + err
    assert f"{MINUTES} minutes compared, all equal" in out
    scene.sim.rate_limit(5, retry_after=30)
    code, out, err = await verify(scene, "--max-wait", "5")
    assert code == 1 and "RateLimitedError" in err and "retry after 30s" in err
