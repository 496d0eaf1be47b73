"""The web playground end to end in a real headless Chromium (Debian's, driven by Playwright)."""

from __future__ import annotations

import shutil

import pytest
from live import IN_PROCESS, live_server

from polycolbert.server.app import create_app

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("Chromium is missing: `make test` installs it (apt-get install chromium)")
    return path


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        yield instance
        instance.close()


def test_search_shows_ranked_highlighted_results(registry, browser, tmp_path):
    with live_server(create_app(registry, keys=[])) as url:
        page = browser.new_page()
        page.goto(url + "/")
        page.wait_for_function("document.querySelectorAll('#model option').length > 0")
        page.select_option("#dims", "64")
        page.click("#search")
        page.wait_for_selector("#results li.result", timeout=60_000)
        shot = tmp_path / "playground.png"
        page.screenshot(path=str(shot), full_page=True)
        results = page.locator("#results li.result")
        assert results.count() == 5, "the results list is empty or incomplete"
        assert "Eiffel" in results.first.inner_text()
        assert results.first.locator("mark").count() > 0  # matched tokens highlighted
        assert "@ 64 dims" in page.inner_text("#status")
        assert shot.stat().st_size > 10_000


def test_key_is_asked_for_and_kept_in_the_session(registry, browser):
    with live_server(create_app(registry, keys=["s3cret"])) as url:
        page = browser.new_page()
        page.goto(url + "/")
        page.wait_for_selector("#status .error")
        assert "API key" in page.inner_text("#status")
        page.fill("#key", "s3cret")
        page.dispatch_event("#key", "change")
        page.wait_for_function("document.querySelectorAll('#model option').length > 0")
        page.click("#search")
        page.wait_for_selector("#results li.result", timeout=60_000)
        assert page.evaluate("sessionStorage.getItem('polycolbert-key')") == "s3cret"
        assert page.evaluate("localStorage.length") == 0


def test_index_mode_shows_index_size(registry, browser, tmp_path):
    from fastapi.testclient import TestClient

    app = create_app(registry, keys=[], index_root=tmp_path, site=IN_PROCESS)
    client = TestClient(app)
    client.post("/v1/indexes", json={"name": "cities"})
    client.post(
        "/v1/indexes/cities/documents",
        json={
            "documents": [
                {"id": "paris", "text": "Paris is the capital of France."},
                {"id": "tokyo", "text": "Tokyo is the capital of Japan."},
            ]
        },
    )
    with live_server(app) as url:
        page = browser.new_page()
        page.goto(url + "/")
        page.wait_for_function("document.querySelectorAll('#source option').length > 1")
        page.select_option("#source", "cities")
        page.fill("#query", "capital of Japan")
        page.click("#search")
        page.wait_for_selector("#results li.result", timeout=60_000)
        assert page.locator("#results li.result").count() == 2
        assert "Tokyo" in page.locator("#results li.result").first.inner_text()
        assert "index: 2 documents" in page.inner_text("#status")
