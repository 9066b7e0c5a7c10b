"""Settings mistakes are caught before anything starts: unknown CRYPTOSTOCK_* variables (which
pydantic-settings would ignore), invalid values, and a separate daemon without a shared bus."""

from __future__ import annotations

import io
import json

import pytest

from core.errors import ConfigError
from cryptostock.outcome import report_failure, wants_json
from cryptostock.preflight import check_environment, check_log_level, env_names, refuse_private_bus
from cryptostock.settings import ALL_SETTINGS, CollectorSettings, ProcessorSettings


def test_pydantic_settings_alone_ignores_a_misspelled_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Why the explicit check exists: extra='forbid' does not reach the environment."""
    monkeypatch.setenv("CRYPTOSTOCK_STALE_TIMOUT", "5")
    assert CollectorSettings().stale_timeout == 30.0


def test_env_names_are_the_ones_pydantic_settings_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    names = env_names(CollectorSettings)
    assert names["DATABASE_URL"] == "database_url"  # an alias: read without the prefix
    assert "CRYPTOSTOCK_DATABASE_URL" not in names
    assert set(names.values()) == set(CollectorSettings.model_fields)
    for variable, value in (("CRYPTOSTOCK_STALE_TIMEOUT", "7"), ("METRICS_PORT", "9999"),
                            ("CRYPTOSTOCK_REDIS_PREFIX", "px"), ("LOG_LEVEL", "debug")):  # fmt: skip
        monkeypatch.setenv(variable, value)
    settings = CollectorSettings()
    read = (settings.stale_timeout, settings.metrics_port, settings.redis_prefix, settings.log_level)
    assert read == (7.0, 9999, "px", "DEBUG")


@pytest.mark.parametrize(
    ("variable", "suggestion"),
    [
        ("CRYPTOSTOCK_STALE_TIMOUT", "did you mean CRYPTOSTOCK_STALE_TIMEOUT?"),
        ("CRYPTOSTOCK_METRICS_PORT", "did you mean METRICS_PORT?"),
        ("cryptostock_database_url", "did you mean DATABASE_URL?"),
        ("CRYPTOSTOCK_ZZZ", "README.md"),
    ],
)
def test_an_unknown_variable_names_the_closest_setting(variable: str, suggestion: str) -> None:
    with pytest.raises(ConfigError, match="unknown setting") as raised:
        check_environment({variable: "5", "PATH": "/bin"}, ALL_SETTINGS)
    assert variable in str(raised.value) and suggestion in str(raised.value)


def test_a_variable_of_another_daemon_and_compose_tags_are_accepted() -> None:
    shared = {"CRYPTOSTOCK_STALE_TIMEOUT": "5", "CRYPTOSTOCK_SHARD_COUNT": "2", "CRYPTOSTOCK_VERSION": "1"}
    check_environment(shared, ALL_SETTINGS)


def test_log_levels() -> None:
    assert check_log_level("debug") == "DEBUG"
    with pytest.raises(ValueError, match="did you mean WARNING"):
        check_log_level("warn")
    with pytest.raises(ValueError, match="unknown log level 'LOUD'"):
        ProcessorSettings(log_level="LOUD")


def test_separate_daemons_need_a_shared_bus_unless_told() -> None:
    for command in ("collector", "processor", "api"):
        with pytest.raises(ConfigError, match=r"REDIS_URL is not set.*--in-process-bus"):
            refuse_private_bus(command, None, in_process_bus=False)
        refuse_private_bus(command, None, in_process_bus=True)
        refuse_private_bus(command, "redis://127.0.0.1:6379/0", in_process_bus=False)
    refuse_private_bus("run", None, in_process_bus=False)  # one process: the bus is shared within it


def test_failures_in_text_and_json() -> None:
    text, as_json = io.StringIO(), io.StringIO()
    assert report_failure("run", ConfigError("port busy"), 2, as_json=False, stream=text) == 2
    report_failure("run", ConfigError("port busy"), 2, as_json=True, stream=as_json)
    assert text.getvalue() == "cryptostock run: port busy\n"
    record = json.loads(as_json.getvalue())
    assert (record["level"], record["message"], record["error"], record["exit_code"]) == (
        "ERROR", "cryptostock run: port busy", "ConfigError", 2,
    )  # fmt: skip
    assert wants_json({"log_format": "json"}, {}) and wants_json({}, {"LOG_FORMAT": "JSON"})
    assert not wants_json({"log_format": "text"}, {"LOG_FORMAT": "json"})


def test_every_command_s_settings_are_known_to_the_environment_check() -> None:
    """A command whose settings class is missing from ALL_SETTINGS would see its variables refused."""
    from cryptostock.cli import _entry, build_parser

    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    assert commands is not None
    for command in commands:
        settings_type, _ = _entry(command, None)
        assert settings_type in ALL_SETTINGS, command
