"""A real headless Chromium (Debian's `chromium`, driven by Playwright over CDP) opening pages served by a
real uvicorn server. No browser is downloaded: `scripts/ensure-chromium.sh` installs Debian's package
(`make test` runs it). When Chromium or Playwright is missing the tests fail and say so; they never skip.

Set TEST_SCREENSHOT_DIR to keep the screenshots the tests take (the README's comes from there)."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

CHROMIUM = os.environ.get("TEST_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags Chromium itself tries to reach Google (refused here).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

try:
    from playwright.async_api import BrowserContext, Page, async_playwright
except ImportError:  # pragma: no cover - the dev extra installs it
    async_playwright = None


@dataclass
class BrowserPage:
    """A page with every request and WebSocket it opened (`urls`), what the browser refused to send
    (`blocked`: its content security policy), and every console error and page error."""

    page: Page
    urls: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def foreign(self, allowed: str) -> list[str]:
        """URLs sent to a host:port other than `allowed` (data: and blob: are not requests to a host)."""
        sent = [u for u in self.urls if u not in self.blocked and not u.startswith(("data:", "blob:"))]
        return [u for u in sent if urlsplit(u).netloc != allowed]


def _chromium_or_fail() -> str:
    if async_playwright is None:
        pytest.fail("playwright is not installed: `make venv` installs the dev extra")
    path = shutil.which(CHROMIUM) or CHROMIUM
    if not os.access(path, os.X_OK):
        pytest.fail(f"no Chromium at {CHROMIUM}: run `bash scripts/ensure-chromium.sh` (make test does)")
    return path


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[BrowserContext]:
    """A fresh Chromium profile in tmp_path; closed after the test."""
    executable = _chromium_or_fail()
    async with async_playwright() as playwright:  # type: ignore[misc]
        context = await playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=executable,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
            timezone_id="UTC",
        )
        try:
            yield context
        finally:
            await context.close()


async def open_page(context: BrowserContext, url: str) -> BrowserPage:
    page = await context.new_page()
    recorded = BrowserPage(page)
    page.on("request", lambda request: recorded.urls.append(request.url))
    page.on("websocket", lambda ws: recorded.urls.append(ws.url))
    page.on("requestfailed", lambda r: _blocked(recorded, r.url, r.failure))
    page.on("pageerror", lambda error: recorded.errors.append(str(error)))
    page.on("console", lambda m: _console(recorded, m.type, m.text))
    await page.goto(url, wait_until="load")
    return recorded


def _blocked(recorded: BrowserPage, url: str, failure: str | None) -> None:
    if failure == "csp":
        recorded.blocked.append(url)


def _console(recorded: BrowserPage, kind: str, text: str) -> None:
    if kind == "error" and "Content Security Policy" not in text:  # refusals are in `blocked`
        recorded.errors.append(text)


async def screenshot(page: Page, tmp_path: Path, name: str) -> Path:
    """A PNG of the whole page in tmp_path, copied to TEST_SCREENSHOT_DIR when set."""
    path = tmp_path / name
    await page.screenshot(path=str(path), full_page=True)
    keep = os.environ.get("TEST_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / name)
    return path
