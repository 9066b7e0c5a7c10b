"""A REST backfill is a span (tracing on) and its records are `trade_gap` and `backfill` events."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON

from collectors.adapter import Gap
from collectors.gaps import GapTracker
from collectors.repair import GapRepair
from collectors.session_metrics import SessionMetrics
from core.types import Side, Trade
from monitoring import tracing
from monitoring.logger import LoggingSetup
from monitoring.metrics import PlatformMetrics
from tests.monitoring.conftest import current_file, read_json

T0 = 1_700_000_000_000_000_000


class Rest:
    """A backfiller that serves the gap's trades (the REST conversation is tested elsewhere)."""

    async def fetch_gap(self, gap: Gap) -> list[Trade]:
        return [
            Trade("binance", "BTC-USDT", gap.raw_symbol, str(s), s, "1.0", "1.0", Side.BUY, T0 + s, T0 + s)
            for s in range(gap.first, gap.last + 1)
        ]

    async def fetch_recent(self, raw_symbol: str) -> list[Trade] | None:
        return []


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.configure_tracing("collector", exporter=exporter, sampler=ALWAYS_ON)
    yield exporter
    tracing.shutdown_tracing()


async def test_a_backfill_is_a_span_and_its_records_are_events(
    spans: InMemorySpanExporter, configure_logging: Callable[..., LoggingSetup], metrics: PlatformMetrics
) -> None:
    setup = configure_logging(json=True)
    tracker = GapTracker()
    tracker.observe("BTCUSDT", 10)
    gap = tracker.observe("BTCUSDT", 14)
    assert isinstance(gap, Gap)
    repair = GapRepair(
        tracker,
        Rest(),  # type: ignore[arg-type]
        SessionMetrics(metrics, "binance", {"BTCUSDT": "BTC-USDT"}, 1),
        exchange="binance",
        canonical={"BTCUSDT": "BTC-USDT"},
    )
    recovered, _ = await repair.repair(gap)
    assert [t.sequence for t in recovered] == [11, 12, 13]
    (span,) = [s for s in spans.get_finished_spans() if s.name == "collector.backfill"]
    assert span.attributes == {
        "exchange": "binance",
        "symbol": "BTCUSDT",
        "first_sequence": 11,
        "last_sequence": 13,
        "missing": 3,
        "recovered": 3,
    }
    events = {r["event_type"]: r for r in read_json(current_file(setup.app_file)) if "event_type" in r}
    assert events["trade_gap"]["missing"] == 3 and events["trade_gap"]["level"] == "WARNING"
    assert events["trade_gap"]["first_sequence"] == 11 and events["trade_gap"]["exchange"] == "binance"
    assert events["backfill"]["recovered"] == 3 and events["backfill"]["symbol"] == "BTCUSDT"
