"""Push, not pull: `journeygraph watch` re-runs when new data arrives and posts new insights.

A folder source is fingerprinted (names, sizes, mtimes); a SQL source re-runs
on the interval. After each run the feed is compared with what was already
delivered: only findings never delivered before (keyed by what they claim,
not by snapshot, so a finding that still holds is not re-announced), and once
each the news that one was resolved (engine/lifecycle.py), are posted,
together in one delivery per run. Delivery is retried with exponential
backoff and jitter and recorded only after a 2xx (a redirect is not a delivery:
urllib would re-send it as a GET without the body), with `Idempotency-Key:` the
finding key (a hash of the sorted keys for several), so a receiver that saw an
attempt can drop a repeat even when the snapshots, hence the insight ids, have
changed. Deliveries that failed are tried again on the watch interval with
exponential backoff, without waiting for new data. Digest webhooks get one
Markdown message per day/week instead. The run publishes like any run
(engine.publish); the feed is read from the published database and the
deliveries are recorded in their own file (DeliveryLog).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import duckdb
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_random_exponential

from engine import publish
from engine.app.render.common import escape_markup
from engine.config import Config, Webhook, load_config
from engine.workspace import DB_NAME, RUN_WAIT_S, Workspace, root_of
from ontology.errors import DeliveryError, JourneyGraphError

log = logging.getLogger(__name__)

DIGEST_SECONDS = {"daily": 86400, "weekly": 7 * 86400}
RETRY_MAX_INTERVALS = 32  # failed deliveries are retried after 1, 2, 4, … up to 32 watch intervals

_DELIVERIES = """
CREATE TABLE IF NOT EXISTS deliveries(
  webhook VARCHAR, finding_key VARCHAR, insight_id VARCHAR, delivered_at DOUBLE,
  PRIMARY KEY (webhook, finding_key))
