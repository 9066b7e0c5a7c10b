"""The pages a person opens: /docs, /redoc and the live page at / load every asset from this server (no
CDN), and the assets ship inside the wheel."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT


class _Assets(HTMLParser):
    """Every URL a page loads by itself: script src, link href (stylesheets, icons), img src."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"script": "src", "link": "href", "img": "src"}.get(tag)
        for name, value in attrs:
            if name == wanted and value:
                self.urls.append(value)


def _assets(html: str) -> list[str]:
    parser = _Assets()
    parser.feed(html)
    return parser.urls


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        ("/docs", {"swagger-ui-bundle.js", "swagger-ui.css"}),
        ("/redoc", {"redoc.standalone.js"}),
        ("/", {"lightweight-charts.standalone.production.js", "app.js", "app.css"}),
    ],
)
async def test_pages_load_every_asset_from_this_server(
    client: httpx.AsyncClient, page: str, expected: set[str]
) -> None:
    response = await client.get(page)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    urls = _assets(response.text)
    assert expected <= {url.rsplit("/", 1)[-1] for url in urls}, urls
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), f"{page} loads {url} from elsewhere"
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 0, url
    assert "cdn" not in response.text.lower() and "googleapis" not in response.text


async def test_vendored_assets_carry_their_licences(client: httpx.AsyncClient) -> None:
    for path in (
        "/static/vendor/lightweight-charts/LICENSE",
        "/static/vendor/lightweight-charts/NOTICE",
        "/static/vendor/swagger-ui-dist/LICENSE",
        "/static/vendor/swagger-ui-dist/NOTICE",
        "/static/vendor/redoc/LICENSE",
    ):
        response = await client.get(path)
        assert response.status_code == 200, path
    notice = (await client.get("/static/vendor/lightweight-charts/NOTICE")).text
    assert "TradingView" in notice
    versions = (await client.get("/static/vendor/VERSIONS")).text
    assert "lightweight-charts 5.2.1 Apache-2.0" in versions


async def test_the_pages_stay_out_of_the_openapi_document(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert not {"/", "/docs", "/redoc"} & set(paths)
    assert (await client.get("/static/nope.js")).status_code == 404


@pytest.mark.slow
def test_the_wheel_ships_every_static_asset(tmp_path: Path) -> None:
    source = tmp_path / "src"  # a copy: building in place would leave build/ in the work tree
    skip = shutil.ignore_patterns(".*", "build", "data", "logs", "*.egg-info", "__pycache__")
    shutil.copytree(ROOT, source, ignore=skip)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(source)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("cryptostock-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    static = ROOT / "api" / "static"
    expected = {f"api/static/{p.relative_to(static).as_posix()}" for p in static.rglob("*") if p.is_file()}
    assert len(expected) >= 15
    assert expected <= shipped, sorted(expected - shipped)
