"""prometheus.yml, prometheus.local.yml, the rules and the Alertmanager configuration: valid for the real
tools (promtool, amtool), every alert shown firing and not firing, conventions, runbooks."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from collectors.adapter import PARSE_ERROR_TYPES
from tests.ops.catalogue import (
    PROMETHEUS_BUILTINS,
    ROOT,
    RULE_TESTS_DIR,
    RULES_DIR,
    VENUES,
    alert_rules,
    all_rules,
    load_yaml,
    metric_names,
    platform_metric_names,
    recorded_names,
    rule_groups,
)

REQUIRED_ALERTS = {
    "TargetDown",
    "TargetAbsent",
    "CollectorStopped",
    "ExchangeDisconnected",
    "ExchangeTradesStopped",
    "NoTradesWhileConnected",
    "ReconnectionStorm",
    "CollectorErrorRateHigh",
    "TradeGapsNotBackfilled",
    "CollectorParseErrors",
    "GapRepairFailing",
    "TradeGapsAbandoned",
    "BarCompletionSlow",
    "LateTradesRising",
    "DatabaseQueryErrors",
    "DatabaseQueryLatencyHigh",
    "DatabasePoolExhausted",
    "CacheHitRateLow",
    "ApiErrorRatioHigh",
    "ApiLatencyHigh",
    "RateLimitSpiking",
    "CircuitBreakerOpen",
    "DataQualityLow",
    "AnomaliesSpiking",
}
SCRAPE_INTERVALS = {
    "prometheus": "15s",
    "api": "15s",
    "collectors": "30s",
    "processor": "15s",
    "timescaledb": "30s",
    "redis": "30s",
    "node": "30s",
}


def promtool(prometheus_bin: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(prometheus_bin / "promtool"), *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus.local.yml"])
def test_promtool_check_config(prometheus_bin: Path, config: str) -> None:
    done = promtool(prometheus_bin, "check", "config", config)
    assert done.returncode == 0, done.stdout + done.stderr
    # rule_files resolve relative to the config file: every rule file is found and checked.
    assert f"SUCCESS: {len(list(RULES_DIR.glob('*.yml')))} rule files found" in done.stdout


def test_promtool_check_rules(prometheus_bin: Path) -> None:
    done = promtool(prometheus_bin, "check", "rules", *sorted(str(p) for p in RULES_DIR.glob("*.yml")))
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_test_rules(prometheus_bin: Path) -> None:
    files = sorted(str(p) for p in RULE_TESTS_DIR.glob("*.yml"))
    assert files
    done = promtool(prometheus_bin, "test", "rules", *files)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("SUCCESS") == len(files)


def test_promtool_test_rules_fails_on_a_wrong_expectation(prometheus_bin: Path, tmp_path: Path) -> None:
    """The unit tests can fail: the same file with one expected annotation changed does."""
    source = RULE_TESTS_DIR / "collectors_test.yml"
    broken = source.read_text().replace("is 8m 0s old", "is 7m 0s old")
    assert broken != source.read_text()
    copy = tmp_path / "collectors_test.yml"
    copy.write_text(broken.replace("../rules/", f"{RULES_DIR}/"))
    done = promtool(prometheus_bin, "test", "rules", str(copy))
    assert done.returncode != 0
    assert "NoTradesWhileConnected" in done.stdout + done.stderr


def test_required_alerts_exist() -> None:
    names = [rule["alert"] for rule in alert_rules()]
    assert len(names) == len(set(names)), "alert names must be unique"
    assert set(names) >= REQUIRED_ALERTS


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_alert_conventions(rule: dict[str, Any]) -> None:
    assert re.fullmatch(r"[0-9]+[smh]", str(rule.get("for", ""))), "every alert has a for:"
    assert rule["labels"]["severity"] in {"critical", "warning", "info"}
    annotations = rule["annotations"]
    assert {"summary", "description", "runbook_url"} <= set(annotations)
    assert annotations["runbook_url"] == f"docs/runbooks.md#{rule['alert'].lower()}"


def _runbook_anchors() -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes."""
    text = (ROOT / "docs" / "runbooks.md").read_text()
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*$", text, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def test_every_runbook_url_has_a_section() -> None:
    anchors = _runbook_anchors()
    missing = {
        rule["alert"]
        for rule in alert_rules()
        if rule["annotations"]["runbook_url"].split("#")[1] not in anchors
    }
    assert not missing


def test_every_runbook_section_confirms_with_promql() -> None:
    text = (ROOT / "docs" / "runbooks.md").read_text()
    for rule in alert_rules():
        section = text.split(f"\n## {rule['alert']}\n", 1)[1].split("\n## ", 1)[0]
        assert "**Meaning.**" in section and "**Confirm.**" in section and "**Act.**" in section, rule[
            "alert"
        ]
        assert "```promql" in section, rule["alert"]


