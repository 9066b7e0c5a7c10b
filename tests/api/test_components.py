"""The limiter, the symbol directory and time parsing on their own, with an injected clock."""

from __future__ import annotations

import asyncio

import pytest

from api.errors import InvalidParameter, NotFound
from api.params import format_time, parse_time
from api.ratelimit import TokenBucketLimiter
from api.schemas import FeaturesOut, IndicatorsOut
from api.symbols import SymbolDirectory
from core.types import Features, Indicators, SymbolInfo
from storage.sqlite import SQLiteStore
from tests.api.conftest import Sample


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_burst_then_refills_at_rate() -> None:
    clock = FakeClock()
    limiter = TokenBucketLimiter(2.0, 3, monotonic=clock)
    assert [limiter.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("a") == pytest.approx(0.5)
    clock.now += 0.5
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") == pytest.approx(0.5)
    assert limiter.acquire("b") == 0.0  # another client has its own bucket


def test_idle_buckets_are_evicted_and_memory_is_capped() -> None:
    clock = FakeClock()
    limiter = TokenBucketLimiter(1.0, 2, max_clients=3, monotonic=clock)
    for ip in ("a", "b", "c", "d", "e"):
        limiter.acquire(ip)
    assert len(limiter) == 3  # capped: the least recently seen went first
    clock.now += 2.0  # long enough for every bucket to be full again: all are forgettable
    limiter.acquire("f")
    assert len(limiter) == 1


def test_a_refused_client_stays_refused_until_refilled() -> None:
    clock = FakeClock()
    limiter = TokenBucketLimiter(1.0, 1, max_clients=1, monotonic=clock)
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") == pytest.approx(1.0)
    clock.now += 0.5
    assert limiter.acquire("a") > 0.0


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("1704067200000", 1_704_067_200_000_000_000),
        ("2024-01-01T00:00:00Z", 1_704_067_200_000_000_000),
        ("2024-01-01T00:00:00.250Z", 1_704_067_200_250_000_000),
        ("2024-01-01", 1_704_067_200_000_000_000),
        ("2024-01-01T02:00:00+02:00", 1_704_067_200_000_000_000),
        ("2024-01-01T02:00:00 02:00", 1_704_067_200_000_000_000),  # '+' decoded as a space
        ("0", 0),
    ],
)
def test_parse_time(text: str, ns: int) -> None:
    assert parse_time("start", text) == ns


def test_parse_time_rejects_out_of_range_with_the_parameter_name() -> None:
    with pytest.raises(InvalidParameter) as err:
        parse_time("end", "99999999999999999")
    assert err.value.parameter == "end"
    assert err.value.message.startswith("end: ")


def test_format_time_is_exact_to_the_millisecond() -> None:
    assert format_time(1_704_067_201_123_999_999) == "2024-01-01T00:00:01.123Z"
    assert format_time(0) == "1970-01-01T00:00:00.000Z"


async def test_directory_reloads_for_a_new_symbol_at_most_once_per_interval(store: SQLiteStore) -> None:
    clock = FakeClock()
    directory = SymbolDirectory(store, ttl=60.0, min_reload=1.0, monotonic=clock)
    assert (await directory.resolve("binance", "btcusdt")).symbol == "BTC-USDT"
    await store.upsert_symbols([SymbolInfo("binance", "SOL-USDT", "SOLUSDT", "SOL", "USDT")])
    with pytest.raises(NotFound):  # loaded moments ago: no reload yet
        await directory.resolve("binance", "SOLUSDT")
    clock.now += 1.0
    assert (await directory.resolve("binance", "SOLUSDT")).symbol == "SOL-USDT"


async def test_directory_concurrent_first_loads_share_one_read(store: SQLiteStore, sample: Sample) -> None:
    before = sample("db_queries_total", operation="select_symbols", status="ok") or 0.0
    directory = SymbolDirectory(store)
    found = await asyncio.gather(*(directory.resolve("binance", "ETHUSDT") for _ in range(20)))
    assert {info.symbol for info in found} == {"ETH-USDT"}
    assert sample("db_queries_total", operation="select_symbols", status="ok") == before + 1


def test_response_models_mirror_every_indicator_and_feature_field() -> None:
    """IndicatorsOut and FeaturesOut copy the core field lists for the OpenAPI schema; a field added to
    the core types must not be dropped silently on the way out."""
    assert tuple(IndicatorsOut.model_fields) == Indicators.__struct_fields__
    assert tuple(FeaturesOut.model_fields) == Features.__struct_fields__
