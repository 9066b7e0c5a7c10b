"""The ONE contract every registered adapter keeps, checked from its golden fixtures.

Each adapter in `collectors.registry.ADAPTERS` has a folder under tests/fixtures/venues/ (format in the
README there): its symbols body, frames and the exact trades they make, malformed frames and the error
type each raises, a repair conversation request by request (for venues that serve only their latest
trades, recent-trade conversations instead), and REST answers to classify. On top, the capabilities
must agree with what the adapter does, and randomly damaged frames and bodies may only give valid
trades or ParseError / ReconnectRequested. Recorded sessions: test_recorded_sessions.py.
"""

from __future__ import annotations

import contextlib
import json
import random
import zlib
from collections import defaultdict
from typing import Any

import msgspec
import pytest

from collectors.adapter import (
    PARSE_ERROR_TYPES,
    ExchangeAdapter,
    Gap,
    HeartbeatKind,
    ReconnectRequested,
    RepairKind,
    RestRequest,
    RestVerdict,
    SequenceKind,
)
from collectors.registry import ADAPTERS, create_adapter
from collectors.symbols import canonical_spelling
from collectors.values import is_positive_decimal, is_sequence, is_trade_id
from core.errors import ParseError
from core.types import INT64_MAX, Side, Trade
from tests.collectors import venue_fixtures as vf
from tests.collectors.mutations import mutate

VENUES = sorted(ADAPTERS)
RECENT_VENUES = [n for n in VENUES if create_adapter(n).capabilities.repair is RepairKind.RECENT_ONLY]
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
def test_prices_and_sizes_are_the_exact_text_sent(name: str) -> None:
    """Strings or JSON numbers (Kraken), a trade's price and quantity are the characters of the frame:
    '0.10000000' stays so (a float would make it '0.1'), '30000' is not '30000.0'."""
    adapter = vf.adapter(name)
    for line, frame in enumerate(vf.load(name).frames, start=1):
        trades = adapter.parse(frame, vf.ts_recv(line))
        if trades:
            sent = _leaves(json.loads(frame, parse_int=str, parse_float=str))
            assert all(t.price in sent and t.quantity in sent for t in trades), f"line {line}"


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
    assert (request is None) is (repair["bad_bodies"] == []), "bad bodies for venues that repair gaps"
    for entry in repair["bad_bodies"]:
        with pytest.raises(ParseError) as caught:
            adapter.repair_page(gap, request, vf.body_bytes(entry), repair["ts_recv"])  # type: ignore[arg-type]
        assert caught.value.error_type == entry["error"], entry["why"]


@pytest.mark.parametrize("name", RECENT_VENUES)
def test_recent_trade_conversations(name: str) -> None:
    """RECENT_ONLY venues: the request for a symbol's latest trades and what its answer holds, oldest
    first and backfilled, whatever order the venue answers in."""
    recent = vf.load(name).recent
    adapter = vf.adapter(name)
    assert recent is not None, "recent.json is required for a RECENT_ONLY venue"
    for conversation in recent["conversations"]:
        raw, why = conversation["raw_symbol"], conversation["why"]
        request = adapter.recent_request(raw)
        assert request is not None and request.method == "GET"
        expected = vf.request(conversation["request"])
        assert (request.path, request.params) == (expected.path, expected.params), why
        body = vf.body_bytes(conversation)
        assert adapter.classify_response(200, {}, body).verdict is RestVerdict.OK
        trades = adapter.parse_recent(raw, body, recent["ts_recv"])
        assert trades == [vf.trade(t) for t in conversation["trades"]], why
        _check_trades(adapter, trades, recent["ts_recv"], backfilled=True)
        assert [t.ts_event for t in trades] == sorted(t.ts_event for t in trades), why


