"""Data-quality checks: each anomaly is detected, clean data passes, the score is a rolling ratio."""

from __future__ import annotations

import random

import msgspec
import pytest

from core.types import Bar, Side, Trade
from processor import quality as q
from processor.quality import QualityMonitor, QualityTally

S = 1_000_000_000
T0 = 1_699_999_200 * S
M = 60 * S


def trade(
    tid: int,
    price: str = "100",
    qty: str = "1",
    lead_s: float = -0.05,
    backfilled: bool = False,
    symbol: str = "BTC-USDT",
) -> Trade:
    ts_recv = T0 + tid * S
    return Trade("binance", symbol, symbol.replace("-", ""), str(tid), tid, price, qty, Side.BUY,
                 ts_recv + round(lead_s * S), ts_recv, backfilled)  # fmt: skip


def bar(i: int = 0, **changes: object) -> Bar:
    good = Bar("binance", "BTC-USDT", "1m", T0 + i * M, T0 + (i + 1) * M, "100", "110", "90", "105",
               "3.00", "300.0", 100.0, 5, "1.0", "2", "1", "5")  # fmt: skip
    return msgspec.structs.replace(good, **changes)


def failed(tally: QualityTally) -> dict[str, int]:
    return dict(tally.failed)


def anomalies(tally: QualityTally) -> dict[str, int]:
    return {anomaly: n for (_, _, anomaly), n in tally.anomalies.items()}


def check(monitor: QualityMonitor, *trades: Trade) -> QualityTally:
    return monitor.check_trades(trades)


def test_clean_trades_pass_every_check() -> None:
    monitor = QualityMonitor()
    first = check(monitor, trade(1))
    assert first.passed == {q.CHECK_TRADE_VALUES: 1, q.CHECK_TRADE_TIMESTAMP: 1, q.CHECK_TRADE_LATENCY: 1}
    rest = check(monitor, trade(2, "101.5"), trade(3, "101.4"))
    assert rest.passed == {
        q.CHECK_TRADE_VALUES: 2, q.CHECK_TRADE_TIMESTAMP: 2, q.CHECK_TRADE_LATENCY: 2,
        q.CHECK_TRADE_PRICE_JUMP: 2, q.CHECK_TRADE_ORDER: 2,
    }  # fmt: skip
    assert not rest.failed and not rest.anomalies
    assert rest.symbols == {("binance", "BTC-USDT")}
    assert monitor.score("binance", "BTC-USDT") == 1.0


def test_invalid_values() -> None:
    monitor = QualityMonitor()
    bad = [("nan", "1"), ("100", "0"), ("-1", "1"), ("abc", "1"), ("100", "inf"), ("100", "-inf")]
    tally = check(monitor, *(trade(i, price, qty) for i, (price, qty) in enumerate(bad, 1)))
    assert tally.failed == {q.CHECK_TRADE_VALUES: len(bad)}
    assert tally.anomalies == {("binance", "BTC-USDT", q.ANOMALY_INVALID_VALUE): len(bad)}
    assert q.CHECK_TRADE_VALUES not in tally.passed


def test_timestamps_future_and_latency() -> None:
    monitor = QualityMonitor(future_tolerance_ns=2 * S, max_latency_ns=30 * S)
    assert failed(check(monitor, trade(1, lead_s=3))) == {q.CHECK_TRADE_TIMESTAMP: 1}
    assert failed(check(monitor, trade(2, lead_s=1.9))) == {}
    tally = check(monitor, trade(3, lead_s=-31))
    assert failed(tally) == {q.CHECK_TRADE_LATENCY: 1}
    assert anomalies(tally) == {q.ANOMALY_HIGH_LATENCY: 1}
    # backfilled trades are old by nature: no latency, jump or order checks
    backfilled = check(monitor, trade(0, "500", lead_s=-3600, backfilled=True))
    assert failed(backfilled) == {}
    assert backfilled.passed == {q.CHECK_TRADE_VALUES: 1, q.CHECK_TRADE_TIMESTAMP: 1}


