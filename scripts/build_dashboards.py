"""Builds the Grafana dashboards of grafana/dashboards/*.json from the panel lists of scripts/dashboards/
(one module per dashboard, named as its file; the shared model in dashboards/model.py).

The JSON files are committed and provisioned as is (bare classic dashboard models, not wrapped in
{"dashboard": ...}); this script is how they are edited. `--check` exits 1 when a committed file differs
from what the script builds (tests/ops runs it).

Every query uses metrics of monitoring/metrics/ or the recorded series of
prometheus/rules/recording.yml. Panels fed by exporters (node, redis, postgres) say so in their
description with the tag `source: <name>-exporter`; every other panel is fed by the platform itself.

    .venv/bin/python scripts/build_dashboards.py          # rewrite the files
    .venv/bin/python scripts/build_dashboards.py --check  # verify they are up to date
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from dashboards.circuit_breakers import circuit_breakers
from dashboards.data_quality import data_quality
from dashboards.database_cache import database_cache
from dashboards.main_operational import main_operational

OUT = Path(__file__).resolve().parent.parent / "grafana" / "dashboards"

DASHBOARDS = {
    "main-operational.json": main_operational,
    "data-quality.json": data_quality,
    "circuit-breakers.json": circuit_breakers,
    "database-cache.json": database_cache,
}


def render(build: Callable[[], dict[str, object]]) -> str:
    return json.dumps(build(), indent=2) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a committed dashboard is out of date")
    args = parser.parse_args()
    stale = []
    for name, build in DASHBOARDS.items():
        path, text = OUT / name, render(build)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print(f"out of date (run scripts/build_dashboards.py): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