@pytest.mark.parametrize("name", RECENT_VENUES)
def test_bad_recent_trade_bodies_raise_parse_error_of_their_type(name: str) -> None:
    recent = vf.load(name).recent
    adapter = vf.adapter(name)
    assert recent is not None and recent["bad_bodies"]
    for entry in recent["bad_bodies"]:
        with pytest.raises(ParseError) as caught:
            adapter.parse_recent(entry["raw_symbol"], vf.body_bytes(entry), recent["ts_recv"])
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
    venue = vf.load(name)
    caps = adapter.capabilities
    gap = vf.gap(venue.repair["repairs"][0]["gap"])
    request = adapter.repair_request(gap)
    if caps.repair in (RepairKind.NONE, RepairKind.RECENT_ONLY):
        assert request is None  # no gap can be repaired by its ids
    else:
        assert request is not None and str(caps.repair_page_size) in dict(request.params).values()
        _check_repair_addressing(adapter, gap, request)
    if caps.repair in (RepairKind.ID_CURSOR, RepairKind.TIME_WINDOW):
        assert caps.sequence is SequenceKind.CONTIGUOUS  # a gap can only be found by sequence
    recent = {raw: adapter.recent_request(raw) for raw in venue.instruments["listed"]}
    if caps.repair is RepairKind.RECENT_ONLY:
        assert venue.recent is not None
        for raw, req in recent.items():
            values = dict(req.params).values() if req is not None else ()
            assert raw in values and str(caps.repair_page_size) in values, raw
    else:
        assert venue.recent is None and set(recent.values()) == {None}
    if caps.sequence is SequenceKind.NONE:
        parsed = [t for n, frame in enumerate(venue.frames, 1) for t in adapter.parse(frame, vf.ts_recv(n))]
        assert parsed and all(t.sequence is None for t in parsed), "no sequence is invented"
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
    assert max(map(len, venue.frames)) < caps.max_frame_bytes
    assert set(adapter.default_symbols) <= set(venue.instruments["listed"]), "raw symbols, listed"


def _check_repair_addressing(adapter: ExchangeAdapter, gap: Gap, request: RestRequest) -> None:
    """ID_CURSOR repairs ask by the gap's ids and ignore its times; TIME_WINDOW repairs ask from the time
    before the gap (a value at most a second earlier) and not by ids."""
    by_time = adapter.repair_request(
        msgspec.structs.replace(gap, after_ns=gap.after_ns - 10**9, before_ns=gap.before_ns + 10**9)
    )
    by_ids = adapter.repair_request(msgspec.structs.replace(gap, first=gap.first + 1, last=gap.last + 1))
    if adapter.capabilities.repair is RepairKind.TIME_WINDOW:
        assert gap.after_ns > 0, "the first fixture gap of a TIME_WINDOW venue knows the time before it"
        assert by_time != request and by_ids == request
        assert any(v.isdigit() and gap.after_ns - 10**9 <= int(v) <= gap.after_ns for _, v in request.params)
    else:
        assert by_ids != request and by_time == request


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
    for _ in range(FUZZ_ROUNDS // 3 if pages else 0):
        gap, page = rng.choice(pages)
        body = mutate(rng, vf.body_bytes(page))
        adapter.classify_response(rng.choice((200, 400, 403, 418, 429, 500)), {"Retry-After": "x"}, body)
        try:
            result = adapter.repair_page(gap, vf.request(page["request"]), body, repair["ts_recv"])
        except ParseError as exc:
            assert exc.error_type in PARSE_ERROR_TYPES
            continue
        _check_trades(adapter, result.trades, repair["ts_recv"], backfilled=True)
        assert all(gap.first <= t.sequence <= gap.last for t in result.trades)  # type: ignore[operator]
    _fuzz_recent_bodies(adapter, rng)
    for _ in range(FUZZ_ROUNDS // 6):
        try:
            infos = adapter.parse_symbols(mutate(rng, vf.load(name).symbols_body))
        except ParseError as exc:
            assert exc.error_type in PARSE_ERROR_TYPES
            continue
        assert all(i.exchange == name and i.symbol == canonical_spelling(i.symbol) for i in infos)


def _fuzz_recent_bodies(adapter: ExchangeAdapter, rng: random.Random) -> None:
    """Damaged recent-trade answers (RECENT_ONLY venues): valid backfilled trades of the symbol asked
    for, oldest first, or ParseError."""
    recent = vf.load(adapter.name).recent
    conversations = recent["conversations"] if recent else []
    for _ in range(FUZZ_ROUNDS // 3 if conversations else 0):
        conversation = rng.choice(conversations)
        body = mutate(rng, vf.body_bytes(conversation))
        adapter.classify_response(rng.choice((200, 403, 429, 500)), {"Retry-After": "x"}, body)
        try:
            trades = adapter.parse_recent(conversation["raw_symbol"], body, recent["ts_recv"])  # type: ignore[index]
        except ParseError as exc:
            assert exc.error_type in PARSE_ERROR_TYPES
            continue
        _check_trades(adapter, trades, recent["ts_recv"], backfilled=True)  # type: ignore[index]
        assert {t.raw_symbol for t in trades} <= {conversation["raw_symbol"]}
        assert [t.ts_event for t in trades] == sorted(t.ts_event for t in trades)


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
