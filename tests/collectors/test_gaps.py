"""GapTracker: pure trade-id bookkeeping."""

from __future__ import annotations

import pytest

from collectors.adapter import Gap
from collectors.backoff import Backoff
from collectors.gaps import DUPLICATE, FILLED, NEW, RESTARTED, GapTracker


def test_consecutive_ids_are_new_and_repeats_are_duplicates() -> None:
    tracker = GapTracker()
    assert [tracker.observe("BTCUSDT", i) for i in (10, 11, 12)] == [NEW, NEW, NEW]
    assert tracker.observe("BTCUSDT", 12) is DUPLICATE
    assert tracker.observe("BTCUSDT", 3) is DUPLICATE
    assert tracker.last_sequence("BTCUSDT") == 12


def test_symbols_are_independent() -> None:
    tracker = GapTracker()
    tracker.observe("BTCUSDT", 100)
    assert tracker.observe("ETHUSDT", 5) is NEW
    assert tracker.observe("BTCUSDT", 101) is NEW


def test_a_jump_opens_a_gap_that_stays_pending_until_filled() -> None:
    tracker = GapTracker()
    tracker.observe("BTCUSDT", 10)
    gap = tracker.observe("BTCUSDT", 15)
    assert gap == Gap("BTCUSDT", 11, 14) and gap.size == 4
    assert tracker.observe("BTCUSDT", 16) is NEW
    assert tracker.missing() == [Gap("BTCUSDT", 11, 14)]
    assert [tracker.fill("BTCUSDT", i) for i in (11, 12)] == [True, True]
    assert tracker.fill("BTCUSDT", 12) is False  # backfilled twice: a duplicate
    assert tracker.missing("BTCUSDT") == [Gap("BTCUSDT", 13, 14)]
    assert tracker.missing_count() == 2
    assert tracker.fill("BTCUSDT", 14) is True
    assert tracker.fill("BTCUSDT", 13) is True
    assert tracker.missing() == []
    assert tracker.fill("BTCUSDT", 16) is False  # already live


def test_a_late_live_trade_fills_its_hole_once() -> None:
    tracker = GapTracker()
    tracker.observe("BTCUSDT", 1)
    tracker.observe("BTCUSDT", 5)
    assert tracker.observe("BTCUSDT", 3) is FILLED
    assert tracker.observe("BTCUSDT", 3) is DUPLICATE
    assert tracker.missing() == [Gap("BTCUSDT", 2, 2), Gap("BTCUSDT", 4, 4)]
    assert tracker.fill("BTCUSDT", 3) is False


def test_state_spans_reconnects_and_backfill_ahead_of_live_advances() -> None:
    tracker = GapTracker()
    tracker.observe("BTCUSDT", 100)
    assert tracker.fill("BTCUSDT", 101) is True  # backfilled before the live stream resumed
    assert tracker.observe("BTCUSDT", 101) is DUPLICATE
    assert tracker.observe("BTCUSDT", 150) == Gap("BTCUSDT", 102, 149)


def test_abandon_and_eviction_are_bounded() -> None:
    tracker = GapTracker(max_ranges=2)
    tracker.observe("X", 0)
    for upper in (2, 4, 6):  # three one-id gaps: 1, 3, 5
        tracker.observe("X", upper)
    assert tracker.drain_evicted() == [Gap("X", 1, 1)]
    assert tracker.drain_evicted() == []
    assert tracker.missing() == [Gap("X", 3, 3), Gap("X", 5, 5)]
    assert tracker.abandon(Gap("X", 3, 5)) == 2
    assert tracker.missing() == []
    tracker.observe("X", 20)
    assert tracker.abandon(Gap("X", 10, 12)) == 3
    assert tracker.missing() == [Gap("X", 7, 9), Gap("X", 13, 19)]
    with pytest.raises(ValueError):
        GapTracker(max_ranges=0)


def test_backoff_doubles_to_the_cap_with_jitter_and_resets() -> None:
    backoff = Backoff(0.5, 4.0, jitter=0.5, rng=lambda: 0.0)
    assert [backoff.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    backoff.reset()
    assert backoff.next_delay() == 0.5
    jittered = Backoff(1.0, 8.0, jitter=0.5, rng=lambda: 0.999)
    assert 0.5 <= jittered.next_delay() < 0.51
    with pytest.raises(ValueError):
        Backoff(0.0, 1.0)


def test_registry_names_known_exchanges_and_clients() -> None:
    from collectors.registry import create_adapter, create_connector
    from collectors.transport_picows import PicowsConnector
    from core.errors import ConfigError

    assert create_adapter("Binance").name == "binance"
    assert isinstance(create_connector("picows"), PicowsConnector)
    with pytest.raises(ConfigError, match="binance, binance_delivery, binance_futures"):
        create_adapter("bitmex")
    with pytest.raises(ConfigError, match="picows, websockets"):
        create_connector("aiohttp")


def test_gaps_carry_the_event_times_around_them_and_resume_continues_a_stored_sequence() -> None:
    tracker = GapTracker()
    tracker.resume("BTCUSDT", 41, ts_event=1_000)  # e.g. the last sequence stored before a restart
    assert tracker.observe("BTCUSDT", 42, 2_000) is NEW
    gap = tracker.observe("BTCUSDT", 50, 9_000)
    assert gap == Gap("BTCUSDT", 43, 49, after_ns=2_000, before_ns=9_000)
    tracker.resume("BTCUSDT", 10)  # older than what the tracker knows: ignored
    assert tracker.last_sequence("BTCUSDT") == 50
    assert tracker.fill("BTCUSDT", 45) is True
    assert tracker.missing() == [Gap("BTCUSDT", 43, 44, 2_000, 9_000), Gap("BTCUSDT", 46, 49, 2_000, 9_000)]


def test_a_sequence_far_below_the_resume_point_means_the_venue_started_over() -> None:
    tracker = GapTracker()
    tracker.resume("BTCUSDT", 1_005_000)
    assert tracker.observe("BTCUSDT", 1_000_001) is RESTARTED  # a venue (or simulator) reset
    assert tracker.observe("BTCUSDT", 1_000_002) is NEW
    tracker.resume("ETHUSDT", 500)
    assert tracker.observe("ETHUSDT", 480) is DUPLICATE  # a subscription snapshot replaying recent trades
    assert tracker.observe("ETHUSDT", 501) is NEW
    assert tracker.observe("ETHUSDT", 100) is DUPLICATE  # only the first trade after a resume is judged
