"""Push, not pull: watch a folder, append a week with a planted change, get it delivered once.

The webhook receiver is a real HTTP server on loopback; one variant fails its
first request so the retry path is exercised.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.app import watch
from fixtures.generate_demo import DemoParams, generate

RELEASE_DAY = 28
PARAMS = replace(DemoParams.null(regression=1.0), n_users=4000, days=42, release_day=RELEASE_DAY, seed=11, bots=0)


class Receiver:
    """Records every POST; answers 500 to the first `fail_first` requests."""

    def __init__(self, fail_first: int = 0) -> None:
        self.requests: list[dict[str, Any]] = []
        self.failures_left = fail_first
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if receiver.failures_left > 0:
                    receiver.failures_left -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                receiver.requests.append({"key": self.headers.get("idempotency-key"), "body": json.loads(body)})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _write(rows: list[dict[str, Any]], path: Path) -> None:
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


def _config(tmp_path: Path, hook_url: str, **hook: str) -> Path:
    cfg = yaml.safe_load((Path(__file__).resolve().parents[2] / "fixtures" / "demo.yaml").read_text())
    cfg.pop("source", None)
    cfg["journeys"]["activation"]["window"] = "7d"
    cfg["journeys"]["activation"]["outcomes"]["dropped"] = {"inactive_for": "3d"}
    cfg["releases"] = [{"name": PARAMS.release_name, "at": PARAMS.release_at}]
    cfg["snapshots"] = {"period": "7d", "release_window": "7d"}
    cfg["webhooks"] = [{"url": hook_url, **hook}]
    path = tmp_path / "journeygraph.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def streams() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The same simulated product split at the release: 4 weeks before, then the week after it arrives."""
    rows = generate(PARAMS)
    cut = PARAMS.release_at
    before = [r for r in rows if _utc(r["timestamp"]) < cut]
    after = [r for r in rows if _utc(r["timestamp"]) >= cut]
    return before, after


def _utc(ts: str) -> str:
    from datetime import datetime

    return datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver(fail_first=1) as r:
        yield r


def test_appended_week_with_a_planted_change_is_pushed_once(tmp_path: Path, streams: Any, receiver: Receiver) -> None:
    before, after = streams
    folder = tmp_path / "incoming"
    folder.mkdir()
    _write(before, folder / "part-000.jsonl")
    config = _config(tmp_path, receiver.url)
    ws = str(tmp_path / "ws")

    watch.watch(str(folder), config_path=str(config), workspace=ws, once=True)
    first = list(receiver.requests)  # a null stream before the release: usually nothing to say
    assert not any(r["body"]["finding"]["type"] == "regression" for r in first)
    stored = _snapshots(ws)

    _write(after, folder / "part-001.jsonl")
    watch.watch(str(folder), config_path=str(config), workspace=ws, once=True)
    # the batch reused the sealed weeks (their journeys unchanged) and rewrote no stored snapshot
    run = _last_summary(ws)["incremental"]
    assert run["mode"] == "incremental" and run["snapshots_sealed"] >= run["snapshots_reused"] > 0
    grown = _snapshots(ws)
    assert {k: grown[k] for k in stored} == stored and len(grown) > len(stored)
    new = receiver.requests[len(first):]
    assert len(new) == 1, "one appended week with one planted change is one delivery"
    insights = new[0]["body"]["insights"]
    assert new[0]["key"] == watch.batch_key(insights)
    planted = [i["finding"] for i in insights if i["finding"]["type"] == "regression"]
    assert {(f["subject"], f["release"]) for f in planted} >= {("edge:import_data->invite_teammate", PARAMS.release_name)}
    assert all("import_data" in i["finding"]["subject"] for i in insights), [i["finding"]["subject"] for i in insights]
    assert receiver.failures_left == 0, "the receiver's first failure was retried"

    watch.watch(str(folder), config_path=str(config), workspace=ws, once=True)
    assert len(receiver.requests) == len(first) + 1, "re-running must deliver nothing twice"


def _snapshots(ws: str) -> dict[str, str]:
    from engine.workspace import Workspace

    con = Workspace.open(Path(ws), read_only=True, create=False).con
    try:
        return dict(con.execute("SELECT snapshot_id, payload::VARCHAR FROM snapshots").fetchall())
    finally:
        con.close()


def _last_summary(ws: str) -> dict[str, Any]:
    from engine.workspace import Workspace

    con = Workspace.open(Path(ws), read_only=True, create=False).con
    try:
        return json.loads(con.execute("SELECT summary FROM runs ORDER BY watermark DESC LIMIT 1").fetchall()[0][0])
    finally:
        con.close()


def test_slack_digest_is_markdown_once(tmp_path: Path, streams: Any) -> None:
    before, after = streams
    folder = tmp_path / "incoming"
    folder.mkdir()
    _write(before + after, folder / "part-000.jsonl")
    with Receiver() as rec:
        config = _config(tmp_path, rec.url, digest="daily")
        ws = str(tmp_path / "ws")
        watch.watch(str(folder), config_path=str(config), workspace=ws, once=True)
        watch.watch(str(folder), config_path=str(config), workspace=ws, once=True)
        assert len(rec.requests) == 1
        body = rec.requests[0]["body"]
        assert body["format"] == "markdown" and body["text"].startswith("# journeygraph digest")


def test_delivery_gives_up_after_bounded_retries(tmp_path: Path) -> None:
    with Receiver(fail_first=100) as rec:
        with pytest.raises(watch.DeliveryError):
            watch.post_json(rec.url, {"x": 1}, "k", attempts=3)
        assert rec.failures_left == 97 and rec.requests == []


def test_slack_text_form() -> None:
    item = {"rank": 1, "insight_id": "i", "narrative": {"text": "Journeys that reach a convert more often."},
            "finding": {"type": "activation_driver", "confidence_label": "High", "q_value": 0.0001}}
    assert watch.slack_text(item).startswith("*#1 activation driver* (High confidence")
