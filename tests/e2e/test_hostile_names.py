"""Names that fight the entity ids and the reader (issue 18 #9): `>` / `->` inside state names, invisible characters.

A real pipeline run (template narrator) on the small hostile base stream with its import step renamed
`<im>port->x` and half the users' tour step written `to\\u200bur`.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from engine.app import pipeline, views
from ontology.names import edge_id, entity_states, path_id
from tests.engine.hostile import base_events, config_file, dumps, write_lines

ARROWY = "<im>port->x"
ZW_TOUR = "to\u200bur"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    root = tmp_path_factory.mktemp("names")
    events = base_events(300)
    for e in events:
        if e["event_name"] == "import":
            e["event_name"] = ARROWY
        if e["event_name"] == "tour" and int(e["user_id"][1:]) % 2:
            e["event_name"] = ZW_TOUR
    write_lines(root / "e.jsonl", dumps(events))
    logger = logging.getLogger("engine.ingest")
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    logger.addHandler(handler)
    try:
        pipeline.run(str(root / "e.jsonl"), workspace=str(root / "ws"), config_path=str(config_file(root / "c.yaml")),
                     quiet=True)
    finally:
        logger.removeHandler(handler)
    return str(root / "ws"), "\n".join(records)


def _items(ws: str) -> list[dict[str, Any]]:
    return views.feed_items(ws)


def test_edges_and_paths_through_a_name_with_arrows_keep_their_steps(workspace: tuple[str, str]) -> None:
    """Every edge and path of the stored snapshot that touches the name splits back into exactly its states."""
    from engine import snapshot_store
    from engine.workspace import Workspace

    ws_path, _ = workspace
    ws = Workspace.open(ws_path, create=False)
    try:
        snaps = [snapshot_store.load_snapshot(ws.con, sid) for sid in snapshot_store.snapshot_ids(ws.con)]
    finally:
        ws.close()
    edges = {(src, dst) for snap in snaps for (src, dst) in snap.counts if ARROWY in (src, dst)}
    paths = {tuple(p["path"]) for snap in snaps for p in (snap.payload.get("paths") or {}).get("top") or []}
    paths |= {(src, dst, "project") for src, dst in edges if dst == ARROWY}  # a path through the name, of stored steps
    assert edges and any(ARROWY in path for path in paths)
    assert all(entity_states(edge_id(src, dst)) == [src, dst] for src, dst in edges)
    assert all(tuple(entity_states(path_id(list(path)))) == path for path in paths)
    for item in _items(ws_path):
        for part in (item["finding"]["subject"], item["finding"]["object"]):
            if part.startswith(("edge:", "path:")):
                assert all(entity_states(part)), part  # never an empty or broken step


def test_every_insight_traces_completely(workspace: tuple[str, str]) -> None:
    ws, _ = workspace
    items = _items(ws)
    assert items
    for item in items:
        rec = views.trace(ws, item["insight_id"])["recomputation"]
        assert rec["share"] == 1.0 and rec["matched"] == rec["numbers"] > 0, (item["finding"]["subject"], rec)


def test_look_alike_names_read_differently(workspace: tuple[str, str]) -> None:
    ws, log_text = workspace
    texts = [i["narrative"]["text"] for i in _items(ws)]
    assert any('"to\\u200bur"' in t for t in texts) and any('"tour"' in t for t in texts)
    assert not any("\u200b" in t for t in texts)
    assert "1 event names hold invisible characters" in log_text and "to\\u200bur" in log_text


@pytest.mark.parametrize("names", [("a", "b"), ("a-", "b"), ("x->y", "<script>alert(1)</script>"), ("%3E", "-"),
                                   ("a%", ">b"), ("", "->")])
def test_edge_and_path_ids_give_their_names_back(names: tuple[str, str]) -> None:
    src, dst = names
    assert entity_states(edge_id(src, dst)) == [n for n in names if n]
    assert entity_states(path_id([src, dst, "c"])) == [n for n in (src, dst, "c") if n]


def test_plain_names_keep_their_ids() -> None:
    assert (edge_id("import_data", "invite_teammate"), path_id(["sign_up", "feature_used"])) == (
        "edge:import_data->invite_teammate", "path:sign_up>feature_used")
