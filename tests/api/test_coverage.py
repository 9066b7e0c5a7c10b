"""GET /api/v1/coverage: a symbol's gaps, repairs and unverifiable intervals as stored."""

from __future__ import annotations

import httpx

from core.types import CoverageEvent, CoverageKind
from storage.sqlite import SQLiteStore

T0 = 1_704_067_200_000_000_000  # 2024-01-01T00:00:00Z
S = 1_000_000_000


async def test_coverage_lists_events_in_a_window_with_exact_times(
    client: httpx.AsyncClient, store: SQLiteStore
) -> None:
    gap = CoverageEvent("binance", "BTC-USDT", "BTCUSDT", CoverageKind.GAP, T0 + 1 * S, T0 + 3 * S,
                        T0 + 4 * S, 1001, 1007, 7, "repair pending")  # fmt: skip
    repaired = CoverageEvent("binance", "BTC-USDT", "BTCUSDT", CoverageKind.REPAIRED, T0 + 1 * S,
                             T0 + 3 * S, T0 + 5 * S, 1001, 1007, 7, "repaired later")  # fmt: skip
    later = CoverageEvent("binance", "BTC-USDT", "BTCUSDT", CoverageKind.ABANDONED, T0 + 600 * S,
                          T0 + 660 * S, T0 + 900 * S, 2000, 2001, 2)  # fmt: skip
    await store.insert_coverage([gap, repaired, later])
    response = await client.get("/api/v1/coverage", params={"symbol": "btcusdt"})
    assert response.status_code == 200
    body = response.json()
    assert (body["exchange"], body["symbol"], body["count"]) == ("binance", "BTC-USDT", 3)
    assert body["events"][0] == {
        "kind": "gap",
        "start": "2024-01-01T00:00:01.000Z",
        "start_ns": T0 + S,
        "end": "2024-01-01T00:00:03.000Z",
        "end_ns": T0 + 3 * S,
        "first_sequence": 1001,
        "last_sequence": 1007,
        "trades": 7,
        "detail": "repair pending",
        "recorded": "2024-01-01T00:00:04.000Z",
    }
    window = {"symbol": "BTC-USDT", "start": "2024-01-01T00:05:00Z"}
    assert [e["kind"] for e in (await client.get("/api/v1/coverage", params=window)).json()["events"]] == [
        "abandoned"
    ]
    bad = await client.get("/api/v1/coverage", params={"symbol": "BTC-USDT", "start": "yesterday"})
    assert bad.status_code == 422
