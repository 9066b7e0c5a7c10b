"""1,100 idle half-requests against a real `cryptostock api` under a 1,024 file-descriptor limit (the
attack of issue 11, finding 7): /livez and /readyz keep answering on the API port and on the metrics
port, during the attack and after it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.api.slowloris import api_daemon, half_requests, probe, raise_own_file_limit

ATTACKERS = 1100
FAST = 1.0  # s; before the fix every probe timed out (10 s)

pytestmark = pytest.mark.integration


def _answers(url: str) -> None:
    status, seconds = probe(url)
    assert status == 200 and seconds < FAST, f"{url}: {status} after {seconds:.2f} s"


@pytest.mark.parametrize("target", ["api", "metrics"])
def test_probes_answer_under_a_slowloris(tmp_path: Path, target: str) -> None:
    raise_own_file_limit(2 * ATTACKERS + 100)
    with api_daemon(tmp_path) as daemon:
        port = daemon.api_port if target == "api" else daemon.metrics_port
        with half_requests(port, ATTACKERS) as opened:
            assert opened == ATTACKERS
            for port_ in (daemon.api_port, daemon.metrics_port):
                for path in ("/livez", "/readyz"):
                    _answers(daemon.url(port_, path))
            _answers(daemon.url(daemon.metrics_port, "/metrics"))
            _answers(daemon.url(daemon.api_port, "/api/v1/symbols"))
        _answers(daemon.url(port, "/livez"))
