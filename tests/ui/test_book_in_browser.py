"""The course book read in a real browser, offline: pages opened from file:// with every other request
blocked show rendered maths (local MathJax), their figures, a widget as a static snapshot, and search results."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from book_helpers import built_book

pytestmark = [pytest.mark.ui, pytest.mark.slow, pytest.mark.xdist_group("book")]

CHROMIUM = os.environ.get("TUTORLIB_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"


@pytest.fixture(scope="module")
def html(tmp_path_factory) -> Path:
    return built_book(tmp_path_factory)


@pytest.fixture(scope="module")
def offline_page(html):
    """A Chromium page on which every request that is not for a file:// URL is recorded and refused."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium (the CI script does)")
    pytest.importorskip("playwright")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        context = browser.new_context(viewport={"width": 1300, "height": 900})
        refused: list[str] = []

        def route(r):
            if r.request.url.startswith("file://"):
                r.continue_()
            else:
                refused.append(r.request.url)
                r.abort()

        context.route("**/*", route)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("requestfailed", lambda req: req.url.startswith("file://") and errors.append(f"missing {req.url}"))
        yield page, refused, errors
        context.close()
        browser.close()


def _open(page, url: str) -> None:
    page.goto(url)
    page.wait_for_load_state("load")


def _wait_for_maths(page) -> int:
    page.wait_for_selector("mjx-container", timeout=30_000)
    return page.locator("mjx-container").count()


def test_landing_page_lesson_and_widget_page_offline(html, offline_page):
    page, refused, errors = offline_page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    _open(page, (html / "index.html").as_uri())
    lesson_links = page.locator("article a[href^='notebooks/']")
    assert lesson_links.count() >= 14, "the landing page's lesson table is missing links"
    page.screenshot(path=str(ARTIFACTS / "book-index.png"))

    _open(page, (html / "notebooks" / "01_optimizers.html").as_uri())
    assert _wait_for_maths(page) > 10, "lesson 01's maths was not rendered by MathJax"
    assert page.locator("mjx-merror, mjx-container [data-mjx-error]").count() == 0, "MathJax reported a TeX error"
    page.screenshot(path=str(ARTIFACTS / "book-lesson-01.png"))

    _open(page, (html / "extra" / "book_page.html").as_uri())
    assert _wait_for_maths(page) >= 2
    assert page.locator("mjx-container[display='true']").count() == 1, "the display equation was not rendered"
    figures = page.locator("article img")
    assert figures.count() == 2
    for i in range(2):
        figures.nth(i).scroll_into_view_if_needed()
        assert figures.nth(i).evaluate("img => img.complete && img.naturalWidth > 100"), f"figure {i} did not load"
    snapshot = page.locator(".widget-snapshot:not(.progress)")
    assert snapshot.count() == 1 and "steps = 3 · optimizer = adam" in snapshot.inner_text()
    assert "final loss 0.125" in snapshot.inner_text()
    bar = page.locator("article .widget-snapshot.progress progress")
    assert bar.count() == 1 and bar.evaluate("p => p.value === p.max"), "tqdm's bar is not shown as it ended"
    page.screenshot(path=str(ARTIFACTS / "book-widget-page.png"), full_page=True)

    assert not refused, f"the book asked the network for {refused[:5]}"
    assert not errors, f"the pages raised or missed files: {errors[:5]}"


def test_search_works_offline(html, offline_page):
    page, refused, errors = offline_page
    _open(page, (html / "search.html").as_uri() + "?q=LoRA")
    page.wait_for_selector("#search-results li", timeout=30_000)
    hits = page.locator("#search-results li a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert any("06_peft" in h for h in hits), f"searching LoRA did not find lesson 06: {hits[:10]}"
    assert not refused and not errors, (refused[:5], errors[:5])
