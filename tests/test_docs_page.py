"""GET /docs in a real browser (headless Debian Chromium) against a real server: the page
renders the document, shows the list endpoint and its filters, and asks no other host for
anything, with no failed request.

Skipped when Chromium is missing, except under CI=true (.ci/run installs it). With
LEADS_UPDATE_SCREENSHOT=1 it also refreshes docs/docs-page.png, the README's picture.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from server import Server, running_server

pytestmark = pytest.mark.server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "docs-page.png"
ALLOWED_SCHEMES = ("data:", "blob:", "about:")


@pytest.fixture
def docs_server(database_url: str, tmp_path: Path) -> Iterator[Server]:
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Chromium is required under CI=true (apt-get install chromium)")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    with running_server(database_url, tmp_path) as server:
        yield server


def test_the_reference_page_renders_offline(docs_server: Server, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    base = docs_server.base_url
    requested: list[str] = []
    failed: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.on("request", lambda r: requested.append(r.url))
            page.on("requestfailed", lambda r: failed.append(f"{r.url}: {r.failure}"))
            page.on("response", lambda r: r.status >= 400 and failed.append(
                f"{r.url}: HTTP {r.status}"))
            page.goto(f"{base}/docs", wait_until="networkidle")
            listing = page.locator("#operations-Leads-list_leads_get")
            listing.wait_for(timeout=15_000)
            assert "/api/leads" in listing.inner_text()
            assert "List leads" in listing.inner_text()
            listing.locator(".opblock-summary").first.click()
            parameters = listing.locator(".parameters")
            parameters.wait_for(timeout=10_000)
            names = parameters.inner_text()
            for name in ("status", "createdAt[gte]", "value[lt]", "gclid[exists]",
                         "epik[exists]", "sessionId", "search", "sort", "fields"):
                assert name in names, name
            page.locator(".scheme-container .authorize").wait_for(timeout=5_000)  # keys
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(tmp_path / "docs-page.png"))
        finally:
            browser.close()
    assert not failed, failed
    outside = [url for url in requested
               if not url.startswith(base) and not url.startswith(ALLOWED_SCHEMES)]
    assert not outside, outside
    assert f"{base}/openapi.json" in requested
    if os.environ.get("LEADS_UPDATE_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(tmp_path / "docs-page.png", SCREENSHOT)
