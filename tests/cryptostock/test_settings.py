"""Daemon settings: what a user gets without flags."""

from __future__ import annotations

import pytest

from cryptostock.cli import build_parser
from cryptostock.settings import (
    ApiDaemonSettings,
    CollectorSettings,
    ProcessorSettings,
    RunSettings,
    SimulateSettings,
)

DAEMONS = {
    "collector": CollectorSettings,
    "processor": ProcessorSettings,
    "api": ApiDaemonSettings,
    "simulate": SimulateSettings,
}


def test_each_daemon_has_its_own_metrics_port_so_they_run_side_by_side(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("METRICS_PORT", raising=False)
    ports = {name: settings().metrics_port for name, settings in DAEMONS.items()}
    assert len(set(ports.values())) == len(DAEMONS), ports
    assert RunSettings().metrics_port == 9091  # the README's address for `make run`
    assert 9091 not in ports.values()


def test_every_port_binds_loopback_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CRYPTOSTOCK_METRICS_ADDR", "CRYPTOSTOCK_HOST", "CRYPTOSTOCK_API_HOST"):
        monkeypatch.delenv(name, raising=False)
    for settings in (*DAEMONS.values(), RunSettings):
        assert settings().metrics_addr == "127.0.0.1", settings.__name__
    assert ApiDaemonSettings().host == "127.0.0.1"
    assert RunSettings().api_host == "127.0.0.1"
    monkeypatch.setenv("CRYPTOSTOCK_METRICS_ADDR", "0.0.0.0")  # what the image and compose set
    monkeypatch.setenv("CRYPTOSTOCK_HOST", "0.0.0.0")
    assert (ApiDaemonSettings().metrics_addr, ApiDaemonSettings().host) == ("0.0.0.0", "0.0.0.0")


def test_help_states_each_daemons_metrics_port(capsys: pytest.CaptureFixture[str]) -> None:
    for name, settings in DAEMONS.items():
        with pytest.raises(SystemExit):
            build_parser().parse_args([name, "--help"])
        assert f"(default {settings().metrics_port})" in " ".join(capsys.readouterr().out.split())


def test_collector_endpoints_default_to_the_exchanges_own() -> None:
    settings = CollectorSettings(exchange="binance_futures")
    assert settings.ws_url is None and settings.rest_url is None  # the adapter's endpoints, not spot's
    with pytest.raises(ValueError, match="backoff_max"):
        CollectorSettings(backoff_initial=5, backoff_max=1)


def test_symbols_from_flags_or_environment_per_venue(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = RunSettings(exchange="binance,coinbase,okx", symbols="btcusdt, coinbase:btc-usd ,okx:ETH-USDT")
    assert settings.exchange == ("binance", "coinbase", "okx")
    assert settings.symbols_for("binance") == ["BTCUSDT"]
    assert settings.symbols_for("coinbase") == ["BTCUSDT", "BTC-USD"]
    assert settings.symbols_for("okx") == ["BTCUSDT", "ETH-USDT"]
    monkeypatch.setenv("CRYPTOSTOCK_SYMBOLS", "")
    assert CollectorSettings(exchange="okx").symbols_for("okx") is None  # blank: the venue's defaults
    monkeypatch.setenv("CRYPTOSTOCK_SYMBOLS", "BTC-USD,ETH-USD")
    assert CollectorSettings(exchange="coinbase").symbols_for("coinbase") == ["BTC-USD", "ETH-USD"]
    with pytest.raises(ValueError, match="unknown exchange 'nope'"):
        RunSettings(exchange="binance,nope")
    with pytest.raises(ValueError, match="one exchange"):
        RunSettings(exchange="binance,okx", ws_url="ws://127.0.0.1:1")


def test_each_replayed_file_gets_a_database_of_its_own() -> None:
    """A replay never writes into make run's simulated.db (its whole file would count as late) nor into
    another file's database."""
    assert RunSettings().database_file == "simulated.db"
    assert RunSettings(replay="samples/btc-eth-trades.csv").database_file == "replay-btc-eth-trades.db"
    assert (
        RunSettings(replay="/tmp/BTCUSDT-trades 2024 (1).csv").database_file
        == "replay-BTCUSDT-trades_2024_1_.db"
    )
