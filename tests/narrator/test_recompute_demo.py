"""Traceability on the bundled demo, end to end through the pipeline: every number of every fact recomputes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from demo_workspace import open_demo

from narrator.recompute import compare_snapshot, make_context, recompute_all


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any, Any]]:
    with open_demo(tmp_path_factory) as opened:
        yield opened


def test_demo_every_number_of_every_fact_recomputes_exactly(demo: tuple) -> None:
    """Traceability on the demo: 100 % of facts and of their numbers, q-values included, not a sample."""
    from narrator.kinds import registry

    ws, cfg, store = demo
    facts = list(store.facts())
    assert len(facts) >= 50 and {f.predicate for f in facts} <= set(registry().facts)
    summary = recompute_all(facts, con=ws.con, cfg=cfg)
    assert summary["failures"] == []
    assert summary["facts_ok"] == summary["facts"] == len(facts)
    assert summary["numbers_exact"] == summary["numbers_matched"] == summary["numbers"] > 300


def test_demo_snapshot_counts_recompute(demo: tuple) -> None:
    ws, cfg, _ = demo
    ids = [r[0] for r in ws.con.execute("SELECT snapshot_id FROM snapshots ORDER BY snapshot_id").fetchall()]
    ctx = make_context(ws.con, cfg)
    bad = {sid: [k for k, v in compare_snapshot(ws.con, sid, ctx)["fields"].items() if not v["match"]]
           for sid in ids}
    assert {sid: keys for sid, keys in bad.items() if keys} == {}