"""


@dataclass(frozen=True)
class DeliveryReport:
    webhook: str
    delivered: tuple[str, ...]
    failed: tuple[str, ...]


def finding_key(item: dict[str, Any]) -> str:
    """What a feed item claims, independent of snapshot ids (which change as data grows)."""
    f = item["finding"]
    parts = [f["type"], f["journey"], f["subject"], f["predicate"], f["object"], f.get("segment") or "", f.get("release") or ""]
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:24]


def delivery_key(item: dict[str, Any]) -> str:
    """What a delivery announces: the finding, or its resolution (engine/lifecycle.py), each delivered once."""
    key = finding_key(item)
    return f"{key}:resolved" if item.get("status") == "resolved" else key


def source_fingerprint(source: str) -> str:
    path = Path(source)
    files = sorted(path.rglob("*")) if path.is_dir() else sorted(Path().glob(source)) if any(c in source for c in "*?[") else [path]
    h = hashlib.sha256()
    for f in files:
        if f.is_file():
            st = f.stat()
            h.update(f"{f}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def source_glob(source: str) -> str:
    """A watched folder is read as every event file inside it, of every type (ingest skips other files)."""
    path = Path(source)
    return str(path / "*") if path.is_dir() else source


def slack_text(item: dict[str, Any]) -> str:
    f = item["finding"]
    text = escape_markup(item.get("narrative", {}).get("text", ""))  # Slack: no <!channel>, no disguised links
    after = str(item.get("resolved_after") or "release:the last run").partition(":")[2]
    head = f"*resolved after {after}* " if item.get("status") == "resolved" else ""
    return f"{head}*#{item['rank']} {f['type'].replace('_', ' ')}* ({f['confidence_label']} confidence, q={f['q_value']:.4g})\n{text}"


def digest_markdown(items: list[dict[str, Any]]) -> str:
    lines = ["# journeygraph digest", ""]
    for item in items:
        f = item["finding"]
        text = escape_markup(item.get("narrative", {}).get("text", ""))
        lines.append(f"- **{f['type'].replace('_', ' ')}** `{f['subject'].replace('`', chr(39))}` — {text}")
    return "\n".join(lines) + "\n"


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, DeliveryError)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuse redirects: urllib would follow a 30x with a GET and no body, and the payload would be lost."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def post_json(url: str, body: dict[str, Any], idempotency_key: str, timeout: float = 10.0, attempts: int = 5) -> int:
    """POST with bounded, jittered exponential backoff on 5xx/429/connection errors."""

    @retry(retry=retry_if_exception(_retryable), stop=stop_after_attempt(attempts),
           wait=wait_random_exponential(multiplier=0.2, max=5), reraise=True)
    def _send() -> int:
        req = urllib.request.Request(url, data=json.dumps(body, sort_keys=True).encode(), method="POST",
                                     headers={"content-type": "application/json", "idempotency-key": idempotency_key})
        try:
            with _OPENER.open(req, timeout=timeout) as res:
                status = int(res.status)
        except urllib.error.HTTPError as exc:
            if exc.code >= 500 or exc.code == 429:
                raise DeliveryError(f"{url} answered {exc.code}") from exc
            if 300 <= exc.code < 400:
                raise urllib.error.HTTPError(url, exc.code, f"answered {exc.code} (a redirect is not a delivery; "
                                             "point the webhook at its final URL)", exc.headers, None) from exc
            raise
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            raise DeliveryError(f"{url} unreachable: {exc}") from exc
        if not 200 <= status < 300:
            raise DeliveryError(f"{url} answered {status}, not a 2xx")
        return status

    return _send()


def batch_key(items: list[dict[str, Any]]) -> str:
    """Idempotency key of one delivery: what it claims (the finding key, or a hash of the sorted keys for a batch).

    Not the insight ids: they change with the snapshots, so a repeat after new data would get a new key.
    """
    keys = sorted(delivery_key(i) for i in items)
    return keys[0] if len(keys) == 1 else "batch-" + hashlib.sha256("\n".join(keys).encode()).hexdigest()[:24]


class _Connected(Protocol):
    con: duckdb.DuckDBPyConnection


DELIVERIES_DB = "deliveries.duckdb"
DELIVERIES_LOCK = "deliveries.lock"


@dataclass
class DeliveryLog:
    """What was delivered: its own small file `<ws>/deliveries.duckdb`, not the published database.

    Why its own file: a delivery is recorded after the run has published, once per webhook answer; writing
    it into the published database would mean another copy-and-publish of the whole file per delivery
    (engine.publish), while readers never need it. One writer at a time, by `<ws>/deliveries.lock`.
    """

    con: duckdb.DuckDBPyConnection

    @classmethod
    @contextmanager
    def open(cls, workspace: str | None) -> Iterator[DeliveryLog]:
        root = root_of(workspace)
        root.mkdir(parents=True, exist_ok=True)
        with publish.exclusive(root / DELIVERIES_LOCK, RUN_WAIT_S, "another watch is recording deliveries "
                               "to this workspace; retry when it has finished"):
            path = root / DELIVERIES_DB
            if not path.exists():
                _create_log(path, root)
            con = duckdb.connect(str(path))
            try:
                yield cls(con)
            finally:
                con.close()


def _create_log(path: Path, root: Path) -> None:
    """A new delivery log holding what an older workspace recorded in its database (so nothing is sent twice)."""
    rows: list[Any] = []
    if (root / DB_NAME).exists():
        ws = Workspace.read(root)  # through the process's kept attachment: a second ATTACH of it is refused
        try:
            if ws.has_table("deliveries"):
                rows = ws.con.execute("SELECT webhook, finding_key, insight_id, delivered_at FROM deliveries").fetchall()
        finally:
            ws.close()
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    con = duckdb.connect(str(tmp))
    try:
        con.execute(_DELIVERIES)
        if rows:
            con.executemany("INSERT OR IGNORE INTO deliveries VALUES (?, ?, ?, ?)", rows)
    finally:
        con.close()
    os.replace(tmp, path)  # whole or absent: a crash before this leaves no half-imported log


def deliver(ws: _Connected, webhooks: tuple[Webhook, ...], items: list[dict[str, Any]],
            now: Callable[[], float] = time.time) -> list[DeliveryReport]:
    """Post what is new since the last delivery to each webhook, as one delivery per run; record successes.

    One run that uncovers one change usually yields several related findings (an
    edge regressed, the edge next to it, the state's exit rate), so they travel
    together in one delivery instead of paging someone three times.
    """
    ws.con.execute(_DELIVERIES)
    reports = []
    for hook in webhooks:
        done = {r[0] for r in ws.con.execute("SELECT finding_key FROM deliveries WHERE webhook = ?", [hook.url]).fetchall()}
        fresh = [i for i in items if delivery_key(i) not in done]
        if hook.digest != "none":
            reports.append(_deliver_digest(ws, hook, fresh, now))
            continue
        if not fresh:
            reports.append(DeliveryReport(hook.url, (), ()))
            continue
        ids = tuple(i["insight_id"] for i in fresh)
        body: dict[str, Any] = ({"text": "\n\n".join(slack_text(i) for i in fresh)} if hook.format == "slack"
                                else {"kind": "journeygraph.insights", "count": len(fresh), "insights": fresh})
        try:
            post_json(hook.url, body, batch_key(fresh))
        except Exception as exc:
            log.warning("webhook %s failed: %s", hook.url, exc)
            reports.append(DeliveryReport(hook.url, (), ids))
            continue
        ws.con.executemany("INSERT OR IGNORE INTO deliveries VALUES (?, ?, ?, ?)",
                           [[hook.url, delivery_key(i), i["insight_id"], now()] for i in fresh])
        reports.append(DeliveryReport(hook.url, ids, ()))
    return reports


def _deliver_digest(ws: _Connected, hook: Webhook, fresh: list[dict[str, Any]], now: Callable[[], float]) -> DeliveryReport:
    row = ws.con.execute("SELECT max(delivered_at) FROM deliveries WHERE webhook = ?", [hook.url]).fetchone()
    last = row[0] if row else None
    if not fresh or (last is not None and now() - last < DIGEST_SECONDS[hook.digest]):
        return DeliveryReport(hook.url, (), ())
    try:
        post_json(hook.url, {"text": digest_markdown(fresh), "format": "markdown"}, batch_key(fresh))
    except Exception as exc:
        log.warning("digest to %s failed: %s", hook.url, exc)
        return DeliveryReport(hook.url, (), tuple(i["insight_id"] for i in fresh))
    ws.con.executemany("INSERT OR IGNORE INTO deliveries VALUES (?, ?, ?, ?)",
                       [[hook.url, delivery_key(i), i["insight_id"], now()] for i in fresh])
    return DeliveryReport(hook.url, tuple(i["insight_id"] for i in fresh), ())


def run_once(source: str, cfg: Config, config_path: str | None, workspace: str | None) -> list[DeliveryReport]:
    """One incremental run followed by delivery of what is new."""
    from engine.app import pipeline

    pipeline.run(source=source_glob(source), config_path=config_path, workspace=workspace, quiet=True)
    return deliver_pending(cfg, workspace)


def deliver_pending(cfg: Config, workspace: str | None) -> list[DeliveryReport]:
    """Deliver what the current feed holds that no webhook has received yet (no new run)."""
    from engine.app import views

    items = views.feed_items(workspace)
    with DeliveryLog.open(workspace) as log_:
        return deliver(log_, cfg.webhooks, items)


@dataclass
class _Retry:
    """When failed deliveries are tried again: after 1, 2, 4, … watch intervals (capped), reset by a success."""

    interval_s: float
    failures: int = 0
    due_at: float | None = None

    def record(self, reports: list[DeliveryReport], now: float) -> None:
        if any(r.failed for r in reports):
            self.due_at = now + self.interval_s * min(2 ** self.failures, RETRY_MAX_INTERVALS)
            self.failures += 1
        else:
            self.failures, self.due_at = 0, None

    def due(self, now: float) -> bool:
        return self.due_at is not None and now >= self.due_at


def _cycle(step: Callable[[], list[DeliveryReport]], once: bool) -> list[DeliveryReport]:
    """One run or retry; with `once` an error propagates, otherwise it is reported and watching goes on."""
    try:
        reports = step()
    except JourneyGraphError as exc:
        if once:
            raise
        print(f"error: {exc}; still watching", flush=True)
        return []
    for report in reports:
        print(f"{report.webhook}: delivered {len(report.delivered)}, failed {len(report.failed)}", flush=True)
    return reports


def watch(source: str, *, config_path: str, workspace: str | None = None, interval_s: float = 60.0,
          once: bool = False, max_cycles: int | None = None) -> None:
    cfg = load_config(config_path)
    is_sql = source.lstrip().lower().startswith(("select", "with", "from")) or "://" in source
    last = None
    cycles = 0
    retries = _Retry(interval_s)
    while True:
        fingerprint = None if is_sql else source_fingerprint(source)
        if is_sql or fingerprint != last:
            last = fingerprint  # a source that fails is tried again when it changes, not every interval
            retries.record(_cycle(lambda: run_once(source, cfg, config_path, workspace), once), time.monotonic())
        elif retries.due(time.monotonic()):
            retries.record(_cycle(lambda: deliver_pending(cfg, workspace), once), time.monotonic())
        cycles += 1
        if once or (max_cycles is not None and cycles >= max_cycles):
            return
        time.sleep(interval_s)
