"""SessionOptions: every setting of a session in one frozen object, checked when built (built from the
settings in one place, cryptostock.wiring.session_options: tests/cryptostock/test_wiring.py)."""

from __future__ import annotations

import dataclasses

import pytest

from collectors.session_options import SessionOptions
from core.errors import ConfigError


def test_options_are_frozen_and_checked() -> None:
    options = SessionOptions()
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.stale_timeout = 1.0  # type: ignore[misc]
    with pytest.raises(ConfigError, match="stale_timeout"):
        SessionOptions(stale_timeout=0)
    with pytest.raises(ConfigError, match="backoff_max"):
        SessionOptions(backoff_initial=2.0, backoff_max=1.0)
    with pytest.raises(ConfigError, match="gap_retry_max"):
        SessionOptions(gap_retry_initial=5.0, gap_retry_max=1.0)
    assert SessionOptions(reader_grace_s=0).reader_grace_s == 0
