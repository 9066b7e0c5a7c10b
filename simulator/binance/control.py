"""JSON control messages on an open Binance market-stream socket: SUBSCRIBE, UNSUBSCRIBE,
LIST_SUBSCRIPTIONS, SET_PROPERTY and GET_PROPERTY, answered the way Binance documents it.

Success: `{"result":null,"id":1}` (or the listed value). Errors: `{"code":N,"msg":"..."}` with Binance's
documented texts (code 0 unknown property, 1 invalid value type, 2 invalid request, 3 invalid JSON). An
error also carries `"id"` when the request's id could be read (documented for code 0; the simulator does it
for every code so a client can correlate). Pure logic: no sockets.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

import msgspec

from simulator.binance.streams import MAX_STREAMS, Stream, parse_stream

METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")
_ALLOWED_KEYS = frozenset(("method", "params", "id"))
_STRING_ID = re.compile(r"^[A-Za-z0-9\-]{1,36}$")
_INT64 = (-(2**63), 2**63 - 1)
_NO_ID = object()


class Subscriptions:
    """A connection's streams in subscription order, and whether payloads are wrapped (combined)."""

    def __init__(self, streams: Iterable[Stream] = (), *, combined: bool = False) -> None:
        self._streams: dict[str, Stream] = {s.name: s for s in streams}
        self.combined = combined
        self.version = 0  # bumped on every change, so a sender can rebuild its routing table

    def __len__(self) -> int:
        return len(self._streams)

    @property
    def names(self) -> list[str]:
        return list(self._streams)

    @property
    def streams(self) -> list[Stream]:
        return list(self._streams.values())

    def add(self, streams: Iterable[Stream]) -> bool:
        """Subscribe; False (and no change) if the connection would exceed MAX_STREAMS."""
        new = {s.name: s for s in streams if s.name not in self._streams}
        if len(self._streams) + len(new) > MAX_STREAMS:
            return False
        self._streams.update(new)
        self.version += 1
        return True

    def remove(self, names: Iterable[str]) -> None:
        for name in names:
            self._streams.pop(name, None)
        self.version += 1

    def set_combined(self, value: bool) -> None:
        self.combined = value
        self.version += 1


def _error(code: int, msg: str, request_id: object = _NO_ID) -> bytes:
    body: dict[str, Any] = {"code": code, "msg": msg}
    if request_id is not _NO_ID:
        body["id"] = request_id
    return msgspec.json.encode(body)


def _result(result: object, request_id: object) -> bytes:
    return msgspec.json.encode({"result": result, "id": request_id})


def _valid_id(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return _INT64[0] <= value <= _INT64[1]
    return isinstance(value, str) and bool(_STRING_ID.match(value))


def handle_control(raw: str | bytes, subs: Subscriptions) -> bytes:
    """Apply one control message to `subs` and return the response frame's JSON."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        request = json.loads(text)
    except UnicodeDecodeError:
        return _error(3, "Invalid JSON: expected value at line 1 column 1")
    except json.JSONDecodeError as exc:
        return _error(3, f"Invalid JSON: expected value at line {exc.lineno} column {exc.colno}")
    except RecursionError:
        return _error(3, "Invalid JSON: recursion limit exceeded at line 1 column 1")
    column = len(text.rstrip())
    if not isinstance(request, dict):
        return _error(2, f"Invalid request: invalid type, expected struct Request at line 1 column {column}")
    if "method" not in request:
        return _error(2, f"Invalid request: missing field `method` at line 1 column {column}")
    method = request["method"]
    if method not in METHODS:
        shown = method if isinstance(method, str) else json.dumps(method)
        expected = ", ".join(f"`{m}`" for m in METHODS)
        return _error(
            2, f"Invalid request: unknown variant `{shown}`, expected one of {expected} at line 1 column 28"
        )
    if "id" not in request or not _valid_id(request["id"]):
        return _error(2, "Invalid request: request ID must be an unsigned integer")
    if set(request) - _ALLOWED_KEYS:
        return _error(2, "Invalid request: too many parameters")
    return _dispatch(method, request.get("params"), request["id"], subs)


def _dispatch(method: str, params: object, request_id: object, subs: Subscriptions) -> bytes:
    if method == "LIST_SUBSCRIPTIONS":
        return _result(subs.names, request_id)
    if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
        return _subscription(method, params, request_id, subs)
    return _property(method, params, request_id, subs)


def _subscription(method: str, params: object, request_id: object, subs: Subscriptions) -> bytes:
    if not isinstance(params, list):
        return _error(2, "Invalid request: missing field `params`", request_id)
    parsed = [parse_stream(p) for p in params]
    streams = [s for s in parsed if s is not None]
    if len(streams) != len(parsed):
        return _error(2, "Invalid request: invalid stream", request_id)
    if method == "UNSUBSCRIBE":
        subs.remove(s.name for s in streams)
    elif not subs.add(streams):
        return _error(
            2, f"Invalid request: too many streams, at most {MAX_STREAMS} per connection", request_id
        )
    return _result(None, request_id)


def _property(method: str, params: object, request_id: object, subs: Subscriptions) -> bytes:
    if not isinstance(params, list) or not params or not isinstance(params[0], str):
        return _error(2, "Invalid request: property name must be a string")
    expected = 2 if method == "SET_PROPERTY" else 1
    if len(params) > expected:
        return _error(2, "Invalid request: too many parameters")
    if params[0] != "combined":
        return _error(0, "Unknown property", request_id)
    if method == "GET_PROPERTY":
        return _result(subs.combined, request_id)
    value = params[1] if len(params) == 2 else None
    if not isinstance(value, bool):
        return _error(1, "Invalid value type: expected Boolean")
    subs.set_combined(value)
    return _result(None, request_id)
