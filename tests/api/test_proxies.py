"""Who the client is, through the real server: X-Forwarded-For counts only from a trusted proxy, so a
client on the same host cannot pick its rate-limit bucket; rate limit and CORS come from the daemon's
settings (flags and environment)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from api.settings import ApiSettings
from cryptostock.cli import main
from cryptostock.settings import ApiDaemonSettings, RunSettings
from tests.api.live import LiveApi

LIMITED = {"rate_limit_per_second": 0.01, "rate_limit_burst": 2}


def _statuses(api: LiveApi, forwarded_for: list[str]) -> list[int]:
    with httpx.Client(base_url=api.url) as http:
        return [
            http.get("/api/v1/symbols", headers={"X-Forwarded-For": address}).status_code
            for address in forwarded_for
        ]


def test_forwarded_for_from_an_untrusted_peer_does_not_bypass_the_rate_limit(tmp_path: Path) -> None:
    with LiveApi(tmp_path, ApiSettings(**LIMITED)) as api:  # type: ignore[arg-type]
        statuses = _statuses(api, [f"203.0.113.{i}" for i in range(6)])
    assert statuses == [200, 200, 429, 429, 429, 429]


def test_forwarded_for_from_a_trusted_proxy_names_the_client(tmp_path: Path) -> None:
    settings = ApiSettings(**LIMITED, trusted_proxies=["127.0.0.1"])  # type: ignore[arg-type]
    with LiveApi(tmp_path, settings) as api:
        distinct = _statuses(api, [f"203.0.113.{i}" for i in range(6)])
        same = _statuses(api, ["198.51.100.7"] * 3)
        # A client's own X-Forwarded-For is kept by the proxy, which appends the peer it saw: the last
        # address that is not a trusted proxy is the client.
        spoofed = _statuses(api, ["1.2.3.4, 198.51.100.7", "5.6.7.8, 198.51.100.7"])
    assert distinct == [200] * 6
    assert same == [200, 200, 429]
    assert spoofed == [429, 429]


def test_ipv6_clients_share_a_bucket_per_64() -> None:
    from api.ratelimit import client_key

    def key(host: str) -> str:
        return client_key({"client": (host, 1)})

    assert key("2001:db8:1:2::1") == key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert key("2001:db8:1:3::1") != key("2001:db8:1:2::1")
    assert key("192.0.2.1") == "192.0.2.1"
    assert key("not-an-address") == "not-an-address"


def test_daemon_settings_carry_rate_limit_cors_and_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRYPTOSTOCK_CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("CRYPTOSTOCK_TRUSTED_PROXIES", "127.0.0.1,10.0.0.0/8,::1")
    monkeypatch.setenv("CRYPTOSTOCK_RATE_LIMIT_PER_SECOND", "5")
    monkeypatch.setenv("CRYPTOSTOCK_HEADER_TIMEOUT", "3")
    for settings in (ApiDaemonSettings(), RunSettings()):
        api = settings.api_settings()
        assert api.cors_origins == ["https://a.example", "https://b.example"]
        assert api.trusted_proxies == ["127.0.0.1", "10.0.0.0/8", "::1"]
        assert (api.rate_limit_per_second, api.header_timeout) == (5.0, 3.0)
    flagged = ApiDaemonSettings(cors_origins="https://c.example", rate_limit_burst=7).api_settings()
    assert (flagged.cors_origins, flagged.rate_limit_burst) == (["https://c.example"], 7)
    monkeypatch.setenv("CRYPTOSTOCK_CORS_ORIGINS", "")  # what compose passes when .env leaves them empty
    monkeypatch.setenv("CRYPTOSTOCK_TRUSTED_PROXIES", "")
    assert (ApiDaemonSettings().cors_origins, ApiDaemonSettings().trusted_proxies) == ([], [])


def test_cors_origins_from_settings_reach_the_server(tmp_path: Path) -> None:
    settings = ApiDaemonSettings(cors_origins="https://app.example", rate_limit_per_second=0).api_settings()
    with LiveApi(tmp_path, settings) as api:
        allowed = httpx.get(f"{api.url}/api/v1/symbols", headers={"Origin": "https://app.example"})
        other = httpx.get(f"{api.url}/api/v1/symbols", headers={"Origin": "https://evil.example"})
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert "access-control-allow-origin" not in other.headers


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (
            ["--trusted-proxies", "127.0.0.1,proxy.local"],
            {},
            "invalid settings: --trusted-proxies: 'proxy.local' is not an IP address or network"
            " (e.g. 127.0.0.1, 10.0.0.0/8, ::1)",
        ),
        (
            [],
            {"CRYPTOSTOCK_HEADER_TIMEOUT": "0"},
            "invalid settings: CRYPTOSTOCK_HEADER_TIMEOUT: Input should be greater than 0",
        ),
        (
            ["--rate-limit-per-second", "-1"],
            {},
            "invalid settings: --rate-limit-per-second: Input should be greater than or equal to 0",
        ),
    ],
)
def test_a_bad_api_setting_is_one_line_naming_it(
    args: list[str],
    env: dict[str, str],
    expected: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["api", "--in-process-bus", *args]) == 2
    assert capsys.readouterr().err.strip() == f"cryptostock api: {expected}"
