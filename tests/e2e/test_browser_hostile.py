"""The web page under the conditions of issue 18 #8: a token server, the Segment filter, fast clicks.

Headless Debian Chromium driven by Playwright against a live server on the real demo workspace.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import LiveServer
from tests.e2e.test_browser import CHROMIUM, FLAGS, PAGE_TIMEOUT_MS, _ensure_chromium
from tests.e2e.test_hostile_names import ARROWY, workspace  # noqa: F401 - the names workspace fixture

SLOW_TRACE = """
window.__slow = null;
const realFetch = window.fetch;
window.fetch = async (url, options) => {
  const res = await realFetch(url, options);
  if (window.__slow && String(url).includes(window.__slow)) await new Promise((done) => setTimeout(done, 2500));
  return res;
};
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    _ensure_chromium()
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        launched.close()


def _page(browser: Any) -> Any:
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    return context.new_page()


def test_the_token_comes_from_the_address_and_leaves_it(browser: Any, demo_workspace: Path) -> None:
    with LiveServer(demo_workspace, token="s3cret") as server:
        page = _page(browser)
        page.goto(server.url + "/#token=s3cret")
        page.wait_for_selector("#feed li button.item")
        assert "token" not in page.url
        page.wait_for_selector("#graph svg rect")  # every API call carried it


def test_the_page_asks_for_the_token_once(browser: Any, demo_workspace: Path) -> None:
    with LiveServer(demo_workspace, token="s3cret") as server:
        page = _page(browser)
        asked: list[str] = []
        page.on("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept("s3cret")))
        page.goto(server.url + "/")
        page.wait_for_selector("#feed li button.item")
        assert len(asked) == 1 and "token" in asked[0]


def test_the_segment_filter_takes_its_own_placeholder(browser: Any, live_api: LiveServer) -> None:
    page = _page(browser)
    page.goto(live_api.url + "/")
    page.wait_for_selector("#feed li button.item")
    placeholder = page.get_attribute("#f-segment", "placeholder").removeprefix("e.g. ")
    page.fill("#f-segment", placeholder)
    page.locator("#filters button, #filters input[type=submit]").first.click()
    page.wait_for_function("[...document.querySelectorAll('#feed li button.item strong')]"
                           ".every((s) => s.textContent.includes('platform=android'))")
    assert page.locator("#feed li button.item").count() >= 1
    page.fill("#f-segment", "platform=blackberry")
    page.locator("#filters button, #filters input[type=submit]").first.click()
    page.wait_for_selector("#feed li.bad")
    assert "no segment 'platform=blackberry'" in page.locator("#feed li.bad").inner_text()


def test_a_slow_trace_never_shows_under_another_insight(browser: Any, live_api: LiveServer) -> None:
    page = _page(browser)
    page.add_init_script(SLOW_TRACE)
    page.goto(live_api.url + "/")
    page.wait_for_selector("#feed li button.item")
    ids = page.eval_on_selector_all("#feed li button.item", "els => els.map((e) => e.dataset.insight)")
    first_sentence = "document.querySelector('#narrative .sentence') && document.querySelector('#narrative .sentence').textContent"
    page.locator(f"button[data-insight='{ids[0]}']").click()
    page.wait_for_function(f"document.querySelector('#feed li.active').id === 'item-{ids[0]}' && ({first_sentence})")
    text_a = page.evaluate(first_sentence)
    page.evaluate(f"window.__slow = '/api/insights/{ids[0]}/trace'")
    page.locator("#trace-btn").click()  # A's trace is now 2.5 s late
    page.locator(f"button[data-insight='{ids[1]}']").click()
    page.wait_for_function(f"({first_sentence}) && ({first_sentence}) !== {text_a!r}")
    text_b = page.evaluate(first_sentence)
    page.locator("#trace-btn").click()
    page.wait_for_function("document.querySelector('#trace table') || document.querySelector('#trace p.bad')")
    assert page.locator("#trace p.bad").count() == 0, page.locator("#trace").inner_text()
    page.wait_for_timeout(3500)  # A's late answer has arrived by now
    trace = page.locator("#trace").inner_text()
    assert text_b in trace and text_a not in trace


def test_titles_keep_names_with_arrows_and_show_invisible_characters(browser: Any, workspace: tuple[str, str]) -> None:  # noqa: F811
    with LiveServer(Path(workspace[0])) as server:
        page = _page(browser)
        page.goto(server.url + "/")
        page.wait_for_selector("#feed li button.item")
        titles = page.eval_on_selector_all("#feed li button.item strong", "els => els.map((e) => e.textContent)")
    assert any(ARROWY in t for t in titles), titles  # the name with ">" and "->" whole, not split
    assert any("to\\u200bur" in t for t in titles) and not any("\u200b" in t for t in titles), titles
