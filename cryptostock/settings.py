"""One typed settings object per daemon. Values come from flags (passed explicitly by the CLI) and the
environment. Unknown keys are rejected; secrets (DSNs with passwords) are SecretStr."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from api.settings import ApiSettings, AtLeastOne, Bytes, Origins, PerSecond, Proxies, Seconds
from collectors.registry import ADAPTERS, DEFAULT_EXCHANGE
from core.errors import ConfigError
from core.timeframes import DEFAULT_TIMEFRAMES, parse_timeframes, timeframe_ns
from cryptostock.preflight import check_log_level
from monitoring.logger import DEFAULT_SECURITY_RETENTION_DAYS
from simulator.serve import SimulatorSettings


def _metrics_port(default: int) -> Any:
    """The metrics/health port field: each daemon has its own default, so that they run side by side."""
    env = AliasChoices("metrics_port", "METRICS_PORT")
    return Field(default=default, ge=0, le=65535, validation_alias=env)


class CommonSettings(BaseSettings):
    """Settings every daemon shares: where data goes, logging, metrics."""

    model_config = SettingsConfigDict(env_prefix="CRYPTOSTOCK_", extra="forbid", populate_by_name=True)

    database_url: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("database_url", "DATABASE_URL")
    )
    redis_url: SecretStr | None = Field(default=None, validation_alias=AliasChoices("redis_url", "REDIS_URL"))
    redis_prefix: str = "cryptostock"
    data_dir: Path = Path("data")
    metrics_port: int = _metrics_port(9091)
    metrics_addr: str = "127.0.0.1"  # loopback outside containers; the image and compose set 0.0.0.0
    log_level: str = Field(default="INFO", validation_alias=AliasChoices("log_level", "LOG_LEVEL"))
    log_format: Literal["text", "json"] = Field(
        default="text", validation_alias=AliasChoices("log_format", "LOG_FORMAT")
    )
    log_dir: Path = Field(default=Path("logs"), validation_alias=AliasChoices("log_dir", "LOG_DIR"))
    log_retention_days: int = Field(
        default=30, ge=1, validation_alias=AliasChoices("log_retention_days", "LOG_RETENTION_DAYS")
    )
    log_security_retention_days: int = Field(
        default=DEFAULT_SECURITY_RETENTION_DAYS,
        ge=1,
        validation_alias=AliasChoices("log_security_retention_days", "LOG_SECURITY_RETENTION_DAYS"),
    )
    log_sample_rate: float = Field(
        default=1.0, ge=0.0, le=1.0, validation_alias=AliasChoices("log_sample_rate", "LOG_SAMPLE_RATE")
    )

    _log_level = field_validator("log_level", mode="before")(check_log_level)

    def database_dsn(self) -> str | None:
        return self.database_url.get_secret_value() if self.database_url else None

    def redis_dsn(self) -> str | None:
        return self.redis_url.get_secret_value() if self.redis_url else None


def _split_symbols(value: object) -> object:
    """'BTCUSDT, okx:btc-usdt' -> ['BTCUSDT', 'okx:BTC-USDT'] (a venue prefix stays lowercase); blank
    (e.g. an empty CRYPTOSTOCK_SYMBOLS) means each venue's defaults."""
    if isinstance(value, str):
        return [_symbol_entry(s) for s in value.split(",") if s.strip()] or None
    return value


def _symbol_entry(text: str) -> str:
    venue, _, symbol = text.strip().rpartition(":")
    return f"{venue.strip().lower()}:{symbol.strip().upper()}" if venue else symbol.strip().upper()


def _split_exchanges(value: object) -> object:
    if isinstance(value, str):
        value = value.split(",")
    if isinstance(value, list | tuple):
        names = [str(v).strip().lower() for v in value if str(v).strip()]
        unknown = [n for n in names if n not in ADAPTERS]
        if unknown:
            known = ", ".join(sorted(ADAPTERS))
            raise ValueError(f"unknown exchange {unknown[0]!r}; known exchanges: {known}")
        if len(set(names)) != len(names):
            raise ValueError(f"an exchange is named twice in {','.join(names)}")
        return tuple(names)
    return value


