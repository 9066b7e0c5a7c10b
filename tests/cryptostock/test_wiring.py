"""cryptostock.wiring: the collector session's options are built from the settings in this one place."""

from __future__ import annotations

from collectors.session_options import SessionOptions
from cryptostock.settings import CollectorOptions
from cryptostock.wiring import session_options


def test_the_settings_become_the_sessions_options() -> None:
    settings = CollectorOptions(stale_timeout=5, backoff_initial=0.1, backoff_max=2, max_connection_age=60)
    options = session_options(settings)
    assert (
        options.stale_timeout,
        options.backoff_initial,
        options.backoff_max,
        options.max_connection_age,
    ) == (
        5,
        0.1,
        2,
        60,
    )
    assert options.outbox_max_trades == SessionOptions().outbox_max_trades  # not a setting: the default
