"""The OpenAPI document declares every query parameter's limits and formats, so a client can validate a
request before sending it: types without null, lengths, patterns, minimum and maximum, the settings'
defaults and limits; and the values it declares valid are served."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.app import create_app
from api.errors import InvalidParameter
from api.params import TIME_PATTERN, parse_time
from api.settings import ApiSettings
from storage.memory_cache import MemoryCache

PATTERNED = {"exchange", "symbol", "timeframe", "start", "end"}


def _document(api_settings: ApiSettings) -> dict[str, Any]:
    return create_app(None, MemoryCache(), settings=api_settings).openapi()  # type: ignore[arg-type]


def _parameters(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (path, parameter)
        for path, operations in document["paths"].items()
        for operation in operations.values()
        for parameter in operation.get("parameters", [])
    ]


def test_every_query_parameter_declares_its_type_and_bounds() -> None:
    parameters = _parameters(_document(ApiSettings()))
    assert len(parameters) >= 20
    for path, parameter in parameters:
        schema, where = parameter["schema"], f"{path} {parameter['name']}"
        assert parameter["in"] == "query", where
        assert "anyOf" not in schema and schema["type"] in {"string", "integer", "boolean"}, where
        assert not any(key.startswith("x-") for key in schema), where
        if schema["type"] == "string":
            assert 1 <= schema["maxLength"] <= 64, where
        if schema["type"] == "integer":
            assert schema["minimum"] == 1 and schema["maximum"] >= schema["default"], where
        if parameter["name"] in PATTERNED:
            re.compile(schema["pattern"])
            assert schema["pattern"].startswith("^") and schema["pattern"].endswith("$"), where


def test_limits_and_defaults_come_from_the_settings() -> None:
    document = _document(
        ApiSettings(
            max_bars_limit=77,
            default_bars_limit=7,
            max_trades_limit=9,
            default_trades_limit=9,
            default_exchange="okx",
            default_timeframe="5m",
        )
    )
    declared = {(path, p["name"]): p["schema"] for path, p in _parameters(document)}
    assert (declared["/api/v1/bars", "limit"]["maximum"], declared["/api/v1/bars", "limit"]["default"]) == (
        77,
        7,
    )
    assert declared["/api/v1/indicators", "limit"]["maximum"] == 77
    assert declared["/api/v1/trades", "limit"]["maximum"] == 9
    assert declared["/api/v1/bars", "exchange"]["default"] == "okx"
    assert declared["/api/v1/bars", "timeframe"]["default"] == "5m"
    assert "default" not in declared["/api/v1/feeds", "exchange"]  # absent there means every exchange
    assert "2262-04-11T23:47:16.854Z" in declared["/api/v1/bars", "start"]["description"]


async def test_the_served_document_is_the_completed_one(client: httpx.AsyncClient) -> None:
    served = (await client.get("/openapi.json")).json()
    limit = next(p for _, p in _parameters(served) if p["name"] == "limit")
    assert limit["schema"]["maximum"] in (5000, 1000)
    assert "anyOf" not in limit["schema"]


@given(st.from_regex(TIME_PATTERN, fullmatch=True))
@settings(max_examples=300, deadline=None, database=None, derandomize=True)
def test_a_time_of_the_declared_form_is_parsed_or_refused_for_its_value(text: str) -> None:
    """The pattern admits only forms the parser reads; a refusal can only be about the value (a month 13,
    a time out of range), and is always InvalidParameter (a 422), never another exception (a 500)."""
    try:
        parse_time("start", text)
    except InvalidParameter as exc:
        assert "outside" in exc.message or "invalid time" in exc.message


@pytest.mark.parametrize(
    "text", ["2024-01-01", "2024-01-01T00:00", "2024-01-01T00:00:00.123456+05:30", "1704067200000", "0"]
)
def test_declared_forms_are_read(text: str) -> None:
    assert re.fullmatch(TIME_PATTERN, text)
    assert parse_time("start", text) is not None
