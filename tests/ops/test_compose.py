"""docker-compose.yml, the Dockerfile and .env.example, checked statically (no Docker engine here): the
Compose specification schema, referenced files, ports against prometheus.yml, healthchecks, secrets."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.ops.catalogue import ROOT, VENUES, load_yaml

PLATFORM_SERVICES = {venue.service for venue in VENUES} | {"processor", "api"}
REQUIRED_SERVICES = {
    "timescaledb",
    "redis",
    "prometheus",
    "alertmanager",
    "grafana",
    "postgres-exporter",
    "redis-exporter",
    "node-exporter",
} | PLATFORM_SERVICES
SECRETS = {"POSTGRES_PASSWORD", "REDIS_PASSWORD", "GRAFANA_ADMIN_PASSWORD"}
COMPOSE_TEXT = "\n".join(
    line
    for line in (ROOT / "docker-compose.yml").read_text().splitlines()
    if not line.lstrip().startswith("#")
)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(ROOT / "docker-compose.yml")


@pytest.fixture(scope="module")
def validator(compose_schema: Path) -> jsonschema.protocols.Validator:
    schema = json.loads(compose_schema.read_text())
    assert "2019-09" in schema["$schema"]
    jsonschema.Draft201909Validator.check_schema(schema)
    return jsonschema.Draft201909Validator(schema)


def test_compose_file_matches_the_compose_specification(
    compose: dict[str, Any], validator: jsonschema.protocols.Validator
) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(compose)]
    assert not errors


def test_schema_rejects_a_broken_compose_file(
    compose: dict[str, Any], validator: jsonschema.protocols.Validator
) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["api"]["healthcheck"]["interval_typo"] = "5s"
    broken["services"]["redis"]["depends_on"] = {"timescaledb": {"condition": "when_ready"}}
    assert len(list(validator.iter_errors(broken))) == 2


def test_required_services(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) >= REQUIRED_SERVICES


def test_platform_services_use_the_image_built_here(compose: dict[str, Any]) -> None:
    for name in PLATFORM_SERVICES:
        service = compose["services"][name]
        assert service["build"]["context"] == "."
        assert (ROOT / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
        assert service["image"].startswith("cryptostock:")
    for venue in VENUES:
        assert compose["services"][venue.service]["command"][:3] == ["collector", "--exchange", venue.name]
    assert compose["services"]["processor"]["command"][0] == "processor"
    assert compose["services"]["api"]["command"][0] == "api"


def test_every_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        check = service.get("healthcheck", {})
        assert check.get("test") and not check.get("disable"), name
        assert check["test"][0] in {"CMD", "CMD-SHELL"}, name


def test_dependencies_wait_for_healthy_services(compose: dict[str, Any]) -> None:
    edges = 0
    for name, service in compose["services"].items():
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in compose["services"], f"{name} -> {dependency}"
            assert condition == {"condition": "service_healthy"}, f"{name} -> {dependency}"
            edges += 1
    assert edges >= 10
    for name in PLATFORM_SERVICES:
        assert {"timescaledb", "redis"} <= set(compose["services"][name]["depends_on"]), name


def _bind_sources(service: dict[str, Any]) -> list[str]:
    sources = []
    for volume in service.get("volumes", []):
        source = volume["source"] if isinstance(volume, dict) else volume.split(":", 1)[0]
        sources.append(source)
    return sources


def test_mounted_files_exist_and_volumes_are_named(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    used = set()
    for name, service in compose["services"].items():
        for source in _bind_sources(service):
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source}"
            elif not source.startswith("/"):
                assert source in declared, f"{name}: volume {source} not declared"
                used.add(source)
        for env_file in service.get("env_file", []):
            assert (ROOT / env_file).is_file(), f"{name}: {env_file}"
    assert used == declared, "declared volumes are all used"


def test_mounts_put_configs_where_the_tools_read_them(compose: dict[str, Any]) -> None:
    prometheus = compose["services"]["prometheus"]
    assert "./prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prometheus["volumes"]
    # rule_files are relative to the config file: /etc/prometheus/prometheus/rules/*.yml
    assert "./prometheus/rules:/etc/prometheus/prometheus/rules:ro" in prometheus["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    alertmanager = compose["services"]["alertmanager"]
    assert "./alertmanager/alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro" in alertmanager["volumes"]
    grafana = compose["services"]["grafana"]
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]
    provider = load_yaml(ROOT / "grafana" / "provisioning" / "dashboards" / "cryptostock.yml")["providers"][0]
    assert f"./grafana/dashboards:{provider['options']['path']}:ro" in grafana["volumes"]


def test_grafana_listens_on_3001(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    assert grafana["environment"]["GF_SERVER_HTTP_PORT"] == "3001"
    assert "3001:3001" in grafana["ports"]
    assert "3001" in " ".join(grafana["healthcheck"]["test"])


def _listening_ports(service: dict[str, Any]) -> set[int]:
    """Ports a service declares (expose/ports container side) or is told to listen on (env, command)."""
    ports = {int(str(p)) for p in service.get("expose", [])}
    ports |= {int(str(p).rsplit(":", 1)[-1]) for p in service.get("ports", [])}
    env = service.get("environment", {})
    if "METRICS_PORT" in env:
        ports.add(int(env["METRICS_PORT"]))
    command = " ".join(service.get("command", [])) + " " + " ".join(str(v) for v in env.values())
    ports |= {int(p) for p in re.findall(r"listen[-_.a-z]*[=\s]\"?[\w.]*:(\d+)", command, flags=re.I)}
    return ports


def test_scrape_targets_exist_in_compose(compose: dict[str, Any]) -> None:
    jobs = load_yaml(ROOT / "prometheus.yml")["scrape_configs"]
    targets = [t for job in jobs for c in job["static_configs"] for t in c["targets"]]
    assert len(targets) >= 7
    for target in targets:
        host, port = target.rsplit(":", 1)
        service = "prometheus" if host == "localhost" else host
        assert service in compose["services"], target
        assert int(port) in _listening_ports(compose["services"][service]), target
    for name in PLATFORM_SERVICES:
        port = compose["services"][name]["environment"]["METRICS_PORT"]
        assert f"{name}:{port}" in targets, f"{name} is not scraped"


def _probed_port(service: dict[str, Any]) -> int:
    """The port a healthcheck probes: written out, or the service's METRICS_PORT read from the environment."""
    probe = " ".join(service["healthcheck"]["test"])
    written = re.findall(r"127\.0\.0\.1:(\d+)/", probe)
    if written:
        return int(written[0])
    assert re.search(r"127\.0\.0\.1:%s/.*os\.environ\['METRICS_PORT'\]", probe), probe
    return int(service["environment"]["METRICS_PORT"])