class CollectorOptions(BaseModel):
    """How a collector connects: shared by `cryptostock collector` and `cryptostock run`.

    symbols: the venue's own symbols or canonical BASE-QUOTE ones (BTCUSDT or BTC-USDT), each optionally
    for one venue only (`okx:BTC-USDT`); None means each venue's defaults. ws_url / rest_url: None means
    the exchange's own endpoints. Times in seconds; max_connection_age None means the venue's connection
    limit minus its margin (Binance: 24 h - 30 min; none where the venue has no limit)."""

    symbols: list[str] | None = Field(default=None, min_length=1)
    ws_url: str | None = None
    rest_url: str | None = None
    stale_timeout: float = Field(default=30.0, gt=0)
    backoff_initial: float = Field(default=0.5, gt=0)
    backoff_max: float = Field(default=30.0, gt=0)
    max_connection_age: float | None = Field(default=None, gt=0)
    ws_client: Literal["websockets", "picows"] = "websockets"

    _symbols = field_validator("symbols", mode="before")(_split_symbols)

    def symbols_for(self, exchange: str) -> list[str] | None:
        """The symbols asked for on `exchange` (entries for it and unqualified ones); None: its defaults."""
        if self.symbols is None:
            return None
        chosen = []
        for entry in self.symbols:
            venue, _, symbol = entry.rpartition(":")
            if not venue or venue == exchange:
                chosen.append(symbol)
        return chosen or None

    @model_validator(mode="after")
    def _backoff_order(self) -> CollectorOptions:
        if self.backoff_max < self.backoff_initial:
            raise ValueError(
                f"backoff_max (--backoff-max, CRYPTOSTOCK_BACKOFF_MAX) = {self.backoff_max:g} s must be"
                " at least backoff_initial (--backoff-initial, CRYPTOSTOCK_BACKOFF_INITIAL)"
                f" = {self.backoff_initial:g} s"
            )
        return self


_API = ApiSettings()


class ApiOptions(BaseModel):
    """What a daemon serving the API (`cryptostock api`, `cryptostock run`) passes to it: the rate limit,
    CORS, the proxies whose X-Forwarded-For is believed, and the server's limits (seconds, bytes,
    counts). Meanings and defaults: api.settings.ApiSettings and docs/api.md. Lists are comma-separated
    (`CRYPTOSTOCK_TRUSTED_PROXIES=127.0.0.1,10.0.0.0/8`)."""

    rate_limit_per_second: PerSecond = _API.rate_limit_per_second
    rate_limit_burst: AtLeastOne = _API.rate_limit_burst
    cors_origins: Annotated[Origins, NoDecode] = Field(default_factory=list)
    trusted_proxies: Annotated[Proxies, NoDecode] = Field(default_factory=list)
    header_timeout: Seconds = _API.header_timeout
    body_timeout: Seconds = _API.body_timeout
    send_timeout: Seconds = _API.send_timeout
    keep_alive_timeout: Seconds = _API.keep_alive_timeout
    max_connections: AtLeastOne = _API.max_connections
    max_concurrent_requests: AtLeastOne = _API.max_concurrent_requests
    max_websockets: Bytes = _API.max_websockets
    max_body_bytes: Bytes = _API.max_body_bytes

    def api_settings(self) -> ApiSettings:
        return ApiSettings(**self.model_dump(include=set(ApiOptions.model_fields)))


def _one_exchange_only(why: str) -> Callable[[Any, object], object]:
    """A settings validator: `exchange` names one known exchange (`why` says why only one)."""

    def check(cls: Any, value: object) -> object:
        names = _split_exchanges(value)
        if isinstance(names, tuple):
            if len(names) != 1:
                raise ValueError(why)
            return names[0]
        return value

    return check


class SeparateDaemon(BaseModel):
    """A daemon of its own (collector, processor, api): without REDIS_URL its bus and cache would live in
    this process only, where no other daemon can reach them, so it refuses to start unless asked."""

    in_process_bus: bool = False


