"""Data-quality checks: each anomaly is detected, clean data passes, the score is a rolling ratio."""

from __future__ import annotations

import msgspec

from core.types import Bar, Side, Trade
from processor import quality as q
from processor.quality import CheckResult, QualityMonitor

S = 1_000_000_000
T0 = 1_699_999_200 * S
M = 60 * S


def trade(
    tid: int, price: str = "100", qty: str = "1", lead_s: float = -0.05, backfilled: bool = False
) -> Trade:
    ts_recv = T0 + tid * S
    return Trade("binance", "BTC-USDT", "BTCUSDT", tid, price, qty, Side.BUY, ts_recv + round(lead_s * S),
                 ts_recv, backfilled)  # fmt: skip


def bar(i: int = 0, **changes: object) -> Bar:
    good = Bar("binance", "BTC-USDT", "1m", T0 + i * M, T0 + (i + 1) * M, "100", "110", "90", "105",
               3.0, 300.0, 100.0, 5, 1.0, 2.0, 1, 5)  # fmt: skip
    return msgspec.structs.replace(good, **changes)


def failed(results: list[CheckResult]) -> dict[str, str | None]:
    return {r.check: r.anomaly_type for r in results if not r.passed}


def test_clean_trades_pass_every_check() -> None:
    monitor = QualityMonitor()
    assert [r.check for r in monitor.check_trade(trade(1))] == [
        q.CHECK_TRADE_VALUES, q.CHECK_TRADE_TIMESTAMP, q.CHECK_TRADE_LATENCY,
    ]  # fmt: skip
    results = monitor.check_trade(trade(2, "101.5"))
    assert {r.check for r in results} == {
        q.CHECK_TRADE_VALUES, q.CHECK_TRADE_TIMESTAMP, q.CHECK_TRADE_LATENCY, q.CHECK_TRADE_PRICE_JUMP,
        q.CHECK_TRADE_ORDER,
    }  # fmt: skip
    assert all(r.passed and r.anomaly_type is None for r in results)
    assert monitor.score("binance", "BTC-USDT") == 1.0


def test_invalid_values() -> None:
    monitor = QualityMonitor()
    for price, qty in [("nan", "1"), ("100", "0"), ("-1", "1"), ("abc", "1"), ("100", "inf")]:
        assert (
            failed(monitor.check_trade(trade(1, price, qty)))[q.CHECK_TRADE_VALUES] == q.ANOMALY_INVALID_VALUE
        )


def test_timestamps_future_and_latency() -> None:
    monitor = QualityMonitor(future_tolerance_ns=2 * S, max_latency_ns=30 * S)
    assert failed(monitor.check_trade(trade(1, lead_s=3))) == {
        q.CHECK_TRADE_TIMESTAMP: q.ANOMALY_FUTURE_TIMESTAMP
    }
    assert failed(monitor.check_trade(trade(2, lead_s=1.9))) == {}
    assert failed(monitor.check_trade(trade(3, lead_s=-31))) == {
        q.CHECK_TRADE_LATENCY: q.ANOMALY_HIGH_LATENCY
    }
    # backfilled trades are old by nature: no latency, jump or order checks
    assert failed(monitor.check_trade(trade(0, "500", lead_s=-3600, backfilled=True))) == {}


def test_price_spike_and_out_of_order() -> None:
    monitor = QualityMonitor(spike_ratio=0.05)
    monitor.check_trade(trade(10, "100"))
    assert failed(monitor.check_trade(trade(11, "104.9"))) == {}
    assert failed(monitor.check_trade(trade(12, "120"))) == {q.CHECK_TRADE_PRICE_JUMP: q.ANOMALY_PRICE_SPIKE}
    assert failed(monitor.check_trade(trade(13, "121"))) == {}  # the level moved: flagged once
    assert failed(monitor.check_trade(trade(12, "121"))) == {q.CHECK_TRADE_ORDER: q.ANOMALY_OUT_OF_ORDER}
    assert failed(monitor.check_trade(trade(14, "121"))) == {}


def test_bar_checks() -> None:
    monitor = QualityMonitor()
    assert failed(monitor.check_bar(bar())) == {}
    assert failed(monitor.check_bar(bar(1, high="104"))) == {q.CHECK_BAR_OHLC: q.ANOMALY_OHLC}
    assert failed(monitor.check_bar(bar(2, low="101", vwap=102.0))) == {q.CHECK_BAR_OHLC: q.ANOMALY_OHLC}
    assert failed(monitor.check_bar(bar(3, buy_volume=1.1))) == {q.CHECK_BAR_VOLUME: q.ANOMALY_VOLUME}
    assert failed(monitor.check_bar(bar(4, buy_volume=1.0 + 1e-13))) == {}
    assert failed(monitor.check_bar(bar(5, trade_count=0))) == {q.CHECK_BAR_TRADE_COUNT: q.ANOMALY_EMPTY_BAR}
    assert failed(monitor.check_bar(bar(6, vwap=89.0))) == {q.CHECK_BAR_VWAP: q.ANOMALY_VWAP}


def test_missing_bars_is_info_only() -> None:
    monitor = QualityMonitor()
    monitor.check_bar(bar(0))
    [continuity] = [r for r in monitor.check_bar(bar(1)) if r.check == q.CHECK_BAR_CONTINUITY]
    assert continuity == CheckResult(q.CHECK_BAR_CONTINUITY, True, None)
    [gap] = [r for r in monitor.check_bar(bar(5)) if r.check == q.CHECK_BAR_CONTINUITY]
    assert gap == CheckResult(q.CHECK_BAR_CONTINUITY, True, q.ANOMALY_MISSING_BARS)
    other_tf = msgspec.structs.replace(bar(9), timeframe="5m")
    assert q.CHECK_BAR_CONTINUITY not in {r.check for r in monitor.check_bar(other_tf)}
    assert monitor.score("binance", "BTC-USDT") == 1.0


def test_score_is_a_rolling_pass_ratio_per_symbol() -> None:
    monitor = QualityMonitor(window=10)
    assert monitor.score("binance", "BTC-USDT") == 1.0
    monitor.check_trade(trade(1, "nan"))  # 3 results, 1 failed
    assert monitor.score("binance", "BTC-USDT") == 2 / 3
    for i in range(2, 6):  # 4 clean trades x 5 checks: the failure scrolls out of the window
        monitor.check_trade(trade(i))
    assert monitor.score("binance", "BTC-USDT") == 1.0
    assert monitor.score("binance", "ETH-USDT") == 1.0


def test_labels_are_bounded_constants() -> None:
    monitor = QualityMonitor()
    results = monitor.check_trade(trade(1, "0", lead_s=100)) + monitor.check_bar(
        bar(0, high="1", trade_count=0)
    )
    assert {r.check for r in results} <= set(q.CHECKS)
    assert {r.anomaly_type for r in results if r.anomaly_type} <= set(q.ANOMALY_TYPES)
    assert len(set(q.CHECKS)) == len(q.CHECKS) and len(set(q.ANOMALY_TYPES)) == len(q.ANOMALY_TYPES)
