"""Regenerate docs/screenshot-feed.png: the whole web page on the demo workspace, top insight open.

The page at a laptop-class 1440 px viewport, full height: feed and insight, the journey graph
(labels placed without overlap, minor ones on hover), the charts and the detection-power footer.

    python docs/make_screenshot.py [--workspace .journeygraph-demo]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import LiveServer  # noqa: E402
from tests.e2e.test_browser import CHROMIUM, FLAGS  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workspace", default=".journeygraph-demo")
    args = ap.parse_args()
    if not (Path(args.workspace) / "journeygraph.duckdb").exists():
        from engine.app.pipeline import run_demo

        run_demo(args.workspace, quiet=True)
    from playwright.sync_api import sync_playwright

    with LiveServer(Path(args.workspace)) as server, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        page.goto(server.url + "/")
        page.wait_for_selector("#narrative .sentence")
        page.wait_for_selector("#graph svg rect")
        page.wait_for_selector("#power table")
        page.wait_for_selector("#chart-r svg line.interval", state="attached")
        page.locator("#narrative .sentence").nth(0).hover()
        page.screenshot(path=str(ROOT / "docs" / "screenshot-feed.png"), full_page=True)
        browser.close()


if __name__ == "__main__":
    main()
