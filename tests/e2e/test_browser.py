"""The web page in headless Debian Chromium driven by Playwright: feed → insight → trace → ask.

Screenshots go to test-artifacts/ so a person can look at what the page shows.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, LiveServer

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("JOURNEYGRAPH_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
PAGE_TIMEOUT_MS = 120_000  # every wait of the page: generous, the machine may be loaded (issue 18 #10)
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _ensure_chromium() -> None:
    """Debian's Chromium is the browser (no browser download); install it when we can (root + apt)."""
    if Path(CHROMIUM).exists():
        return
    if shutil.which("apt-get") and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=False, env=env, capture_output=True)
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: run `apt-get install chromium` (as root) and re-run")


@pytest.fixture(scope="module")
def page(live_api: LiveServer) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    _ensure_chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    external: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        context = browser.new_context(viewport={"width": 1366, "height": 900})
        context.set_default_timeout(PAGE_TIMEOUT_MS)
        pg = context.new_page()
        pg.on("request", lambda req: external.append(req.url) if not req.url.startswith(live_api.url) else None)
        pg.goto(live_api.url + "/")
        yield pg
        browser.close()
    assert external == [], f"the page made external requests: {external}"


def test_feed_loads_with_confidence_labels(page) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_selector("#feed li button.item")
    items = page.locator("#feed li button.item")
    assert items.count() >= 3
    first = items.nth(0).inner_text()
    assert "#1" in first and any(label in first for label in ("High", "Medium", "Low"))
    page.screenshot(path=str(ARTIFACTS / "feed.png"), full_page=True)


def test_top_insight_opens_with_cited_sentences(page) -> None:  # type: ignore[no-untyped-def]
    page.locator("#feed li button.item").nth(0).click()
    page.wait_for_load_state("networkidle")
    page.wait_for_selector("#narrative .sentence")
    sentence = page.locator("#narrative .sentence").nth(0)
    cited = sentence.get_attribute("data-facts").split()
    assert cited
    sentence.hover()
    page.wait_for_function("document.querySelectorAll('.fact.hl').length >= 1")
    highlighted = page.eval_on_selector_all(".fact.hl", "els => els.map(e => e.id.slice(5))")
    assert set(highlighted) <= set(cited) and highlighted


def test_trace_panel_shows_recomputation(page) -> None:  # type: ignore[no-untyped-def]
    page.locator("#trace-btn").click()
    page.wait_for_selector("#trace table")
    text = page.locator("#trace").inner_text()
    assert "match" in text and "MISMATCH" not in text
    page.screenshot(path=str(ARTIFACTS / "trace.png"), full_page=True)


def test_ask_gives_a_cited_answer(page) -> None:  # type: ignore[no-untyped-def]
    page.fill("#ask-input", "Which step is most associated with converting?")
    page.keyboard.press("Enter")
    page.wait_for_selector("#answer .answer-text")
    assert "import_data" in page.locator("#answer .answer-text").inner_text()
    assert page.locator("#answer .facts li").count() >= 1
    page.screenshot(path=str(ARTIFACTS / "ask.png"), full_page=True)


def test_journey_graph_and_charts_drawn(page) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_selector("#graph svg rect")
    assert page.locator("#graph svg rect").count() >= 5
    assert page.locator("#chart-b svg rect").count() >= 3
    assert page.locator("#chart-r svg rect").count() >= 3 or page.locator("#chart-r svg circle").count() >= 3


def test_removal_chart_gets_bootstrap_intervals(page) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_selector("#chart-r svg line.interval", state="attached")  # fetched after the plain chart; a line has no height
    assert page.locator("#chart-r svg line.interval").count() >= 3
    assert page.locator("#chart-r svg circle").count() == page.locator("#chart-r svg line.interval").count()
    assert "bootstrap intervals, 200 replicates" in page.locator("#chart-r").inner_text()
    page.locator("#chart-r").screenshot(path=str(ARTIFACTS / "removal_intervals.png"))


def test_keyboard_can_open_an_insight(page) -> None:  # type: ignore[no-untyped-def]
    page.locator("#feed li button.item").nth(1).focus()
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('#feed li.active') !== null")
    assert page.locator("#feed li.active").count() == 1
