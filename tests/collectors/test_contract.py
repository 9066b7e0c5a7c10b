"""The ONE contract every registered adapter keeps, checked from its golden fixtures.

Each adapter in `collectors.registry.ADAPTERS` has a folder under tests/fixtures/venues/ (format in the
README there): its symbols body, frames and the exact trades they make, malformed frames and the error
type each raises, a repair conversation request by request, and REST answers to classify. On top, the
capabilities must agree with what the adapter does, and randomly damaged frames and bodies may only
give valid trades or ParseError / ReconnectRequested. Recorded sessions: test_recorded_sessions.py.
"""

from __future__ import annotations

import contextlib
import json
import random
import zlib
from collections import defaultdict
from typing import Any

import pytest

from collectors.adapter import (
    PARSE_ERROR_TYPES,
    ExchangeAdapter,
    HeartbeatKind,
    ReconnectRequested,
    RepairKind,
    RestVerdict,
    SequenceKind,
)
from collectors.registry import ADAPTERS
from collectors.symbols import canonical_spelling
from collectors.values import INT64_MAX, is_positive_decimal, is_sequence, is_trade_id
from core.errors import ParseError
from core.types import Side, Trade
from tests.collectors import venue_fixtures as vf
from tests.collectors.mutations import mutate

VENUES = sorted(ADAPTERS)
FUZZ_ROUNDS = 400


def test_every_registered_adapter_has_a_fixture_folder() -> None:
    assert set(ADAPTERS) - vf.fixture_names() == set(), "registered adapters without fixtures"
    assert vf.fixture_names() - set(ADAPTERS) == set(), "fixture folders of no registered adapter"


@pytest.mark.parametrize("name", VENUES)
def test_symbols_body_lists_exactly_the_expected_instruments(name: str) -> None:
    venue = vf.load(name)
    infos = vf.adapter(name).parse_symbols(venue.symbols_body)
    got = {i.raw_symbol: [i.symbol, i.base, i.quote] for i in infos}
    assert got == venue.instruments["listed"]
    assert {i.exchange for i in infos} == {name}
    adapter = vf.adapter(name)
    assert all(adapter.symbol_info(raw) is None for raw in venue.instruments["unlisted"])


@pytest.mark.parametrize("name", VENUES)
def test_resolve_symbol_finds_instruments_by_raw_and_canonical_spellings(name: str) -> None:
    venue = vf.load(name)
    adapter = vf.adapter(name)
    for raw, (canonical, _, _) in venue.instruments["listed"].items():
        for text in (
            raw,
            raw.lower(),
            canonical,
            canonical.lower(),
            canonical.replace("-", "/"),
            f" {canonical} ",
        ):
            info = adapter.resolve_symbol(text)
            assert info is not None and info.raw_symbol == raw, text
        assert adapter.symbol_info(raw) == adapter.resolve_symbol(canonical_spelling(canonical))
    for text, raw in venue.instruments["resolve"].items():
        info = adapter.resolve_symbol(text)
        assert (info.raw_symbol if info else None) == raw, text


@pytest.mark.parametrize("name", VENUES)
def test_connections_use_the_expected_url_subscriptions_and_ping(name: str) -> None:
    adapter = vf.adapter(name)
    connection = vf.load(name).connection
    assert adapter.ping_message() == connection["ping"]
    for case in connection["connections"]:
        assert adapter.ws_url(case["base"], case["symbols"]) == case["url"]
        assert [json.loads(m) for m in adapter.subscribe_messages(case["symbols"])] == case["subscribe"]


@pytest.mark.parametrize("name", VENUES)
def test_frames_parse_to_exactly_the_expected_trades(name: str) -> None:
    venue = vf.load(name)
    adapter = vf.adapter(name)
    expected: dict[int, list[Trade]] = defaultdict(list)
    for fields in venue.trades:
        expected[fields["line"]].append(vf.trade(fields))
    assert max(expected) <= len(venue.frames)
    for line, frame in enumerate(venue.frames, start=1):
        for form in (frame.encode(), frame):
            assert adapter.parse(form, vf.ts_recv(line)) == expected[line], (
                f"line {line} as {type(form).__name__}"
            )
    assert sum(map(len, expected.values())) == len(venue.trades) > 0


@pytest.mark.parametrize("name", VENUES)
def test_trade_ids_round_trip_and_sequences_are_contiguous(name: str) -> None:
    venue = vf.load(name)
    adapter = vf.adapter(name)
    by_symbol: dict[str, list[int]] = defaultdict(list)
    for line, frame in enumerate(venue.frames, start=1):
        leaves = (
            _leaves(json.loads(frame, parse_int=str, parse_float=str)) if frame.startswith("{") else set()
        )
        for trade in adapter.parse(frame.encode(), vf.ts_recv(line)):
            assert trade.trade_id in leaves, f"line {line}: id {trade.trade_id!r} is not the text sent"
            if adapter.capabilities.sequence is SequenceKind.CONTIGUOUS:
                assert trade.sequence is not None and int(trade.trade_id) == trade.sequence
                by_symbol[trade.raw_symbol].append(trade.sequence)
            else:
                assert trade.sequence is None
    for raw, sequences in by_symbol.items():
        assert sequences == list(range(sequences[0], sequences[0] + len(sequences))), raw


