"""The exposition of every platform metric (plus the standard process collectors) passes
`promtool check metrics` with no lint problems, as served over HTTP."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)

from monitoring.metrics import PlatformMetrics
from monitoring.server import set_build_info, start_metrics_server

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def promtool() -> Path:
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "ensure-prometheus.sh")], capture_output=True, text=True, timeout=300
    )
    if result.returncode != 0:
        pytest.fail(f"scripts/ensure-prometheus.sh failed: {result.stderr.strip()[-500:]}")
    tool = Path(result.stdout.strip().splitlines()[-1]) / "promtool"
    assert tool.is_file()
    return tool


def populate_every_metric(metrics: PlatformMetrics) -> list[str]:
    """Give every metric of PlatformMetrics at least one sample (labelled ones one child each)."""
    names = []
    for metric in vars(metrics).values():
        if isinstance(metric, Info):
            set_build_info("test", metrics)
        elif isinstance(metric, Counter | Gauge | Histogram):
            labelnames = metric._labelnames
            target = metric.labels(*(f"{n}_value" for n in labelnames)) if labelnames else metric
            if isinstance(metric, Counter):
                target.inc()
            elif isinstance(metric, Gauge):
                target.set(1)
            else:
                target.observe(0.003)
        else:
            continue
        names.append(metric._name)
    return names


def test_exposition_passes_promtool(promtool: Path) -> None:
    registry = CollectorRegistry()
    metrics = PlatformMetrics(registry)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    names = populate_every_metric(metrics)
    assert len(names) >= 40
    with start_metrics_server(port=0, addr="127.0.0.1", registry=registry) as server:
        exposition = httpx.get(server.url).text
    for name in names:
        assert f"\n# TYPE {name}" in exposition or exposition.startswith(f"# TYPE {name}")
    result = subprocess.run(
        [str(promtool), "check", "metrics"], input=exposition, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == "", result.stdout + result.stderr


def test_promtool_is_able_to_fail(promtool: Path) -> None:
    bad = (
        "# HELP bad_metric_seconds_total x\n"
        "# TYPE bad_metric_seconds_total gauge\n"
        "bad_metric_seconds_total 1\n"
    )
    result = subprocess.run(
        [str(promtool), "check", "metrics"], input=bad, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert 'should not have "_total" suffix' in result.stdout + result.stderr
