"""/livez and /readyz latency of a real `cryptostock api` (RLIMIT_NOFILE 1024) while N idle half-requests
hold its API port, then its metrics port (issue 11, finding 7).

Run: .venv/bin/python bench/bench_slowloris.py [attackers, default 1100] [path of another checkout's
.venv/bin/cryptostock, to measure it instead]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the attacker lives in tests/api

from tests.api.slowloris import (
    CRYPTOSTOCK,
    Daemon,
    api_daemon,
    half_requests,
    probe,
    raise_own_file_limit,
)

PROBES = (("api", "/livez"), ("api", "/readyz"), ("metrics", "/livez"), ("metrics", "/metrics"))


def _row(label: str, daemon: Daemon) -> None:
    cells = []
    for where, path in PROBES:
        port = daemon.api_port if where == "api" else daemon.metrics_port
        status, seconds = probe(daemon.url(port, path))
        cells.append(f"{where}{path} {status} {seconds * 1000:8.1f} ms")
    print(f"{label:<34}" + " | ".join(cells))


def main(attackers: int, executable: Path) -> None:
    raise_own_file_limit(2 * attackers + 100)
    with tempfile.TemporaryDirectory() as workdir, api_daemon(Path(workdir), executable) as daemon:
        _row("idle", daemon)
        for target in ("api", "metrics"):
            port = daemon.api_port if target == "api" else daemon.metrics_port
            with half_requests(port, attackers) as opened:
                _row(f"{opened} half-requests on {target}", daemon)
            _row(f"after the {target} attack", daemon)


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 1100,
        Path(sys.argv[2]) if len(sys.argv) > 2 else CRYPTOSTOCK,
    )