class CollectorSettings(CommonSettings, CollectorOptions, SeparateDaemon):
    exchange: str = DEFAULT_EXCHANGE
    metrics_port: int = _metrics_port(9092)

    _one_exchange = field_validator("exchange", mode="before")(
        _one_exchange_only("a collector collects from one exchange; run one per exchange")
    )


def _split_urls(value: object) -> object:
    """'binance=http://a:1, okx=http://b:2' -> {'binance': 'http://a:1', 'okx': 'http://b:2'}."""
    if not isinstance(value, str):
        return value
    urls = {}
    for entry in filter(None, (e.strip() for e in value.split(","))):
        exchange, sep, url = entry.partition("=")
        if not sep or not url.strip():
            raise ValueError(f"{entry!r} is not exchange=URL")
        urls[exchange.strip().lower()] = url.strip()
    return urls


class ProcessorSettings(CommonSettings, SeparateDaemon):
    """verify_interval: seconds between checks of recently closed 1m bars against the venues' own candles
    (0: off, the default of the separate daemon; cryptostock/bar_verifier.py), each round checking the
    minutes up to verify_delay minutes ago, at most verify_max_minutes per instrument. verify_rest_urls:
    exchange -> REST base URL (`binance=http://host:port,...`); exchanges not named use their own API."""

    metrics_port: int = _metrics_port(9093)
    timeframes: tuple[str, ...] = DEFAULT_TIMEFRAMES
    grace_seconds: float = Field(default=2.0, ge=0)
    consumer: str = "processor-1"
    shard_index: int = Field(default=0, ge=0)
    shard_count: int = Field(default=1, ge=1)
    tick_interval: float = Field(default=0.5, gt=0)
    read_batch: int = Field(default=200, ge=1)
    store_batch: int = Field(default=20_000, ge=1)
    verify_interval: float = Field(default=0.0, ge=0)
    verify_delay: int = Field(default=2, ge=1, le=60)
    verify_max_minutes: int = Field(default=10, ge=1, le=1440)
    verify_rest_urls: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)

    _verify_urls = field_validator("verify_rest_urls", mode="before")(_split_urls)

    @field_validator("verify_rest_urls")
    @classmethod
    def _known_venues(cls, value: dict[str, str]) -> dict[str, str]:
        _split_exchanges(list(value))
        return value

    @field_validator("timeframes", mode="before")
    @classmethod
    def _timeframes(cls, value: object) -> tuple[str, ...]:
        if isinstance(value, str | list | tuple):
            try:
                return parse_timeframes(value)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None  # reported against the setting's name
        raise ValueError("timeframes must be a comma-separated list such as 1m,5m,1h")


class DeadLettersSettings(CommonSettings):
    """`cryptostock dead-letters`: where to look (the Redis bus, or the data directory's file)."""

    limit: int = Field(default=20, ge=1, le=100_000)


class ApiDaemonSettings(CommonSettings, ApiOptions, SeparateDaemon):
    metrics_port: int = _metrics_port(9094)
    host: str = "127.0.0.1"  # loopback outside containers; the image and compose set 0.0.0.0
    port: int = Field(default=8000, ge=0, le=65535)


class SimulateSettings(CommonSettings, SimulatorSettings):
    """`cryptostock simulate`: the simulator's own settings plus what every daemon shares."""

    model_config = SettingsConfigDict(env_prefix="CRYPTOSTOCK_", extra="forbid", populate_by_name=True)
    metrics_port: int = _metrics_port(9095)

    def simulator(self) -> SimulatorSettings:
        return SimulatorSettings.model_validate(self.model_dump(include=set(SimulatorSettings.model_fields)))


