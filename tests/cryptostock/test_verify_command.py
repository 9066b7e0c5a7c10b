"""The pure parts of `cryptostock verify`: the closed window, venues without candles or without the reach
asked for (exit 2), and the report's lines."""

from __future__ import annotations

import msgspec
import pytest

from collectors import registry
from collectors.adapter import NO_KLINES
from collectors.exchanges.binance import BinanceAdapter
from core.errors import ConfigError
from core.timeframes import NS_PER_MINUTE
from core.types import Candle, ClosedBar, Indicators, SymbolInfo
from cryptostock.progress_bar import ProgressBar
from cryptostock.verify import (
    VerifyWindow,
    closed_window,
    klines_adapter,
    report_lines,
    summary,
    verify_window,
)
from processor.verification import FieldDifference, MinuteDifference, MinuteVerdict, Verification

T0 = 1_704_067_200 * 10**9  # 2024-01-01T00:00:00Z
BTC = SymbolInfo("binance", "BTC-USDT", "BTCUSDT", "BTC", "USDT")


def test_the_window_is_whole_minutes_and_ends_at_the_current_minute() -> None:
    now = T0 + 10 * NS_PER_MINUTE + 5
    assert closed_window(T0 + 1, T0 + 3 * NS_PER_MINUTE + 1, now) == (T0, T0 + 4 * NS_PER_MINUTE)
    assert closed_window(T0, T0 + 60 * NS_PER_MINUTE, now) == (T0, T0 + 10 * NS_PER_MINUTE)
    with pytest.raises(ConfigError, match="no closed minute"):
        closed_window(T0 + 10 * NS_PER_MINUTE, T0 + 11 * NS_PER_MINUTE, now)


def test_a_venue_without_candles_is_refused_with_its_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    class NoKlines(BinanceAdapter):
        name = "noklines"
        capabilities = msgspec.structs.replace(BinanceAdapter.capabilities, klines=NO_KLINES)

    monkeypatch.setitem(registry.ADAPTERS, "noklines", NoKlines)
    info = msgspec.structs.replace(BTC, exchange="noklines")
    with pytest.raises(ConfigError, match="noklines cannot be verified: this venue serves no 1m candles"):
        klines_adapter(info, T0, T0)


def test_a_window_beyond_the_venues_reach_is_refused() -> None:
    kraken = SymbolInfo("kraken", "BTC-USD", "BTC/USD", "BTC", "USD")
    now = T0 + 24 * 60 * NS_PER_MINUTE
    with pytest.raises(ConfigError, match="last 12 hours only"):
        klines_adapter(kraken, T0, now)
    assert klines_adapter(kraken, now - 60 * NS_PER_MINUTE, now).name == "kraken"
    assert klines_adapter(BTC, 0 + NS_PER_MINUTE, now).name == "binance"  # no limit


def test_report_lines_and_summary() -> None:
    window = VerifyWindow(BTC, T0, T0 + 3 * NS_PER_MINUTE)
    differs = MinuteDifference(T0, MinuteVerdict.DIFFERS, (FieldDifference("volume", "1.5", "1.6"),))
    missing = MinuteDifference(
        T0 + NS_PER_MINUTE, MinuteVerdict.MISSING_STORED, (FieldDifference("volume", "", "2"),)
    )
    result = Verification(3, 1, (differs, missing))
    assert report_lines(result, as_json=False) == [
        "2024-01-01T00:00:00.000Z differs: volume stored 1.5 venue 1.6",
        "2024-01-01T00:01:00.000Z no stored bar, the venue has one: volume venue 2",
    ]
    first = msgspec.json.decode(report_lines(result, as_json=True)[0])
    assert first == {
        "open_time": "2024-01-01T00:00:00.000Z", "open_time_ns": T0, "verdict": "differs",
        "fields": [{"field": "volume", "stored": "1.5", "venue": "1.6"}],
    }  # fmt: skip
    assert summary(window, result) == (
        "binance BTC-USDT 1m bars 2024-01-01T00:00:00.000Z..2024-01-01T00:03:00.000Z: 3 minutes compared,"
        " 1 equal, 2 differ (differs 1, missing_stored 1)"
    )
    assert summary(window, Verification(2, 2, ())).endswith(
        "2 minutes compared, all equal to the venue's candles"
    )


