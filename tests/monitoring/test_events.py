"""Structured events: event types, sampling of routine ones (counted), security events in their own file
that outlives the app log's retention."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator

import pytest
from loguru import logger
from prometheus_client import CollectorRegistry

from core.errors import ConfigError
from monitoring import events
from monitoring.events import emit, keep, security_event, set_sample_rate
from monitoring.logger import LoggingSetup, flush_logs
from monitoring.metrics import PlatformMetrics
from tests.monitoring.conftest import current_file, read_json

Configure = Callable[..., LoggingSetup]


@pytest.fixture
def fresh() -> Iterator[PlatformMetrics]:
    metrics = PlatformMetrics(CollectorRegistry())
    yield metrics
    set_sample_rate(1.0)


def sampled_out(metrics: PlatformMetrics, event_type: str) -> float:
    return metrics.registry.get_sample_value("log_events_sampled_out_total", {"event_type": event_type}) or 0


def test_events_carry_their_type_and_fields(configure_logging: Configure) -> None:
    setup = configure_logging(json=True)
    assert emit("trade_gap", "gap in {x}", level="WARNING", symbol="BTCUSDT", missing=3)
    record = read_json(current_file(setup.app_file))[-1]
    assert record["event_type"] == "trade_gap" and record["missing"] == 3
    assert record["message"] == "gap in {x}" and record["level"] == "WARNING"
    assert record["function"] == "test_events_carry_their_type_and_fields"


def test_routine_events_are_sampled_and_counted(configure_logging: Configure, fresh: PlatformMetrics) -> None:
    setup = configure_logging(json=True, sample_rate=0.25)
    set_sample_rate(0.25, fresh)
    written = sum(emit("api_response", "r", request_id=f"req-{i}") for i in range(4000))
    assert 800 < written < 1200
    assert sampled_out(fresh, "api_response") == 4000 - written
    assert len(read_json(current_file(setup.app_file))) == written


def test_a_request_and_its_response_are_kept_or_dropped_together(fresh: PlatformMetrics) -> None:
    set_sample_rate(0.5, fresh)
    for i in range(200):
        assert keep("api_request", f"id-{i}", "DEBUG") == keep("api_response", f"id-{i}")


def test_warnings_errors_security_and_unlisted_events_are_never_sampled(fresh: PlatformMetrics) -> None:
    set_sample_rate(0.0, fresh)
    assert not keep("api_response", "x")
    assert keep("api_response", "x", "WARNING") and keep("api_response", "x", "ERROR")
    assert keep("security_rate_limited") and keep("trade_gap") and keep("backfill")
    assert sampled_out(fresh, "api_response") == 1


def test_sample_rate_from_the_environment(
    configure_logging: Configure, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOG_SAMPLE_RATE", "0.1")
    assert configure_logging().sample_rate == 0.1 == events.sample_rate()
    monkeypatch.setenv("LOG_SAMPLE_RATE", "2")
    with pytest.raises(ConfigError):
        configure_logging()
    set_sample_rate(1.0)


def test_security_events_land_in_their_own_file_too(configure_logging: Configure) -> None:
    setup = configure_logging(json=True)
    security_event("security_rate_limited", "rate limited", client="10.0.0.7", path="/api/v1/bars")
    logger.warning("an ordinary warning", event_type="trade_gap")
    emit("api_response", "GET / 200", request_id="r")
    security = read_json(current_file(setup.security_file))
    assert [r["event_type"] for r in security] == ["security_rate_limited"]
    assert security[0]["level"] == "WARNING" and security[0]["client"] == "10.0.0.7"
    app = read_json(current_file(setup.app_file))
    assert [r.get("event_type") for r in app] == ["security_rate_limited", "trade_gap", "api_response"]
    with pytest.raises(ValueError):
        security_event("rate_limited", "not a security type")


def test_security_file_outlives_the_app_logs_retention(
    configure_logging: Configure, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOG_SECURITY_RETENTION_DAYS", "400")
    setup = configure_logging(retention_days=30)
    assert setup.security_file is not None and setup.security_file.retention_days == 400
    start = dt.datetime(2025, 1, 1, 12, tzinfo=dt.UTC)

    def at(day: int) -> Callable[[dict], None]:
        return lambda record: record.update(time=start + dt.timedelta(days=day))

    for day in (0, 100):
        logger.patch(at(day)).info("app line")
        with logger.contextualize():
            logger.patch(at(day)).bind(event_type="security_rejected_request").warning("refused")
    assert flush_logs()
    service_dir = setup.service_dir
    assert service_dir is not None
    names = sorted(p.name for p in service_dir.iterdir())
    assert "security_2025-01-01.log.gz" in names  # 100 days old: kept (400-day retention)
    assert "app_2025-01-01.log.gz" not in names  # 100 days old: gone (30-day retention)
    assert "app_2025-04-11.log" in names and "security_2025-04-11.log" in names