def test_price_spike_and_out_of_order() -> None:
    monitor = QualityMonitor(spike_ratio=0.05)
    check(monitor, trade(10, "100"))
    assert failed(check(monitor, trade(11, "104.9"))) == {}
    assert anomalies(check(monitor, trade(12, "120"))) == {q.ANOMALY_PRICE_SPIKE: 1}
    assert failed(check(monitor, trade(13, "121"))) == {}  # the level moved: flagged once
    assert anomalies(check(monitor, trade(12, "121"))) == {q.ANOMALY_OUT_OF_ORDER: 1}
    assert failed(check(monitor, trade(14, "121"))) == {}


def test_a_batch_equals_the_same_trades_one_by_one() -> None:
    """State carries across trades and symbols within a batch exactly as across batches."""
    eth = "ETH-USDT"
    trades = [
        trade(1, "100"), trade(1, "50", symbol=eth), trade(2, "130"), trade(2, "51", symbol=eth),
        trade(2, "131"), trade(3, "nan", lead_s=9), trade(4, "131", lead_s=-90),
        trade(0, "1", backfilled=True),
    ]  # fmt: skip
    together, alone = QualityMonitor(window=7), QualityMonitor(window=7)
    batch = together.check_trades(trades)
    singles = [alone.check_trades([t]) for t in trades]
    for field in ("passed", "failed", "anomalies"):
        summed: dict[object, int] = {}
        for tally in singles:
            for key, n in getattr(tally, field).items():
                summed[key] = summed.get(key, 0) + n
        assert dict(getattr(batch, field)) == summed, field
    assert batch.anomalies == {
        ("binance", "BTC-USDT", q.ANOMALY_PRICE_SPIKE): 1,
        ("binance", "BTC-USDT", q.ANOMALY_OUT_OF_ORDER): 1,
        ("binance", "BTC-USDT", q.ANOMALY_INVALID_VALUE): 1,
        ("binance", "BTC-USDT", q.ANOMALY_FUTURE_TIMESTAMP): 1,
        ("binance", "BTC-USDT", q.ANOMALY_HIGH_LATENCY): 1,
    }
    for symbol in ("BTC-USDT", "ETH-USDT"):
        assert together.score("binance", symbol) == alone.score("binance", symbol)
    assert together.score("binance", "BTC-USDT") < 1.0 == together.score("binance", "ETH-USDT")


@pytest.mark.parametrize("seed", range(5))
def test_symbols_alternating_in_a_batch_give_what_one_by_one_gives(seed: int) -> None:
    """Long batches in which three symbols alternate at random (as an in-process batch of a read's frames),
    with now and then a bad value, a spike, a late or out-of-order trade: checked per symbol in runs, the
    tallies and scores equal those of the same trades checked one by one."""
    rng = random.Random(seed)
    last = {"BTC-USDT": 0, "ETH-USDT": 0, "SOL-USDT": 0}
    trades = []
    for _ in range(600):
        symbol = rng.choice(list(last))
        last[symbol] += 1
        tid = last[symbol] - (3 if rng.random() < 0.005 else 0)
        price = rng.choice(["100", "100.5", "99.9"] * 100 + ["180", "nan", "0"])
        lead = -90.0 if rng.random() < 0.005 else -0.05
        trades.append(trade(tid, price, lead_s=lead, symbol=symbol, backfilled=rng.random() < 0.005))
    together, alone = QualityMonitor(window=50), QualityMonitor(window=50)
    batches, start = [], 0
    while start < len(trades):  # batches of 1 to 80 trades: most of their runs clean, some not
        size = rng.randint(1, 80)
        batches.append(together.check_trades(trades[start : start + size]))
        start += size
    singles = [alone.check_trades([t]) for t in trades]
    for field in ("passed", "failed", "anomalies"):
        expected: dict[object, int] = {}
        got: dict[object, int] = {}
        for tallies, summed in ((singles, expected), (batches, got)):
            for tally in tallies:
                for key, n in getattr(tally, field).items():
                    summed[key] = summed.get(key, 0) + n
        assert got == expected, field
    for symbol in last:
        assert together.score("binance", symbol) == alone.score("binance", symbol)