@pytest.mark.parametrize("name", VENUES)
def test_malformed_frames_raise_parse_error_of_their_type(name: str) -> None:
    adapter = vf.adapter(name)
    failures = []
    for entry in vf.load(name).malformed:
        assert entry["error"] in PARSE_ERROR_TYPES, entry["why"]
        raw = vf.frame_bytes(entry)
        forms: list[bytes | str] = [raw] if "frame_hex" in entry else [raw, raw.decode()]
        for form in forms:
            try:
                adapter.parse(form, vf.ts_recv(0))
            except ParseError as exc:
                if exc.error_type != entry["error"]:
                    failures.append(f"{entry['why']}: {exc.error_type} ({exc})")
            else:
                failures.append(f"{entry['why']}: no ParseError")
    assert failures == []
    assert {e["error"] for e in vf.load(name).malformed} >= {
        "malformed_json",
        "invalid_value",
        "unknown_symbol",
    }


@pytest.mark.parametrize("name", VENUES)
def test_announced_shutdowns_ask_for_a_reconnect(name: str) -> None:
    adapter = vf.adapter(name)
    for frame in vf.load(name).reconnect:
        with pytest.raises(ReconnectRequested):
            adapter.parse(frame.encode(), vf.ts_recv(0))


@pytest.mark.parametrize("name", VENUES)
def test_repair_conversations_request_by_request(name: str) -> None:
    repair = vf.load(name).repair
    adapter = vf.adapter(name)
    for conversation in repair["repairs"]:
        gap = vf.gap(conversation["gap"])
        request = adapter.repair_request(gap)
        for number, page in enumerate(conversation["pages"], start=1):
            where = f"{conversation['why']}, page {number}"
            assert request is not None, f"{where}: the adapter stopped early"
            assert (request.path, request.params) == (
                page["request"]["path"],
                vf.request(page["request"]).params,
            )
            body = vf.body_bytes(page)
            assert adapter.classify_response(200, {}, body).verdict is RestVerdict.OK
            result = adapter.repair_page(gap, request, body, repair["ts_recv"])
            assert result.trades == [vf.trade(t) for t in page["trades"]], where
            request = result.next
        assert request is None, f"{conversation['why']}: the adapter asks for more than the fixture has"


@pytest.mark.parametrize("name", VENUES)
def test_bad_repair_bodies_raise_parse_error_of_their_type(name: str) -> None:
    repair = vf.load(name).repair
    adapter = vf.adapter(name)
    gap = vf.gap(repair["repairs"][0]["gap"])
    request = adapter.repair_request(gap)
    assert request is not None
    for entry in repair["bad_bodies"]:
        with pytest.raises(ParseError) as caught:
            adapter.repair_page(gap, request, vf.body_bytes(entry), repair["ts_recv"])
        assert caught.value.error_type == entry["error"], entry["why"]


@pytest.mark.parametrize("name", VENUES)
def test_rest_answers_are_classified(name: str) -> None:
    adapter = vf.adapter(name)
    for entry in vf.load(name).repair["answers"]:
        answer = adapter.classify_response(entry["status"], entry["headers"], vf.body_bytes(entry))
        assert answer.verdict.value == entry["verdict"], entry
        if answer.verdict in (RestVerdict.RATE_LIMITED, RestVerdict.BANNED):
            assert answer.retry_after_s == entry["retry_after_s"], entry


@pytest.mark.parametrize("name", VENUES)
def test_capabilities_agree_with_the_adapter(name: str) -> None:
    adapter = vf.adapter(name)
    caps = adapter.capabilities
    gap = vf.gap(vf.load(name).repair["repairs"][0]["gap"])
    request = adapter.repair_request(gap)
    if caps.repair is RepairKind.NONE:
        assert request is None
    else:
        assert request is not None and str(caps.repair_page_size) in dict(request.params).values()
    if caps.repair in (RepairKind.ID_CURSOR, RepairKind.TIME_WINDOW):
        assert caps.sequence is SequenceKind.CONTIGUOUS  # a gap can only be found by sequence
    pings = caps.heartbeat in (HeartbeatKind.APP_PING, HeartbeatKind.CLIENT_PING)
    assert (caps.ping_interval_s is not None and caps.ping_timeout_s is not None) is pings
    assert (adapter.ping_message() is not None) is (caps.heartbeat is HeartbeatKind.APP_PING)
    if pings:
        assert caps.ping_interval_s > 0 and caps.ping_timeout_s > 0  # type: ignore[operator]
    if caps.max_connection_age_s is None:
        assert caps.reconnect_margin_s == 0
    else:
        assert 0 <= caps.reconnect_margin_s < caps.max_connection_age_s
    assert caps.symbols_per_connection >= 1 and caps.max_frame_bytes >= 4096
    assert max(map(len, vf.load(name).frames)) < caps.max_frame_bytes
    assert set(adapter.default_symbols) <= set(vf.load(name).instruments["listed"]), "raw symbols, listed"