class _Store:
    """Stored bars of every 7th minute; records the windows asked for."""

    def __init__(self) -> None:
        self.asked: list[tuple[int, int, int]] = []

    async def bars(
        self, exchange: str, symbol: str, timeframe: str, *, start_ns: int, end_ns: int, limit: int
    ):  # type: ignore[no-untyped-def]
        from tests.processor.test_verification import bar

        self.asked.append((start_ns, end_ns, limit))
        first = -(-(start_ns - T0) // NS_PER_MINUTE)
        minutes = [k for k in range(first, (end_ns - T0) // NS_PER_MINUTE) if k % 7 == 0]
        return [ClosedBar(bar(k), Indicators()) for k in minutes]


class _Rest:
    """The venue's candles: every 7th minute, one of them different."""

    async def fetch_klines(self, raw: str, start: int, end: int, *, max_wait_s: float) -> list[Candle]:
        from tests.processor.test_verification import candle

        first = -(-(start - T0) // NS_PER_MINUTE)
        out = [candle(k) for k in range(first, (end - T0) // NS_PER_MINUTE) if k % 7 == 0]
        return [
            msgspec.structs.replace(c, volume="9") if c.open_time == T0 + 1442 * NS_PER_MINUTE else c
            for c in out
        ]


async def test_a_long_window_is_checked_a_day_at_a_time() -> None:
    store = _Store()
    window = VerifyWindow(BTC, T0, T0 + 3000 * NS_PER_MINUTE)
    progress = ProgressBar("verify", total=1.0, enabled=False)
    result = await verify_window(store, _Rest(), window, max_wait=0, progress=progress)  # type: ignore[arg-type]
    day = 1440 * NS_PER_MINUTE
    assert store.asked == [
        (T0, T0 + day, 1440),
        (T0 + day, T0 + 2 * day, 1440),
        (T0 + 2 * day, window.end_ns, 1440),
    ]
    assert result.compared == len(range(0, 3000, 7))
    assert [d.open_time for d in result.differences] == [T0 + 1442 * NS_PER_MINUTE]
    assert result.matched == result.compared - 1


def test_periodic_verification_is_on_in_run_and_off_in_the_processor_daemon(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cryptostock.settings import ProcessorSettings, RunSettings

    assert RunSettings().verify_interval == 60 and ProcessorSettings().verify_interval == 0
    monkeypatch.setenv("CRYPTOSTOCK_VERIFY_REST_URLS", "binance=http://127.0.0.1:8765, OKX=http://h:1")
    assert ProcessorSettings().verify_rest_urls == {"binance": "http://127.0.0.1:8765", "okx": "http://h:1"}
    monkeypatch.setenv("CRYPTOSTOCK_VERIFY_REST_URLS", "nope=http://x")
    with pytest.raises(ValueError, match="unknown exchange 'nope'"):
        ProcessorSettings()
    monkeypatch.setenv("CRYPTOSTOCK_VERIFY_REST_URLS", "binance")
    with pytest.raises(ValueError, match="not exchange=URL"):
        ProcessorSettings()


def test_run_verifies_against_its_own_simulators_or_the_given_endpoints() -> None:
    from types import SimpleNamespace

    from core.supervisor import Part
    from cryptostock.commands import _add_verifier, _rest_urls
    from cryptostock.settings import ProcessorSettings, RunSettings

    sims = [SimpleNamespace(rest_url="http://127.0.0.1:1"), SimpleNamespace(rest_url="http://127.0.0.1:2")]
    simulated = RunSettings(exchange="binance,okx")
    assert _rest_urls(simulated, sims) == {"binance": "http://127.0.0.1:1", "okx": "http://127.0.0.1:2"}  # type: ignore[arg-type]
    elsewhere = RunSettings(exchange="okx", rest_url="http://h:9")
    assert _rest_urls(elsewhere, []) == {"okx": "http://h:9"}
    live = RunSettings(exchange="binance,okx", live=True)
    assert _rest_urls(live, []) == {"binance": None, "okx": None}
    parts: list[Part] = []
    _add_verifier(parts, ProcessorSettings(), None, {})  # type: ignore[arg-type]
    assert parts == []  # off by default in the processor daemon
    _add_verifier(parts, simulated, None, {"binance": None})  # type: ignore[arg-type]
    assert [part.name for part in parts] == ["verifier"]
