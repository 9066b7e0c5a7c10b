"""Checks made before a command starts, each failing with one line that names the setting.

pydantic-settings reads only the environment variables it knows and ignores every other one, even with
extra="forbid", so a misspelled `CRYPTOSTOCK_STALE_TIMOUT=5` would pass silently. `check_environment`
compares every `CRYPTOSTOCK_*` variable with the names the settings classes read and names the closest.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from core.errors import ConfigError

PREFIX = "CRYPTOSTOCK_"
# CRYPTOSTOCK_* variables that are not settings of the platform: docker-compose's image tag.
NOT_SETTINGS = frozenset({"CRYPTOSTOCK_VERSION"})
LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")
SEPARATE_DAEMONS = {
    "collector": "its trades would go onto a bus in this process, which no processor can read",
    "processor": "it would read a bus in this process, which no collector can write to",
    "api": "it would serve a cache in this process, which no processor fills (no live bars, no feeds)",
}


def env_names(settings_type: type[BaseSettings]) -> dict[str, str]:
    """Upper-case environment variable -> the field it sets, as pydantic-settings reads them: a field with
    a validation alias is read under its aliases only (no prefix), any other under prefix + name."""
    prefix = str(settings_type.model_config.get("env_prefix", "")).upper()
    names: dict[str, str] = {}
    for field, info in settings_type.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names.update({str(choice).upper(): field for choice in alias.choices if isinstance(choice, str)})
        elif isinstance(alias, str):
            names[alias.upper()] = field
        else:
            names[f"{prefix}{field.upper()}"] = field
    return names


def check_environment(environ: Mapping[str, str], settings_types: Iterable[type[BaseSettings]]) -> None:
    """ConfigError for the first CRYPTOSTOCK_* variable that no command reads (one that another command
    reads is fine: daemons commonly share one environment file), naming the closest known name."""
    known: set[str] = set()
    for settings_type in settings_types:
        known.update(env_names(settings_type))
    for name in sorted(environ):
        upper = name.upper()
        if upper.startswith(PREFIX) and upper not in known and upper not in NOT_SETTINGS:
            raise ConfigError(f"unknown setting {name}{_closest(upper, known)}")


def _closest(name: str, known: set[str]) -> str:
    """'; did you mean X?' comparing names without the prefix (CRYPTOSTOCK_METRICS_PORT -> METRICS_PORT)."""
    bare = {k.removeprefix(PREFIX): k for k in sorted(known)}
    wanted = name.removeprefix(PREFIX)
    close = [wanted] if wanted in bare else difflib.get_close_matches(wanted, list(bare), n=1, cutoff=0.6)
    return f"; did you mean {bare[close[0]]}?" if close else "; settings are listed in README.md (Settings)"


def check_log_level(value: object) -> object:
    """LOG_LEVEL / --log-level: one of loguru's levels, any case ('warn' suggests WARNING)."""
    if not isinstance(value, str):
        return value
    level = value.strip().upper()
    if level not in LOG_LEVELS:
        close = difflib.get_close_matches(level, LOG_LEVELS, n=1, cutoff=0.5)
        hint = f"did you mean {close[0]}? " if close else ""
        raise ValueError(f"unknown log level {value!r}; {hint}expected one of {', '.join(LOG_LEVELS)}")
    return level


def refuse_private_bus(command: str, redis_url: object, in_process_bus: bool) -> None:
    """A separate daemon without REDIS_URL talks to nobody: refuse unless --in-process-bus says so."""
    why = SEPARATE_DAEMONS.get(command)
    if why is None or redis_url is not None or in_process_bus:
        return
    raise ConfigError(
        f"REDIS_URL is not set: {why}. Set REDIS_URL (e.g. redis://127.0.0.1:6379/0), run everything in "
        "one process with `cryptostock run`, or pass --in-process-bus to run it alone anyway"
    )


def describe_field(settings_type: type[BaseSettings], field: str, from_flag: bool) -> str:
    """How the person set `field`: its flag ('--log-level') when given, else its variable ('LOG_LEVEL')."""
    if from_flag:
        return "--" + field.replace("_", "-")
    names = [name for name, target in env_names(settings_type).items() if target == field]
    return names[0] if names else field
