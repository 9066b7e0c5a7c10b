"""`monitoring.metrics` as the user guide uses it: every family as a module-level name (the platform's own
object), `track_time` and `start_metrics_server` importable from it, the guide's label sets accepted."""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Histogram

import monitoring
import monitoring.metrics as metrics_module
import monitoring.server
from monitoring.metrics import FAMILIES, METRICS, PlatformMetrics

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "monitoring.md").read_text()
CATALOGUE_ROW = re.compile(
    r"^\| `(\w+)` \| (counter|gauge|histogram|info) \| [^|]+ \| `(\w+)` \|$", re.MULTILINE
)


def test_every_documented_family_is_a_module_level_name_holding_the_platforms_object() -> None:
    rows = CATALOGUE_ROW.findall(DOC)
    assert len(rows) >= 50
    for name, _, attribute in rows:
        assert getattr(metrics_module, name) is getattr(METRICS, attribute), name
        assert FAMILIES[name] is getattr(METRICS, attribute)


def test_every_family_of_the_platform_is_documented_and_exported() -> None:
    documented = {attribute for _, _, attribute in CATALOGUE_ROW.findall(DOC)}
    assert documented == {a for a in vars(METRICS) if a != "registry"}
    exported = {id(m) for m in FAMILIES.values()}
    assert {id(m) for a, m in vars(METRICS).items() if a != "registry"} == exported


def test_server_helpers_are_the_same_objects_wherever_imported() -> None:
    from monitoring.metrics import MetricsServer, set_build_info, start_metrics_server, track_time

    assert start_metrics_server is monitoring.server.start_metrics_server is monitoring.start_metrics_server
    assert track_time is monitoring.server.track_time is monitoring.track_time
    assert set_build_info is monitoring.server.set_build_info
    assert MetricsServer is monitoring.server.MetricsServer
    with pytest.raises(AttributeError):
        metrics_module.no_such_metric  # noqa: B018


def test_values_recorded_through_module_names_land_on_the_platforms_series() -> None:
    from monitoring.metrics import trades_received_total

    before = METRICS.registry.get_sample_value(
        "trades_received_total", {"exchange": "guide-test", "symbol": "BTCUSDT"}
    )
    trades_received_total.labels(exchange="guide-test", symbol="BTCUSDT").inc(2)
    after = METRICS.registry.get_sample_value(
        "trades_received_total", {"exchange": "guide-test", "symbol": "BTCUSDT"}
    )
    assert (after or 0) - (before or 0) == 2


def test_histograms_accept_the_guides_symbol_label_and_keep_no_per_symbol_series() -> None:
    metrics = PlatformMetrics(CollectorRegistry())
    metrics.bar_completion_duration.labels(symbol="BTCUSDT", timeframe="1m").observe(0.2)
    metrics.bar_completion_duration.labels(symbol="ETHUSDT", timeframe="1m").observe(0.3)
    metrics.bar_completion_duration.labels("1m").observe(0.1)
    sample = metrics.registry.get_sample_value
    assert sample("bar_completion_duration_seconds_count", {"timeframe": "1m"}) == 3
    assert sample("bar_completion_duration_seconds_count", {"timeframe": "1m", "symbol": "BTCUSDT"}) is None
    metrics.trade_latency.labels(exchange="binance", symbol="BTCUSDT").observe(0.01)
    assert sample("trade_latency_seconds_count", {"exchange": "binance"}) == 1
    for name in vars(metrics):
        family = getattr(metrics, name)
        if isinstance(family, Histogram):
            assert "symbol" not in family._labelnames, name


def test_other_unknown_labels_are_still_refused() -> None:
    metrics = PlatformMetrics(CollectorRegistry())
    with pytest.raises(ValueError, match="Incorrect label names"):
        metrics.bar_completion_duration.labels(timeframe="1m", venue="x")
    with pytest.raises(ValueError, match="Incorrect label"):
        metrics.bar_completion_duration.labels(symbol="BTCUSDT")  # timeframe is still required


def _guide_snippet() -> str:
    match = re.search(r"<!-- guide-snippet -->\n<!-- fmt: off -->\n```python\n(.*?)```", DOC, re.DOTALL)
    assert match, "docs/monitoring.md lost the guide's snippet"
    return match.group(1)


def test_the_guides_snippet_runs_as_documented_and_its_values_are_served(unused_tcp_port: int) -> None:
    """The snippet from docs/monitoring.md, in a fresh interpreter; only its port is changed, so the
    test does not collide with a daemon on 9091."""
    snippet = _guide_snippet()
    assert "start_metrics_server(port=9091)" in snippet
    program = (
        snippet.replace("port=9091", f"port={unused_tcp_port}")
        + "\nimport asyncio, sys\nasyncio.run(complete_bar())\nprint('ready', flush=True)\nsys.stdin.read()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", program],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        with urllib.request.urlopen(f"http://127.0.0.1:{unused_tcp_port}/metrics", timeout=5) as reply:
            body = reply.read().decode()
    finally:
        proc.communicate("", timeout=10)
    assert 'trades_received_total{exchange="binance",symbol="BTCUSDT"} 1.0' in body
    assert 'bar_completion_duration_seconds_count{timeframe="1m"} 1.0' in body
    assert "symbol" not in next(
        line for line in body.splitlines() if "bar_completion_duration_seconds_count" in line
    )
