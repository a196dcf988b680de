"""journey_progress: an outcome known at the data end is the one the full data gives (later data cannot change it)."""

from __future__ import annotations

import duckdb
import pytest

from engine.config import load_config
from fixtures.generate_demo import DemoParams
from tests.detectors.release_streams import write_stream
from tests.engine.conftest import run_pipeline


def _journeys(where, days_after):
    config = write_stream(DemoParams(n_users=1500), where, days_after, inactive_for="3d", window="30d")
    cfg = load_config(config)
    con = duckdb.connect(str(where / "j.duckdb"))
    run_pipeline(con, where / "events.jsonl", cfg)
    return con


@pytest.fixture(scope="module")
def cut_and_full(tmp_path_factory):
    cut, full = _journeys(tmp_path_factory.mktemp("cut"), 5), _journeys(tmp_path_factory.mktemp("full"), 60)
    yield cut, full
    cut.close()
    full.close()


_DECIDED_SQL = """
SELECT j.actor_id, p.known_outcome, p.known_end_ts FROM journeys j JOIN journey_progress p USING (journey, journey_id)
WHERE p.known_outcome IS NOT NULL ORDER BY ALL
"""
_FINAL_SQL = """
SELECT j.actor_id, coalesce(j.outcome, p.known_outcome), CASE WHEN j.censored THEN p.known_end_ts ELSE j.end_ts END
FROM journeys j LEFT JOIN journey_progress p USING (journey, journey_id) ORDER BY ALL
"""


def test_known_outcomes_of_open_journeys_are_final(cut_and_full):
    cut, full = cut_and_full
    decided = cut.execute(_DECIDED_SQL).fetchall()
    final = {a: (o, t) for a, o, t in full.execute(_FINAL_SQL).fetchall()}
    assert len(decided) > 50
    assert [(a, o, t) for a, o, t in decided if final.get(a) != (o, t)] == []


def test_every_censored_journey_has_a_progress_row(cut_and_full):
    cut, _ = cut_and_full
    censored, tracked, data_end = cut.execute("""
        SELECT count(*) FILTER (WHERE j.censored), count(p.journey_id), (SELECT max(ts) FROM events)
        FROM journeys j LEFT JOIN journey_progress p USING (journey, journey_id)""").fetchone()
    assert censored == tracked > 0
    assert cut.execute("SELECT count(*) FROM journey_progress WHERE known_end_ts > data_end OR data_end <> ?",
                       [data_end]).fetchone()[0] == 0


_STEPS_SQL = """
WITH s AS (SELECT j.actor_id, j.censored, s.step, s.state, s.ts,
                  coalesce(lead(s.state) OVER (PARTITION BY s.journey_id ORDER BY s.step),
                           CASE WHEN j.censored THEN p.known_outcome ELSE j.outcome END) AS next
           FROM journey_steps s JOIN journeys j USING (journey, journey_id)
           LEFT JOIN journey_progress p USING (journey, journey_id))
SELECT actor_id, step, state, next FROM s {where} ORDER BY ALL
"""


def test_resolved_steps_of_open_journeys_are_final(cut_and_full):
    cut, full = cut_and_full
    data_end = cut.execute("SELECT max(ts) FROM events").fetchone()[0]
    resolved = cut.execute(_STEPS_SQL.format(where="WHERE censored AND ts + INTERVAL 3 DAY <= ?"), [data_end]).fetchall()
    final = {(a, k): (s, n) for a, k, s, n in full.execute(_STEPS_SQL.format(where="")).fetchall()}
    assert len(resolved) > 100
    assert [r for r in resolved if final.get((r[0], r[1])) != (r[2], r[3])] == []
