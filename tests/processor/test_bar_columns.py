"""The column path of BarBuilder.extend (processor.decimals.read_column) against the one-by-one path, and
the batch path of QualityMonitor.check_trades against single trades."""

from __future__ import annotations

import random

import pytest

from core.types import Side, Trade
from processor.bar_builder import COLUMN_MIN, BarBuilder
from processor.decimals import DecimalReader, read_column, read_size
from processor.quality import QualityMonitor


def _trade(i: int, price: str, quantity: str, **changes: object) -> Trade:
    fields: dict[str, object] = {
        "exchange": "binance",
        "symbol": "BTC-USDT",
        "raw_symbol": "BTCUSDT",
        "trade_id": str(i),
        "sequence": i,
        "price": price,
        "quantity": quantity,
        "side": Side.BUY if i % 3 else Side.SELL,
        "ts_event": 1_000 + i,
        "ts_recv": 2_000 + i,
    }
    fields.update(changes)
    return Trade(**fields)  # type: ignore[arg-type]


def test_read_column_reads_what_read_size_reads_and_refuses_the_rest() -> None:
    rng = random.Random(7)
    alphabet = "0123456789" * 6 + ". ,-+e_\t\n٣"
    for _ in range(20_000):
        width = rng.randint(2, 6)
        texts = ["".join(rng.choice(alphabet) for _ in range(rng.choice((width, width, width + 1))))]
        for _ in range(rng.randint(1, 4)):
            text = list(texts[0])
            for _ in range(rng.randint(0, 2)):
                text[rng.randrange(len(text))] = rng.choice(alphabet)
            texts.append("".join(text[: rng.choice((len(text), len(text), len(text) - 1))]) or "1")
        column = read_column(texts)
        if column is None:
            continue
        marked, digits, scale = column
        for text, value in zip(texts, marked, strict=True):
            assert read_size(text) == (value - 10**digits, scale), texts


@pytest.mark.parametrize(
    "texts",
    [["1.5 ", "2.55"], ["1.5", "2.5", "3.5,"], ["1..5", "22.5"], [" 1.5", "12.5"], ["1e.5", "12.5"]],
)
def test_read_column_refuses_what_is_not_one_plain_layout(texts: list[str]) -> None:
    assert read_column(texts) is None


def _bars(trades: list[Trade], *, runs: bool) -> tuple[object, ...]:
    builder = BarBuilder("binance", "BTC-USDT", "1m", 0, 1 << 62)
    unreadable: list[Trade] = []
    if runs:
        for first in range(0, len(trades), 3 * COLUMN_MIN):
            builder.extend(trades[first : first + 3 * COLUMN_MIN], DecimalReader(), unreadable)
    else:
        for trade in trades:
            builder.extend([trade], DecimalReader(), unreadable)
    return builder.to_bar(), unreadable


@pytest.mark.parametrize("seed", range(30))
def test_columns_build_the_bar_the_one_by_one_path_builds(seed: int) -> None:
    rng = random.Random(seed)
    layout = rng.choice(((5, 2, 8), (1, 8, 8), (3, 4, 3), (2, 1, 0)))
    trades = []
    for i in range(rng.randint(1, 80)):
        whole, decimals, size_decimals = layout
        price = (
            f"{rng.randint(10 ** (whole - 1), 10**whole - 1)}.{rng.randint(0, 10**decimals - 1):0{decimals}d}"
        )
        quantity = f"{rng.random():.{size_decimals}f}" if size_decimals else str(rng.randint(1, 9))
        if rng.random() < 0.05:
            quantity = rng.choice(("1e-3", "-1.0", quantity + "5"))
        changes: dict[str, object] = {}
        if rng.random() < 0.1:
            changes["ts_event"] = 1_000 + rng.randint(0, 80)
        if rng.random() < 0.1:
            changes["sequence"] = None
        if rng.random() < 0.05:
            changes["backfilled"] = True
        trades.append(_trade(i, price, quantity, **changes))
    assert _bars(trades, runs=True) == _bars(trades, runs=False)


def test_merge_with_a_finer_scale_keeps_the_sums() -> None:
    coarse = BarBuilder("binance", "BTC-USDT", "5m", 0, 300)
    fine = BarBuilder("binance", "BTC-USDT", "1m", 0, 60)
    coarse.add_trade(_trade(1, "10", "1.5"))
    fine.add_trade(_trade(2, "10", "0.25"))
    coarse.merge(fine)
    bar = coarse.to_bar()
    assert (bar.buy_volume, bar.quote_volume) == ("1.75", "17.50")


@pytest.mark.parametrize("seed", range(20))
def test_quality_batches_score_as_single_trades(seed: int) -> None:
    rng = random.Random(seed)
    trades = []
    price = 100.0
    for i in range(200):
        price *= 1.2 if rng.random() < 0.03 else 1.0 + rng.uniform(-0.01, 0.01)
        changes: dict[str, object] = {"symbol": rng.choice(("BTC-USDT", "ETH-USDT"))}
        roll = rng.random()
        if roll < 0.03:
            changes["ts_recv"] = 2_000 + i - 10**11  # future
        elif roll < 0.06:
            changes["ts_recv"] = 2_000 + i + 10**11  # late
        elif roll < 0.09:
            changes["sequence"] = rng.choice((None, i - 5))
        elif roll < 0.12:
            changes["backfilled"] = True
        text = rng.choice(("0", "nan", "abc")) if rng.random() < 0.03 else f"{price:.2f}"
        trades.append(_trade(i, text, "0.5", **changes))
    together, alone = QualityMonitor(), QualityMonitor()
    batch = together.check_trades(trades)
    singles = [alone.check_trades([trade]) for trade in trades]
    assert batch.passed == sum((s.passed for s in singles), type(batch.passed)())
    assert batch.failed == sum((s.failed for s in singles), type(batch.failed)())
    assert batch.anomalies == sum((s.anomalies for s in singles), type(batch.anomalies)())
    future = [t for s in singles for t in s.future]  # the batch lists them by symbol, each in order
    assert sorted(batch.future, key=lambda t: t.symbol) == sorted(future, key=lambda t: t.symbol)
    for symbol in ("BTC-USDT", "ETH-USDT"):
        assert together.score("binance", symbol) == alone.score("binance", symbol)