@pytest.mark.parametrize("name", VENUES)
def test_subscribing_names_every_symbol_within_the_per_message_limit(name: str) -> None:
    adapter = vf.adapter(name)
    caps = adapter.capabilities
    limit = caps.max_subscriptions_per_message
    symbols = [f"X{i:04d}-Y" for i in range(2 * (limit or 50) + 1)]
    for batch in (symbols[: limit or len(symbols)], symbols):
        messages = adapter.subscribe_messages(batch)
        url = adapter.ws_url(adapter.default_ws_url, batch)
        named = [{s for s in batch if s in m or s.lower() in m} for m in messages]
        assert all(len(n) <= (limit or len(batch)) for n in named)
        assert all(len(m.encode()) < 64 * 1024 for m in messages)
        url_named = {s for s in batch if s in url or s.lower() in url}
        assert set().union(url_named, *named) == set(batch), "every symbol is subscribed"
        if batch is not symbols:
            assert len(messages) <= 1, "one batch of the session is one message"


@pytest.mark.parametrize("name", VENUES)
def test_fuzzed_frames_give_valid_trades_or_parse_errors(name: str) -> None:
    venue = vf.load(name)
    adapter = vf.adapter(name)
    rng = random.Random(zlib.crc32(name.encode()))
    frames = [f.encode() for f in venue.frames + venue.reconnect]
    malformed = [vf.frame_bytes(e) for e in venue.malformed]
    outcomes: dict[str, int] = defaultdict(int)
    for _ in range(FUZZ_ROUNDS):
        data = mutate(rng, rng.choice(frames if rng.random() < 0.75 else malformed))
        forms: list[bytes | str] = [data]
        with contextlib.suppress(UnicodeDecodeError):
            forms.append(data.decode())
        for form in forms:
            outcomes[_outcome(adapter, form)] += 1
    assert outcomes["trades"] and outcomes["parse_error"], outcomes


@pytest.mark.parametrize("name", VENUES)
def test_fuzzed_rest_bodies_give_valid_pages_or_parse_errors(name: str) -> None:
    repair = vf.load(name).repair
    adapter = vf.adapter(name)
    rng = random.Random(zlib.crc32(name.encode()) + 1)
    pages = [(vf.gap(c["gap"]), p) for c in repair["repairs"] for p in c["pages"]]
    for _ in range(FUZZ_ROUNDS // 3):
        gap, page = rng.choice(pages)
        body = mutate(rng, vf.body_bytes(page))
        adapter.classify_response(rng.choice((200, 400, 418, 429, 500)), {"Retry-After": "x"}, body)
        try:
            result = adapter.repair_page(gap, vf.request(page["request"]), body, repair["ts_recv"])
        except ParseError as exc:
            assert exc.error_type in PARSE_ERROR_TYPES
            continue
        _check_trades(adapter, result.trades, repair["ts_recv"], backfilled=True)
        assert all(gap.first <= t.sequence <= gap.last for t in result.trades)  # type: ignore[operator]
    for _ in range(FUZZ_ROUNDS // 6):
        try:
            infos = adapter.parse_symbols(mutate(rng, vf.load(name).symbols_body))
        except ParseError as exc:
            assert exc.error_type in PARSE_ERROR_TYPES
            continue
        assert all(i.exchange == name and i.symbol == canonical_spelling(i.symbol) for i in infos)


def _outcome(adapter: ExchangeAdapter, frame: bytes | str) -> str:
    try:
        trades = adapter.parse(frame, vf.ts_recv(1))
    except ReconnectRequested:
        return "reconnect"
    except ParseError as exc:
        assert exc.error_type in PARSE_ERROR_TYPES
        return "parse_error"
    _check_trades(adapter, trades, vf.ts_recv(1), backfilled=False)
    return "trades" if trades else "nothing"


def _check_trades(adapter: ExchangeAdapter, trades: list[Trade], ts_recv: int, *, backfilled: bool) -> None:
    """What every trade an adapter lets through must be, whatever the input."""
    listed = {s for s in vf.load(adapter.name).instruments["listed"]}
    for t in trades:
        assert type(t) is Trade and t.exchange == adapter.name and t.raw_symbol in listed
        assert adapter.symbol_info(t.raw_symbol).symbol == t.symbol  # type: ignore[union-attr]
        assert is_trade_id(t.trade_id) and isinstance(t.side, Side)
        assert is_positive_decimal(t.price) and is_positive_decimal(t.quantity)
        assert 0 < t.ts_event <= INT64_MAX and t.ts_recv == ts_recv and t.backfilled is backfilled
        contiguous = adapter.capabilities.sequence is SequenceKind.CONTIGUOUS
        assert (t.sequence is not None and is_sequence(t.sequence)) if contiguous else t.sequence is None


def _leaves(value: Any) -> set[str]:
    """Every scalar of a JSON value as the text it was sent as (numbers kept as written)."""
    if isinstance(value, dict):
        return set().union(*map(_leaves, value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*map(_leaves, value)) if value else set()
    return {str(value)}
