"""Property-based requests generated from the API's own OpenAPI document (schemathesis: values that match
each parameter's declared schema, and values that break it), sent over HTTP to a real server over each
real store: whatever the request, the answer is never a 5xx, and a refusal has the JSON error shape."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from api.app import create_app
from storage.memory_cache import MemoryCache
from tests.api.live import LiveApi

EXAMPLES = 120
# The document as a client downloads it; the store is never called while building it.
SCHEMA = schemathesis.openapi.from_dict(create_app(None, MemoryCache()).openapi())  # type: ignore[arg-type]
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]
# Negative cases break a parameter's schema: operations without parameters have none.
CASES = [
    pytest.param(op, mode, id=f"{op.method.upper()} {op.path} {mode.value}")
    for op in OPERATIONS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE or len(op.query)
]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    with LiveApi(tmp_path_factory.mktemp("fuzz"), postgres=request.param == "postgres") as api:
        yield api


@pytest.mark.parametrize(("operation", "mode"), CASES)
def test_no_request_gets_a_5xx(
    live: LiveApi, operation: schemathesis.APIOperation, mode: GenerationMode
) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def answer_is_never_5xx(case: schemathesis.Case) -> None:
        response = case.call(base_url=live.url, timeout=10)
        where = f"{case.method} {case.path} {case.query!r} -> {response.status_code} {response.text[:300]}"
        assert response.status_code < 500, where
        if response.status_code >= 400 and case.path.startswith("/api/"):
            assert "error" in response.json(), where

    answer_is_never_5xx()


def _iso(moment: datetime, offset_minutes: int) -> str:
    zone = timezone(timedelta(minutes=offset_minutes))
    return moment.replace(tzinfo=zone).isoformat()


# Any time a client could write: every year from 1 to 9999 in any offset, and epoch ms far either side.
ANY_TIME = st.one_of(
    st.builds(_iso, st.datetimes(), st.integers(-14 * 60, 14 * 60)),
    st.datetimes().map(lambda m: m.isoformat()),
    st.integers(-(10**17), 10**17).map(str),
    st.integers(9_223_372_036_000, 9_223_372_037_000).map(str),  # around the stores' limit, in ms
)


@pytest.mark.parametrize("path", ["/api/v1/bars", "/api/v1/indicators", "/api/v1/coverage"])
def test_any_time_is_served_or_refused_naming_it(live: LiveApi, path: str) -> None:
    http = httpx.Client(base_url=live.url, timeout=10)

    @given(name=st.sampled_from(["start", "end"]), value=ANY_TIME)
    @settings(max_examples=EXAMPLES * 2, deadline=None, database=None, derandomize=True)
    def served_or_refused(name: str, value: str) -> None:
        response = http.get(path, params={"symbol": "BTCUSDT", name: value})
        assert response.status_code in (200, 422), (name, value, response.status_code, response.text[:200])
        if response.status_code == 422:
            assert response.json()["error"]["parameter"] == name

    with http:
        served_or_refused()
