"""The API under hostile requests (issue 18 #8): chunked bodies, foreign Host names, busy workspaces, segments.

A live uvicorn server on loopback serving the real demo workspace; raw sockets and http.client where
urllib would hide the detail under test.
"""

from __future__ import annotations

import http.client
import re
import subprocess
import sys
from pathlib import Path

import pytest

from engine.app import views
from engine.app.render import md
from tests.e2e.conftest import LiveServer
from tests.e2e.test_api import call

PATHLIKE = re.compile(r"(?<![\w.:])/(?!api/)[\w.-]+/")


def _post_chunked(url: str, path: str, chunks: list[bytes], host: str | None = None) -> tuple[int, bytes]:
    port = int(url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"content-type": "application/json", "transfer-encoding": "chunked"}
    conn.putrequest("POST", path, skip_host=host is not None)
    if host is not None:
        conn.putheader("host", host)
    for key, value in headers.items():
        conn.putheader(key, value)
    conn.endheaders()
    for chunk in chunks:
        conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    conn.send(b"0\r\n\r\n")
    res = conn.getresponse()
    body = res.read()
    conn.close()
    return res.status, body


def _get_with_host(url: str, path: str, host: str, headers: dict[str, str] | None = None) -> int:
    port = int(url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.putrequest("GET", path, skip_host=True)
    conn.putheader("host", host)
    for key, value in (headers or {}).items():
        conn.putheader(key, value)
    conn.endheaders()
    status = conn.getresponse().status
    conn.close()
    return status


def test_a_chunked_body_over_the_limit_is_refused(live_api: LiveServer) -> None:
    from engine.app.api import MAX_BODY

    big = [b'{"bundle": {"x": "' + b"a" * 16_000] + [b"a" * 16_000] * (MAX_BODY // 16_000 + 2) + [b'"}, "narrative": ""}']
    status, body = _post_chunked(live_api.url, "/api/verify", big)
    assert status == 413 and b"over" in body
    small = [b'{"bundle": {}, ', b'"narrative": "x"}']
    assert _post_chunked(live_api.url, "/api/verify", small)[0] in (200, 400, 422)  # read and judged by the app


def test_a_tokenless_server_answers_only_loopback_host_names(live_api: LiveServer) -> None:
    port = live_api.url.rsplit(":", 1)[1]
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example", f"10.0.0.1:{port}"):
        assert _get_with_host(live_api.url, "/api/feed", host) == 421, host
        assert _get_with_host(live_api.url, "/", host) == 421, host
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "localhost"):
        assert _get_with_host(live_api.url, "/api/feed", host) == 200, host


def test_a_token_server_may_be_reached_under_any_name_with_the_token(demo_workspace: Path) -> None:
    with LiveServer(demo_workspace, token="s3cret") as server:
        assert _get_with_host(server.url, "/api/feed", "journeys.example") == 401
        assert _get_with_host(server.url, "/api/feed", "journeys.example", {"authorization": "Bearer s3cret"}) == 200


@pytest.mark.parametrize("form", ["platform=android", "segment:platform=android", "android"])
def test_the_segment_filter_matches_the_pages_placeholder(live_api: LiveServer, form: str) -> None:
    status, items = call(live_api.url + f"/api/feed?segment={form}")
    assert status == 200 and items
    assert {i["finding"]["segment"] for i in items} == {"platform=android"}


def test_an_unknown_segment_says_so(live_api: LiveServer) -> None:
    status, body = call(live_api.url + "/api/feed?segment=platform=blackberry")
    assert status == 404
    assert "no segment 'platform=blackberry'" in body["error"] and "platform=android" in body["error"]
    assert call(live_api.url + "/api/feed?segment=platform")[0] == 200  # a known key matches all its values


HOLD_LOCK = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("locked", flush=True)
time.sleep(120)
"""


def test_a_busy_workspace_answers_503_without_paths_or_pids(demo_copy: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(demo_copy / "journeygraph.duckdb")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with LiveServer(demo_copy) as server:
            for path in ("/api/snapshots", "/api/graph", "/api/facts", "/api/insights/nope"):
                req_status, body = call(server.url + path)
                assert req_status == 503, (path, body)
                assert "PID" not in body["error"] and not PATHLIKE.search(body["error"]), body
    finally:
        holder.kill()
        holder.wait(timeout=60)


def test_an_error_naming_the_workspace_does_not_show_its_path(tmp_path: Path) -> None:
    with LiveServer(tmp_path / "nothing-here") as server:
        status, body = call(server.url + "/api/snapshots")
    assert status == 404 and "no workspace at nothing-here:" in body["error"]  # its name, never its path
    assert str(tmp_path) not in body["error"] and not PATHLIKE.search(body["error"])


def test_the_markdown_feed_escapes_html(demo_workspace: Path) -> None:
    item = views.feed_items(str(demo_workspace))[0]
    item["finding"]["subject"] = "state:<script>alert(1)</script>"
    item["narrative"]["text"] = 'Reach "\\"><img src=x onerror=alert(document.domain)>" & more'
    text = md.render([item])
    assert "<script" not in text and "<img" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "&lt;img src=x" in text and "&amp; more" in text