def _collector_alerts() -> list[dict[str, Any]]:
    (groups,) = [groups for path, groups in rule_groups().items() if path.name == "collectors.yml"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_collector_alerts_name_their_exchange() -> None:
    for rule in _collector_alerts():
        assert "$labels.exchange" in rule["annotations"]["summary"], rule["alert"]


def test_every_collector_alert_is_shown_firing_for_another_venue_than_binance() -> None:
    """Per venue, with coinbase and okx series: the label that fires is the venue at fault."""
    others = {venue.name for venue in VENUES} - {"binance"}
    fired: dict[str, set[str]] = {}
    for path in RULE_TESTS_DIR.glob("*.yml"):
        for test in load_yaml(path)["tests"]:
            for case in test.get("alert_rule_test", []):
                for alert in case.get("exp_alerts") or []:
                    fired.setdefault(case["alertname"], set()).add(alert["exp_labels"].get("exchange", ""))
    for rule in _collector_alerts():
        assert fired.get(rule["alert"], set()) & others, f"{rule['alert']}: no firing case for {others}"


def test_parse_error_rule_matches_the_adapters_parse_error_types() -> None:
    (rule,) = [
        r for r in all_rules() if r.get("record") == "exchange_error_type:collector_parse_errors:rate5m"
    ]
    (pattern,) = re.findall(r'error_type=~"([^"]+)"', rule["expr"])
    assert set(pattern.split("|")) == PARSE_ERROR_TYPES


def _alert_cases() -> dict[str, tuple[int, int]]:
    """alertname -> (cases expecting it to fire, cases expecting silence) over prometheus/tests/."""
    cases: dict[str, tuple[int, int]] = {}
    for path in RULE_TESTS_DIR.glob("*.yml"):
        for test in load_yaml(path)["tests"]:
            for case in test.get("alert_rule_test", []):
                firing, silent = cases.get(case["alertname"], (0, 0))
                fires = bool(case.get("exp_alerts"))
                cases[case["alertname"]] = (firing + fires, silent + (not fires))
    return cases


def test_every_alert_has_a_firing_and_a_silent_case() -> None:
    cases = _alert_cases()
    for rule in alert_rules():
        firing, silent = cases.get(rule["alert"], (0, 0))
        assert firing >= 1 and silent >= 1, f"{rule['alert']}: {firing} firing, {silent} silent cases"


def test_rule_tests_load_the_rule_files_they_test() -> None:
    for path in RULE_TESTS_DIR.glob("*.yml"):
        files = load_yaml(path)["rule_files"]
        assert "../rules/recording.yml" in files, path.name
        # Go's map order would otherwise let alerts read the previous evaluation's recorded series.
        assert load_yaml(path)["group_eval_order"][0] == "cryptostock.recording", path.name
        for name in files:
            assert (path.parent / name).resolve().is_file(), f"{path.name}: {name}"


def test_rules_use_only_real_metrics() -> None:
    known = platform_metric_names() | recorded_names() | PROMETHEUS_BUILTINS
    for groups in rule_groups().values():
        for group in groups:
            for rule in group["rules"]:
                unknown = metric_names(rule["expr"]) - known
                assert not unknown, f"{rule.get('alert') or rule.get('record')}: {unknown}"


def test_metric_name_extraction_sees_unknown_names() -> None:
    """The check above would catch a typo."""
    assert metric_names('sum by (exchange) (rate(trade_recieved_total{symbol="x"}[5m])) > 0') == {
        "trade_recieved_total"
    }


def test_recording_rules_follow_naming_convention() -> None:
    for name in recorded_names():
        assert re.fullmatch(r"[a-z_]+:[a-z_0-9]+:[a-z_0-9]+", name), name


def _scrape_jobs(config: str) -> dict[str, dict[str, Any]]:
    return {job["job_name"]: job for job in load_yaml(ROOT / config)["scrape_configs"]}


def test_prometheus_yml_jobs_and_intervals() -> None:
    jobs = _scrape_jobs("prometheus.yml")
    assert {name: job["scrape_interval"] for name, job in jobs.items()} == SCRAPE_INTERVALS
    config = load_yaml(ROOT / "prometheus.yml")
    assert config["rule_files"] == ["prometheus/rules/*.yml"]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]


def test_prometheus_local_yml_targets_the_daemons_of_one_host() -> None:
    targets = {
        name: job["static_configs"][0]["targets"]
        for name, job in _scrape_jobs("prometheus.local.yml").items()
    }
    assert targets["platform"] == ["localhost:9091"]
    collectors = _scrape_jobs("prometheus.local.yml")["collectors"]["static_configs"]
    assert [t for c in collectors for t in c["targets"]] == [f"localhost:{v.metrics_port}" for v in VENUES]
    assert targets["processor"] == ["localhost:9093"]
    assert targets["api"] == ["localhost:9094"]
    alertmanagers = load_yaml(ROOT / "prometheus.local.yml")["alerting"]["alertmanagers"]
    port = alertmanagers[0]["static_configs"][0]["targets"][0].rsplit(":", 1)[1]
    assert port not in {"9091", "9092", "9093", "9094", "9095"}, "Alertmanager must not take a daemon's port"


def test_amtool_check_config(amtool: Path) -> None:
    done = subprocess.run(
        [str(amtool), "check-config", "alertmanager/alertmanager.yml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_alertmanager_inhibitions_name_real_alerts() -> None:
    """A renamed alert would silently stop inhibiting (or being inhibited)."""
    names = {rule["alert"] for rule in alert_rules()}
    config = load_yaml(ROOT / "alertmanager" / "alertmanager.yml")
    for rule in config["inhibit_rules"]:
        for matcher in rule["source_matchers"] + rule["target_matchers"]:
            if match := re.fullmatch(r'alertname(?:=~|!=|=)"(.*)"', matcher):
                named = set(match.group(1).split("|"))
                assert named <= names, f"{matcher}: {named - names}"


def test_alertmanager_routes_every_severity() -> None:
    config = load_yaml(ROOT / "alertmanager" / "alertmanager.yml")
    receivers = {receiver["name"] for receiver in config["receivers"]}
    routed = {}
    for route in config["route"]["routes"]:
        for matcher in route["matchers"]:
            routed[matcher.split("=")[1].strip('"')] = route["receiver"]
    assert set(routed) == {"critical", "warning", "info"}
    assert set(routed.values()) <= receivers