def test_platform_services_agree_on_their_ports(compose: dict[str, Any]) -> None:
    ports = []
    for name in PLATFORM_SERVICES:
        service = compose["services"][name]
        port = service["environment"]["METRICS_PORT"]
        assert port in service["expose"], name
        assert _probed_port(service) in _listening_ports(service), name
        ports.append(port)
    assert len(set(ports)) == len(ports), "each daemon has its own metrics port"
    alertmanager = load_yaml(ROOT / "prometheus.yml")["alerting"]["alertmanagers"][0]["static_configs"][0]
    host, port = alertmanager["targets"][0].rsplit(":", 1)
    assert int(port) in _listening_ports(compose["services"][host])


def test_required_secrets_fail_fast() -> None:
    for secret in SECRETS:
        uses = re.findall(r"\$\{" + secret + r"([^}]*)\}", COMPOSE_TEXT)
        assert uses, secret
        assert all(use.startswith(":?") for use in uses), f"{secret} must use ${{{secret}:?...}}"


def test_no_literal_secret_in_compose(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for key, value in service.get("environment", {}).items():
            if "PASSWORD" in key or "DATA_SOURCE_NAME" in key or key.endswith("_URL"):
                assert "${" in str(value), f"{name}.{key} holds a literal value"


def test_env_example_documents_every_variable() -> None:
    used = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", COMPOSE_TEXT))
    documented = set(re.findall(r"^([A-Z_][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), re.MULTILINE))
    assert used - documented == set()
    assert documented - used == set()
    example = (ROOT / ".env.example").read_text()
    for secret in SECRETS:
        assert re.search(rf"^{secret}=$", example, re.MULTILINE), f"{secret} must ship empty"


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    text = re.sub(r"<<'PY'\n.*?\nPY\n", "<<'PY'\n", text, flags=re.DOTALL)  # heredoc bodies
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def test_dockerfile_is_multi_stage_non_root_and_exec_form() -> None:
    instructions = _dockerfile_instructions()
    stages = [args for op, args in instructions if op == "FROM"]
    assert len(stages) >= 2 and " AS builder" in stages[0]
    assert any("--from=builder" in args for op, args in instructions if op == "COPY")
    runtime = instructions[[op for op, _ in instructions].index("FROM", 1) :]
    users = [args for op, args in runtime if op == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    entrypoint = json.loads(next(args for op, args in runtime if op == "ENTRYPOINT"))
    assert isinstance(entrypoint, list) and entrypoint[-1] == "cryptostock"
    assert json.loads(next(args for op, args in runtime if op == "CMD"))
    assert any(op == "HEALTHCHECK" and "/metrics" in args for op, args in runtime)
    assert ("STOPSIGNAL", "SIGTERM") in runtime


def test_dockerfile_installs_the_package_from_a_trimmed_context() -> None:
    instructions = _dockerfile_instructions()
    runs = " ".join(args for op, args in instructions if op == "RUN")
    assert "pip install" in runs and "/opt/venv" in runs
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".git", ".venv", ".tools", ".env", "tests"} <= ignored
    assert "pyproject.toml" not in ignored and "core" not in ignored