def test_bar_checks() -> None:
    monitor = QualityMonitor()
    assert failed(monitor.check_bars([bar()])) == {}
    assert failed(monitor.check_bars([bar(1, high="104")])) == {q.CHECK_BAR_OHLC: 1}
    assert failed(monitor.check_bars([bar(2, low="101", vwap=102.0)])) == {q.CHECK_BAR_OHLC: 1}
    assert failed(monitor.check_bars([bar(3, buy_volume="1.1")])) == {q.CHECK_BAR_VOLUME: 1}
    # exact: one unit in the last place is a failure; equal values in other decimal places are not
    assert failed(monitor.check_bars([bar(4, buy_volume="1.0000000000001")])) == {q.CHECK_BAR_VOLUME: 1}
    assert failed(monitor.check_bars([bar(4, buy_volume="1.000000", sell_volume="2.0")])) == {}
    assert failed(monitor.check_bars([bar(4, volume="0", buy_volume="0", sell_volume="0")])) == {
        q.CHECK_BAR_VOLUME: 1
    }
    assert anomalies(monitor.check_bars([bar(5, trade_count=0)])) == {q.ANOMALY_EMPTY_BAR: 1}
    assert anomalies(monitor.check_bars([bar(6, vwap=89.0)])) == {q.ANOMALY_VWAP: 1}


def test_missing_bars_is_info_only() -> None:
    monitor = QualityMonitor()
    monitor.check_bars([bar(0)])
    contiguous = monitor.check_bars([bar(1)])
    assert contiguous.passed[q.CHECK_BAR_CONTINUITY] == 1 and not contiguous.anomalies
    gap = monitor.check_bars([bar(5)])
    assert gap.passed[q.CHECK_BAR_CONTINUITY] == 1 and not gap.failed
    assert anomalies(gap) == {q.ANOMALY_MISSING_BARS: 1}
    other_tf = msgspec.structs.replace(bar(9), timeframe="5m")
    assert q.CHECK_BAR_CONTINUITY not in monitor.check_bars([other_tf]).passed
    assert monitor.score("binance", "BTC-USDT") == 1.0


def test_score_is_a_rolling_pass_ratio_per_symbol() -> None:
    monitor = QualityMonitor(window=10)
    assert monitor.score("binance", "BTC-USDT") == 1.0
    check(monitor, trade(1, "nan"))  # 3 results, 1 failed
    assert monitor.score("binance", "BTC-USDT") == 2 / 3
    check(monitor, trade(2))  # 4 clean results (no price jump check: the last price was invalid)
    assert monitor.score("binance", "BTC-USDT") == 6 / 7
    check(monitor, trade(3))  # 5 more: the failure is no longer among the last 10
    assert monitor.score("binance", "BTC-USDT") == 1.0
    assert monitor.score("binance", "ETH-USDT") == 1.0


def test_labels_are_bounded_constants() -> None:
    monitor = QualityMonitor()
    tallies = [
        check(monitor, trade(1, "0", lead_s=100)),
        monitor.check_bars([bar(0, high="1", trade_count=0)]),
    ]
    for tally in tallies:
        assert set(tally.passed) | set(tally.failed) <= set(q.CHECKS)
        assert {anomaly for _, _, anomaly in tally.anomalies} <= set(q.ANOMALY_TYPES)
    assert len(set(q.CHECKS)) == len(q.CHECKS) and len(set(q.ANOMALY_TYPES)) == len(q.ANOMALY_TYPES)
