"""Webhook delivery on hostile receivers and folders (issue 18 #6): nothing counted that did not arrive.

Receivers are real HTTP servers on loopback; the watched stream is the small hostile-input base stream.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import duckdb
import pytest

from engine.app import watch
from engine.workspace import Workspace
from tests.engine.hostile import base_events, config_file, dumps, write_lines


class Hook:
    """Answers POSTs with the statuses in `script` (then 200), 302 → /landing for 'redirect'; logs every request."""

    def __init__(self, script: list[int | str]) -> None:
        self.script, self.log = list(script), []  # type: list[int | str], list[dict[str, Any]]
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                answer = hook.script.pop(0) if hook.script else 200
                hook.log.append({"method": "POST", "key": self.headers.get("idempotency-key"), "status": answer,
                                 "body": json.loads(body)})
                if answer == "redirect":
                    self.send_response(302)
                    self.send_header("Location", "/landing")
                else:
                    self.send_response(int(answer))
                self.send_header("content-length", "0")
                self.end_headers()

            def do_GET(self) -> None:
                hook.log.append({"method": "GET", "path": self.path})
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def delivered(self) -> list[dict[str, Any]]:
        return [r for r in self.log if r["method"] == "POST" and r["status"] == 200]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    write_lines(incoming / "a.jsonl", dumps(base_events()))
    return incoming


def _hook(script: list[int | str]) -> Iterator[Hook]:
    hook = Hook(script)
    yield hook
    hook.close()


def _deliveries(ws: Path) -> int:
    con = duckdb.connect(str(ws / "deliveries.duckdb"), read_only=True)  # watch's own file (engine.app.watch.DeliveryLog)
    try:
        return int(con.execute("SELECT count(*) FROM deliveries").fetchall()[0][0])
    finally:
        con.close()


def test_a_redirect_is_not_a_delivery(tmp_path: Path, folder: Path) -> None:
    for hook in _hook(["redirect"] * 10):
        watch.watch(str(folder), config_path=str(config_file(tmp_path / "c.yaml", webhooks=[{"url": hook.url}])),
                    workspace=str(tmp_path / "ws"), once=True)
        assert [r["method"] for r in hook.log] == ["POST"], "no GET /landing: the redirect is not followed"
        assert _deliveries(tmp_path / "ws") == 0


def test_failed_deliveries_are_retried_on_the_interval_without_new_data(tmp_path: Path, folder: Path, capsys) -> None:
    for hook in _hook([500] * 5):  # every attempt of the first cycle fails (post_json tries 5 times)
        cfg = config_file(tmp_path / "c.yaml", webhooks=[{"url": hook.url}])
        watch.watch(str(folder), config_path=str(cfg), workspace=str(tmp_path / "ws"), interval_s=0.05, max_cycles=3)
        posts = [r for r in hook.log if r["method"] == "POST"]
        assert [r["status"] for r in posts] == [500] * 5 + [200]
        assert len({r["key"] for r in posts}) == 1, "every attempt of the same findings carries one key"
        assert _deliveries(tmp_path / "ws") == len(posts[-1]["body"]["insights"]) > 0
    out = capsys.readouterr().out
    assert "delivered 0, failed" in out and "failed 0" in out


def test_the_retry_waits_longer_after_each_failure() -> None:
    retry = watch._Retry(10.0)
    failed = [watch.DeliveryReport("u", (), ("i",))]
    dues = []
    for _ in range(8):
        retry.record(failed, now=0.0)
        dues.append(retry.due_at)
    assert dues == [10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 320.0, 320.0]
    retry.record([watch.DeliveryReport("u", ("i",), ())], now=0.0)
    assert (retry.failures, retry.due(1e9)) == (0, False)


def test_idempotency_key_follows_the_claim_not_the_insight_id() -> None:
    finding = {"type": "activation_driver", "journey": "j", "subject": "state:a", "predicate": "p", "object": "o"}
    first = [{"insight_id": "i1", "finding": finding}, {"insight_id": "i2", "finding": {**finding, "subject": "state:b"}}]
    later = [{"insight_id": "x9", "finding": finding}, {"insight_id": "x8", "finding": {**finding, "subject": "state:b"}}]
    assert watch.batch_key(first) == watch.batch_key(later)
    assert watch.batch_key(first[:1]) == watch.finding_key(later[0]) != watch.batch_key(first)


def test_slack_text_escapes_mentions_and_links() -> None:
    item = {"rank": 1, "insight_id": "i", "finding": {"type": "drop_off_point", "confidence_label": "High", "q_value": 0.01},
            "narrative": {"text": 'Journeys that reach "<!channel> <https://evil.example|click here>" & more'}}
    text = watch.slack_text(item)
    assert "<" not in text and ">" not in text
    assert 'reach "&lt;!channel&gt; &lt;https://evil.example|click here&gt;" &amp; more' in text


def test_a_folder_of_jsonl_and_csv_reads_both_and_skips_temp_files(tmp_path: Path) -> None:
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    events = base_events()
    write_lines(incoming / "a.jsonl", dumps(events[:200]))
    cols = ("event_id", "user_id", "event_name", "timestamp", "platform")
    write_lines(incoming / "b.csv", [",".join(cols)] + [",".join(e[c] for c in cols) for e in events[200:]])
    write_lines(incoming / "c.csv.part", ["half a fi"])
    for hook in _hook([]):
        watch.watch(str(incoming), config_path=str(config_file(tmp_path / "c.yaml", webhooks=[{"url": hook.url}])),
                    workspace=str(tmp_path / "ws"), once=True)
    con = Workspace.open(tmp_path / "ws", read_only=True, create=False).con  # events: a view over Parquet
    per_file = con.execute("SELECT input_order >> 40, count(*) FROM events GROUP BY ALL ORDER BY ALL").fetchall()
    con.close()
    assert per_file == [(0, 200), (1, len(events) - 200)]  # a.jsonl, b.csv; the .part file is skipped


def test_watch_survives_a_source_that_cannot_be_read(tmp_path: Path, capsys) -> None:
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    (incoming / "broken.parquet").write_bytes(b"not parquet at all")
    cfg = str(config_file(tmp_path / "c.yaml"))
    watch.watch(str(incoming), config_path=cfg, workspace=str(tmp_path / "ws"), interval_s=0.01, max_cycles=2)
    assert "still watching" in capsys.readouterr().out
    with pytest.raises(Exception, match="broken.parquet"):
        watch.watch(str(incoming), config_path=cfg, workspace=str(tmp_path / "ws"), once=True)