class RunSettings(ProcessorSettings, CollectorOptions, ApiOptions):
    """`cryptostock run`: per exchange a simulator and a collector, plus processor and API, in one process.

    exchange: the venues to collect from (`binance,coinbase,okx,kraken,bybit`); each gets its own simulator on
    sim_port, sim_port + 1, ... in that order. ws_url / rest_url (one venue only) point its collector
    elsewhere instead."""

    exchange: tuple[str, ...] = (DEFAULT_EXCHANGE,)
    metrics_port: int = _metrics_port(9091)
    verify_interval: float = Field(default=60.0, ge=0)  # on: checks against the run's own endpoints
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65535)
    sim_port: int = Field(default=8765, ge=0, le=65535)
    tps: float = Field(default=20.0, gt=0)
    replay: Path | None = None
    speed: float = Field(default=1.0, ge=0)
    live: bool = False
    status_interval: float = Field(default=5.0, gt=0)  # s between status lines on a terminal

    _exchanges = field_validator("exchange", mode="before")(_split_exchanges)

    @model_validator(mode="after")
    def _one_venue_per_url(self) -> RunSettings:
        if (self.ws_url or self.rest_url) and len(self.exchange) > 1:
            raise ValueError("--ws-url and --rest-url point one exchange elsewhere: name only that one")
        return self

    @property
    def uses_simulator(self) -> bool:
        return not self.live and self.ws_url is None and self.rest_url is None

    @property
    def source(self) -> Literal["simulated", "live"]:
        """What the data is: never mix the two in one database."""
        return "simulated" if self.uses_simulator else "live"

    @property
    def database_file(self) -> str:
        """The embedded database in data_dir: one per replayed file (replay-<file name>.db), so that a
        replay neither mixes with `make run`'s market nor with another file; else simulated.db or live.db."""
        if self.replay is not None:
            stem = re.sub(r"[^A-Za-z0-9._-]+", "_", self.replay.stem)[:100] or "file"
            return f"replay-{stem}.db"
        return f"{self.source}.db"


class ExportSettings(CommonSettings):
    """`cryptostock export bars|trades`: one symbol's stored bars or trades over [start, end) (ISO-8601,
    UTC when no offset, or epoch ms) into `output`, `page_size` rows at a time. `output_format` None: from
    the output's suffix (.parquet, .pq, .csv). `db`: a SQLite file (else DATABASE_URL, else the one
    database in data_dir)."""

    kind: Literal["bars", "trades"]
    exchange: str = DEFAULT_EXCHANGE
    symbol: str = Field(min_length=1, max_length=64)
    timeframe: str = "1m"
    start: str
    end: str
    output: Path
    output_format: Literal["parquet", "csv"] | None = None
    page_size: int = Field(default=10_000, ge=1, le=1_000_000)
    db: Path | None = None

    @field_validator("timeframe")
    @classmethod
    def _one_timeframe(cls, value: str) -> str:
        try:
            timeframe_ns(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _format_known(self) -> ExportSettings:
        if self.file_format() not in ("parquet", "csv"):
            raise ValueError(f"--format parquet or csv: the name {self.output.name!r} does not say which")
        return self

    def file_format(self) -> str:
        """parquet or csv: --format, else from the output's suffix ('' when neither says)."""
        by_suffix = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}
        return self.output_format or by_suffix.get(self.output.suffix.lower(), "")


class VerifySettings(CommonSettings):
    """`cryptostock verify`: one symbol's stored 1m bars over [start, end) (ISO-8601, UTC when no offset,
    or epoch ms) checked against the venue's own 1m candles, fetched over REST from `rest_url` (None: the
    exchange's own REST API; e.g. a simulator's URL). `db`: a SQLite file (else DATABASE_URL, else the one
    database in data_dir). `timeout`: seconds per REST request; `max_wait`: seconds of rate limiting waited
    out in all before giving up."""

    exchange: str = DEFAULT_EXCHANGE
    symbol: str = Field(min_length=1, max_length=64)
    start: str
    end: str
    rest_url: str | None = None
    db: Path | None = None
    timeout: float = Field(default=10.0, gt=0)
    max_wait: float = Field(default=60.0, ge=0)

    _one_exchange = field_validator("exchange", mode="before")(
        _one_exchange_only("verify checks one exchange at a time")
    )


ALL_SETTINGS: tuple[type[BaseSettings], ...] = (
    CommonSettings,
    CollectorSettings,
    ProcessorSettings,
    ApiDaemonSettings,
    SimulateSettings,
    RunSettings,
    ExportSettings,
    VerifySettings,
    DeadLettersSettings,
)
"""Every command's settings: an environment variable any of them reads is a known one."""
