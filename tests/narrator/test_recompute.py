"""recompute: every evidence number rebuilt from journeys/journey_steps in a real DuckDB file.

The workspace is filled by hand with SQL; the expected numbers come from a
plain-Python oracle over the same journey list (loops over a dozen journeys,
independent of the SQL under test), so a wrong scope filter, transition rule or
formula shows up as a mismatch.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from detectors.stats import proportion_test, two_proportion_z
from engine.markov import ChainMetrics
from narrator.recompute import (
    compare_snapshot,
    make_context,
    recompute_all,
    recompute_fact,
    recount,
)
from ontology.model import Fact, Provenance

START, CONV, DROP = "sign_up", "converted", "dropped"
# (journey_id, tenant, start day in Jan 2026, outcome or None when censored, platform, steps)
BASE_JOURNEYS: list[tuple[str, str, int, str | None, str, list[str]]] = [
    ("j01", "", 5, CONV, "ios", [START, "import_data", "invite_teammate"]),
    ("j02", "", 5, CONV, "ios", [START, "import_data"]),
    ("j03", "", 6, DROP, "android", [START, "feature_used"]),
    ("j04", "", 6, CONV, "android", [START, "feature_used", "feature_used", "import_data"]),
    ("j05", "", 7, CONV, "ios", [START]),
    ("j06", "", 12, DROP, "android", [START, "feature_used"]),
    ("j07", "", 12, DROP, "ios", [START, "import_data", "invite_teammate"]),
    ("j08", "", 13, DROP, "android", [START, "feature_used", START, "feature_used"]),
    ("j09", "", 13, CONV, "ios", [START, "feature_used", "import_data", "invite_teammate"]),
    ("j10", "", 14, CONV, "android", [START, "import_data", "import_data", "invite_teammate"]),
    ("j11", "", 20, None, "ios", [START, "import_data"]),             # censored: never counted
    ("j12", "other", 5, CONV, "ios", [START, "invite_teammate"]),     # another tenant: never counted
]
COPIES = 4  # four copies of each journey: n = 40 completed, above the narrator's grounding minimum of 30
JOURNEYS = [(f"{jid}{c}", *rest) for c in "abcd"[:COPIES] for jid, *rest in BASE_JOURNEYS]
SNAPSHOTS = {  # snapshot_id -> (scope, segment (key, value) or None, release, window start day, end day)
    "s_all": ("all", None, None, 1, 31),
    "s_ios": ("segment", ("platform", "ios"), None, 1, 31),
    "s_android": ("segment", ("platform", "android"), None, 1, 31),
    "s_w1": ("period", None, None, 5, 12),
    "s_w2": ("period", None, None, 12, 19),
}
STATES = sorted({s for *_, steps in JOURNEYS for s in steps})


def _in_scope(j: tuple, snap: str) -> bool:
    scope, seg, _, lo, hi = SNAPSHOTS[snap]
    _, tenant, day, outcome, platform, _ = j
    if tenant or outcome is None:
        return False
    if scope == "period" and not lo <= day < hi:
        return False
    return seg is None or platform == seg[1]


def oracle(snap: str) -> dict[str, Any]:
    """Counts by plain loops: transitions (last step -> outcome), reach, visits, repeats, outcomes."""
    js = [j for j in JOURNEYS if _in_scope(j, snap)]
    trans: Counter = Counter()
    reach: Counter = Counter()
    reach_out: Counter = Counter()
    repeat: Counter = Counter()
    repeat_out: Counter = Counter()
    visits: Counter = Counter()
    for _, _, _, outcome, _, steps in js:
        for a, b in zip(steps, steps[1:] + [outcome]):
            trans[(a, b)] += 1
        for state, v in Counter(steps).items():
            reach[state] += 1
            reach_out[(state, outcome)] += 1
            visits[state] += v
            if v >= 2:
                repeat[state] += 1
                repeat_out[(state, outcome)] += 1
    return {"n": len(js), "trans": trans, "reach": reach, "reach_out": reach_out, "repeat": repeat,
            "repeat_out": repeat_out, "visits": visits, "outcomes": Counter(j[3] for j in js)}


def _payload(snap: str) -> dict[str, Any]:
    o = oracle(snap)
    scope, seg, release, lo, hi = SNAPSHOTS[snap]
    reach_out: dict[str, dict[str, int]] = {}
    for (state, outcome), c in sorted(o["reach_out"].items()):
        reach_out.setdefault(state, {})[outcome] = c
    return {"snapshot_id": snap, "journey": "activation", "start_state": START, "conversion_outcome": CONV,
            "scope": scope, "segment": {"key": seg[0], "value": seg[1]} if seg else None, "release": release,
            "window": {"start": f"2026-01-{lo:02d}T00:00:00Z", "end": f"2026-01-{hi:02d}T00:00:00Z"},
            "journeys": o["n"], "censored": 0, "reach_counts": dict(o["reach"]), "reach_outcome_counts": reach_out,
            "visit_counts": dict(o["visits"]), "repeat_counts": dict(o["repeat"]),
            "dropoff_outcome": DROP, "states": STATES, "outcomes": [CONV, DROP], "collapse_self_loops": False,
            "completed": o["n"], "outcome_counts": dict(o["outcomes"]),
            "transitions": [{"from": a, "to": b, "count": c} for (a, b), c in sorted(o["trans"].items())]}


def _bulk(con: duckdb.DuckDBPyConnection, table: str, rows: list[tuple], select: str) -> None:
    """Insert many rows in one statement (row-by-row inserts are slow on a shared machine)."""
    import pyarrow as pa

    cols = {f"c{i}": [r[i] for r in rows] for i in range(len(rows[0]))}
    con.register("_rows", pa.table(cols))
    con.execute(f"INSERT INTO {table} {select} FROM _rows")
    con.unregister("_rows")


def build_workspace(path: Path) -> duckdb.DuckDBPyConnection:
    """A workspace DuckDB file holding the contract tables, filled from JOURNEYS and SNAPSHOTS."""
    con = duckdb.connect(str(path))
    con.execute("""
      CREATE TABLE events(tenant_id VARCHAR, actor_id VARCHAR, event_id VARCHAR, event_name VARCHAR, ts TIMESTAMP,
                          state_semantic VARCHAR);
      CREATE TABLE journeys(journey VARCHAR, tenant_id VARCHAR, journey_id VARCHAR, actor_id VARCHAR,
                            start_ts TIMESTAMP, end_ts TIMESTAMP, outcome VARCHAR, censored BOOLEAN, n_steps INTEGER,
                            segments MAP(VARCHAR, VARCHAR));
      CREATE TABLE journey_steps(journey VARCHAR, journey_id VARCHAR, step INTEGER, state VARCHAR, ts TIMESTAMP,
                                 event_id VARCHAR);
      CREATE TABLE snapshots(snapshot_id VARCHAR PRIMARY KEY, tenant_id VARCHAR, journey VARCHAR, scope VARCHAR,
                             segment_key VARCHAR, segment_value VARCHAR, release VARCHAR, window_start TIMESTAMP,
                             window_end TIMESTAMP, payload JSON);""")
    journeys, steps_rows, events = [], [], []
    for jid, tenant, day, outcome, platform, steps in JOURNEYS:
        start = f"2026-01-{day:02d} 09:00:00"
        journeys.append((tenant, jid, f"actor_{jid}", start, start, outcome, outcome is None, len(steps), platform))
        for i, state in enumerate(steps):
            ts = f"2026-01-{day:02d} 09:{i:02d}:00"
            steps_rows.append((jid, i, state, ts, f"e_{jid}_{i}"))
            events.append((tenant, f"actor_{jid}", f"e_{jid}_{i}", state, ts, state))
    _bulk(con, "journeys", journeys, "SELECT 'activation', c0, c1, c2, c3::TIMESTAMP, c4::TIMESTAMP + INTERVAL 1 HOUR, "
          "c5, c6, c7, MAP(['platform'], [c8])")
    _bulk(con, "journey_steps", steps_rows, "SELECT 'activation', c0, c1, c2, c3::TIMESTAMP, c4")
    _bulk(con, "events", events, "SELECT c0, c1, c2, c3, c4::TIMESTAMP, c5")
    for sid, (scope, seg, release, lo, hi) in SNAPSHOTS.items():
        con.execute("INSERT INTO snapshots VALUES (?, '', 'activation', ?, ?, ?, ?, ?, ?, ?)",
                    [sid, scope, seg[0] if seg else None, seg[1] if seg else None, release,
                     f"2026-01-{lo:02d}", f"2026-01-{hi:02d}", json.dumps(_payload(sid))])
    return con


@pytest.fixture(scope="module")
def con(tmp_path_factory: pytest.TempPathFactory) -> Iterator[duckdb.DuckDBPyConnection]:
    db = build_workspace(Path(tmp_path_factory.mktemp("ws")) / "journeygraph.duckdb")
    yield db
    db.close()


def fact(subject: str, predicate: str, obj: str, evidence: dict[str, Any], snap: str = "s_all") -> Fact:
    return Fact(subject=subject, predicate=predicate, object=obj, confidence=0.8,
                valid_from="2026-01-01T00:00:00Z", valid_to="2026-01-31T00:00:00Z",
                evidence={"journey": "activation", **evidence}, provenance=Provenance(snap, "t@1", "c", "0.1.0"))


def r6(x: float) -> float:
    return round(float(x), 6)


def chain(snap: str) -> ChainMetrics:
    o = oracle(snap)
    return ChainMetrics.from_counts(STATES, [CONV, DROP], dict(o["trans"]), START, CONV, DROP)


def driver_fact(state: str = "import_data", snap: str = "s_all") -> Fact:
    o, m = oracle(snap), chain(snap)
    n, n_r = o["n"], o["reach"][state]
    x_r, x_all = o["reach_out"][(state, CONV)], o["outcomes"][CONV]
    _, p, test = proportion_test(x_r, n_r, x_all - x_r, n - n_r)
    pgr, pgnr = x_r / n_r, (x_all - x_r) / (n - n_r)
    return fact(f"state:{state}", "is_activation_driver_for", f"outcome:{CONV}", {
        "n": n, "reach": r6(n_r / n), "lift": r6(pgr / pgnr), "p_given_reached": r6(pgr),
        "p_given_not_reached": r6(pgnr), "n_reached": n_r, "removal_effect": r6(m.removal_effect(state, CONV)),
        "removal_effect_relative": r6(m.removal_effect_relative(state, CONV)),
        "absorption": r6(m.absorption(state, CONV)), "baseline": r6(x_all / n), "test": test,
        "p_value": r6(p), "q_value": r6(min(1.0, 3 * p))}, snap)


def transition_fact(a: str = START, b: str = "import_data", snap: str = "s_all") -> Fact:
    o = oracle(snap)
    total = sum(c for (src, _), c in o["trans"].items() if src == a)
    return fact(f"state:{a}", "transitions_to", f"state:{b}" if b in STATES else f"outcome:{b}",
                {"count": o["trans"][(a, b)], "from_total": total, "probability": r6(o["trans"][(a, b)] / total)}, snap)


def dropoff_fact(state: str = "feature_used") -> Fact:
    o = oracle("s_all")
    out = sum(c for (src, _), c in o["trans"].items() if src == state)
    exits = o["trans"][(state, DROP)]
    total_exit = sum(c for (_, b), c in o["trans"].items() if b == DROP)
    total_out = sum(o["trans"].values())
    _, p = two_proportion_z(exits, out, total_exit - exits, total_out - out)
    return fact(f"state:{state}", "is_dropoff_point_for", "journey:activation", {
        "exit_probability": r6(exits / out), "reach": r6(o["reach"][state] / o["n"]), "n": out,
        "n_reached": o["reach"][state], "dropoff_outcome": DROP, "exits": exits,
        "baseline_exit": r6((total_exit - exits) / (total_out - out)), "p_value": r6(p), "q_value": r6(p)})


def revisit_fact(state: str = "feature_used") -> Fact:
    """Oracle for is_revisited_in: geometric return test on visits, conversion gap test, chain extra visits."""
    import math

    from detectors.defaults import RepeatedVisitConfig
    from detectors.stats import normal_upper

    tau = RepeatedVisitConfig().min_visits_mean  # the documented default: the workspace has no config
    o, m = oracle("s_all"), chain("s_all")
    reached, n_rep, visits = o["reach"][state], o["repeat"][state], o["visits"][state]
    conv_rep = o["repeat_out"][(state, CONV)]
    conv_single = o["reach_out"][(state, CONV)] - conv_rep
    _, p_gap, gap_test = proportion_test(conv_single, reached - n_rep, conv_rep, n_rep)
    r0 = 1 - 1 / tau
    p = normal_upper(((visits - reached) / visits - r0) / math.sqrt(r0 * (1 - r0) / visits))
    i, j = STATES.index(START), STATES.index(state)
    extra = float(m.N[i, j]) * (1 - 1 / float(m.N[j, j]))
    return fact(f"state:{state}", "is_revisited_in", "journey:activation", {
        "visits_mean": r6(visits / reached), "reach": r6(reached / o["n"]), "n_reached": reached,
        "n": reached, "n_repeat": n_rep, "p_convert_repeat": r6(conv_rep / n_rep),
        "p_convert_single": r6(conv_single / (reached - n_rep)),
        "conversion_gap": r6(conv_single / (reached - n_rep) - conv_rep / n_rep),
        "return_probability": r6(1 - reached / visits), "extra_expected_steps": r6(extra),
        "test": "geometric_return_z", "gap_p_value": r6(p_gap), "gap_test": gap_test,
        "p_value": r6(p), "q_value": r6(min(1.0, 2 * p))})


def common_fact(state: str = "import_data", value: str = "ios") -> Fact:
    seg, base = oracle(f"s_{value}"), oracle("s_all")
    x_s, x_r = seg["reach"][state], base["reach"][state] - seg["reach"][state]
    n_s, n_r = seg["n"], base["n"] - seg["n"]
    z, p = two_proportion_z(x_s, n_s, x_r, n_r)
    diff = x_s / n_s - x_r / n_r
    return fact(f"state:{state}", "more_common_in" if diff > 0 else "less_common_in", f"segment:platform={value}", {
        "reach_segment": r6(x_s / n_s), "reach_rest": r6(x_r / n_r), "n_segment": n_s, "n_rest": n_r,
        "difference": r6(diff), "z": r6(z), "n": n_s + n_r, "p_value": r6(p), "q_value": r6(p)}, f"s_{value}")


def changed_fact(src: str = START, dst: str = "import_data") -> Fact:
    b, a = oracle("s_w1"), oracle("s_w2")
    out_b = sum(c for (s, _), c in b["trans"].items() if s == src)
    out_a = sum(c for (s, _), c in a["trans"].items() if s == src)
    x1, x2 = b["trans"][(src, dst)], a["trans"][(src, dst)]
    z, p = two_proportion_z(x2, out_a, x1, out_b)
    delta = x2 / out_a - x1 / out_b
    return fact(f"edge:{src}->{dst}", "changed_after", "snapshot:s_w1", {
        "p_before": r6(x1 / out_b), "p_after": r6(x2 / out_a), "n_before": out_b, "n_after": out_a,
        "delta": r6(delta), "relative_change": r6(delta / (x1 / out_b)), "z": r6(z), "n": out_b + out_a,
        "traffic_before": 1.0, "traffic_after": 1.0, "traffic_changed": False, "attribution": "period",
        "releases": [], "before_snapshot": "s_w1", "p_value": r6(p), "q_value": r6(p)}, "s_w2")


FACT_BUILDERS: dict[str, Callable[[], Fact]] = {
    "driver": driver_fact,
    "driver-segment": lambda: driver_fact("invite_teammate", "s_ios"),
    "transition": transition_fact,
    "transition-to-outcome": lambda: transition_fact("invite_teammate", CONV),
    "transition-period": lambda: transition_fact(START, "feature_used", "s_w2"),
    "dropoff": dropoff_fact,
    "revisit": revisit_fact,
    "more-common": common_fact,
    "less-common": lambda: common_fact("feature_used", "ios"),
    "changed-after": changed_fact,
}


def test_recount_matches_the_oracle_counts(con: duckdb.DuckDBPyConnection) -> None:
    from narrator.recompute import snapshot_row

    for snap in SNAPSHOTS:
        got, want = recount(con, snapshot_row(con, snap)), oracle(snap)
        assert got["completed"] == want["n"], snap
        assert {(t["from"], t["to"]): t["count"] for t in got["transitions"]} == dict(want["trans"]), snap
        assert got["reach_counts"] == dict(want["reach"]), snap
        assert got["visit_counts"] == dict(want["visits"]), snap
        assert got["repeat_counts"] == dict(want["repeat"]), snap
        assert got["outcome_counts"] == dict(want["outcomes"]), snap


def test_censored_and_other_tenant_journeys_are_excluded(con: duckdb.DuckDBPyConnection) -> None:
    from narrator.recompute import snapshot_row

    got = recount(con, snapshot_row(con, "s_all"))
    assert (got["journeys"], got["censored"], got["completed"]) == (11 * COPIES, COPIES, 10 * COPIES)
    assert compare_snapshot(con, "s_all")["fields"]["transitions"]["match"]


@pytest.mark.parametrize("builder", list(FACT_BUILDERS.values()), ids=list(FACT_BUILDERS))
def test_every_number_of_a_correct_fact_recomputes(con: duckdb.DuckDBPyConnection, builder: Callable[[], Fact]) -> None:
    f = builder()
    result = recompute_fact(f, con=con)
    assert result["error"] is None
    assert result["not_recomputed"] == [] and result["mismatched"] == [], result["entries"]
    assert result["ok"] and result["numbers"] == result["matched"] > 0
    statuses = {e["key"]: e["status"] for e in result["entries"]}
    assert statuses.get("q_value", "family") == "family"
    assert all(s == "match" for k, s in statuses.items() if k != "q_value")


@pytest.mark.parametrize("builder, key, bump", [
    (driver_fact, "lift", 1e-6), (driver_fact, "n_reached", 1), (driver_fact, "removal_effect", 1e-6),
    (driver_fact, "absorption", -1e-6), (transition_fact, "count", 1), (dropoff_fact, "exit_probability", 1e-6),
    (revisit_fact, "extra_expected_steps", 1e-6), (common_fact, "reach_rest", 1e-6),
    (changed_fact, "p_value", 1e-6), (changed_fact, "n_before", -1),
], ids=["lift", "n_reached", "removal", "absorption", "count", "exit", "extra-steps", "reach-rest", "p", "n-before"])
def test_a_tampered_number_is_the_only_mismatch(con: duckdb.DuckDBPyConnection, builder: Callable[[], Fact],
                                                key: str, bump: float) -> None:
    good = builder()
    evidence = dict(good.evidence)
    evidence[key] = evidence[key] + bump if isinstance(bump, int) else r6(evidence[key] + bump)
    bad = fact(good.subject, good.predicate, good.object, evidence, good.provenance.snapshot_id)
    result = recompute_fact(bad, con=con)
    assert result["mismatched"] == [key]
    assert not result["ok"] and result["matched"] == result["numbers"] - 1


def test_q_value_below_p_is_flagged(con: duckdb.DuckDBPyConnection) -> None:
    good = driver_fact()
    bad = fact(good.subject, good.predicate, good.object, {**good.evidence, "q_value": good.evidence["p_value"] / 10})
    assert recompute_fact(bad, con=con)["mismatched"] == ["q_value"]


def test_recompute_all_reports_totals(con: duckdb.DuckDBPyConnection) -> None:
    facts = [b() for b in FACT_BUILDERS.values()]
    summary = recompute_all(facts, con=con)
    assert summary["facts"] == summary["facts_ok"] == len(facts)
    assert summary["numbers"] == summary["numbers_matched"] > 60
    assert summary["share"] == 1.0 and summary["failures"] == []


@pytest.mark.parametrize("field, doctor", [
    ("transitions", lambda pl: [{**t, "count": t["count"] + 7} for t in pl["transitions"]]),
    ("reach_counts", lambda pl: {k: v + 3 for k, v in pl["reach_counts"].items()}),
    ("outcome_counts", lambda pl: {k: v * 2 for k, v in pl["outcome_counts"].items()}),
    ("completed", lambda pl: pl["completed"] + 5),
], ids=["transitions", "reach", "outcomes", "completed"])
def test_doctored_payload_counts_are_never_read(tmp_path: Path, field: str, doctor: Callable[[dict], Any]) -> None:
    """Counts come from journeys/journey_steps only: a doctored stored payload leaves the facts matching
    and is itself reported as the mismatching field."""
    db = build_workspace(tmp_path / "journeygraph.duckdb")
    try:
        before = {k for k, v in compare_snapshot(db, "s_all")["fields"].items() if not v["match"]}
        assert field not in before
        payload = _payload("s_all")
        payload[field] = doctor(payload)
        db.execute("UPDATE snapshots SET payload = ? WHERE snapshot_id = 's_all'", [json.dumps(payload)])
        for good in (driver_fact(), transition_fact()):
            result = recompute_fact(good, con=db)
            assert result["ok"] and result["mismatched"] == [], result["entries"]
        fields = compare_snapshot(db, "s_all")["fields"]
        assert {k for k, v in fields.items() if not v["match"]} == before | {field}
    finally:
        db.close()


def test_a_missing_snapshot_names_the_fix(con: duckdb.DuckDBPyConnection) -> None:
    from ontology.errors import JourneyGraphError

    orphan = transition_fact()
    orphan = fact(orphan.subject, orphan.predicate, orphan.object, dict(orphan.evidence), "nope")
    with pytest.raises(JourneyGraphError, match="snapshot nope is not in the workspace.*journeygraph run"):
        recompute_fact(orphan, con=con, ctx=make_context(con))


def _low_floor_config() -> Any:
    from engine.config import from_dict

    return from_dict({"journeys": {"activation": {"start": START, "outcomes": {
        CONV: "event_name = 'subscription_started'", DROP: {"inactive_for": "14d"}}}},
        "detectors": {"segment_divergence": {"min_n": 1}}, "privacy": {"min_group_size": 1}})


def diverges_fact(value: str = "android") -> Fact:
    """The oracle for diverges_from: per state, JSD and chi-square of segment vs rest destination counts."""
    import numpy as np
    from scipy import stats as sps

    from detectors.stats import chi2_homogeneity, jensen_shannon

    seg, base = oracle(f"s_{value}")["trans"], oracle("s_all")["trans"]
    stat_sum, dof_sum, n_seg, n_rest, top = 0.0, 0, 0, 0, ("", 0.0)
    for state in STATES:
        dests = sorted({b for (a, b) in base if a == state})
        row_s = np.array([seg[(state, d)] for d in dests], dtype=float)
        row_r = np.array([base[(state, d)] for d in dests], dtype=float) - row_s
        if row_s.sum() < 1 or row_r.sum() < 1:
            continue
        stat, dof, _ = chi2_homogeneity(np.vstack([row_s, row_r]))
        jsd = jensen_shannon(row_s, row_r)
        stat_sum, dof_sum, n_seg, n_rest = stat_sum + stat, dof_sum + dof, n_seg + int(row_s.sum()), n_rest + int(row_r.sum())
        if jsd > top[1] or not top[0]:
            top = (state, jsd)
    p = float(sps.chi2.sf(stat_sum, dof_sum))
    return fact(f"segment:platform={value}", "diverges_from", "segment:platform=*", {
        "state": top[0], "jsd": r6(top[1]), "n_segment": n_seg, "n_rest": n_rest, "test": "chi2_homogeneity",
        "chi2": r6(stat_sum), "dof": dof_sum, "n": n_seg + n_rest, "p_value": r6(p), "q_value": r6(p)}, f"s_{value}")


@pytest.mark.parametrize("value", ["android", "ios"])
def test_divergence_recomputes_with_the_runs_detector_settings(con: duckdb.DuckDBPyConnection, value: str) -> None:
    f = diverges_fact(value)
    assert f.evidence["dof"] > 0 and f.evidence["jsd"] > 0
    result = recompute_fact(f, con=con, cfg=_low_floor_config())
    # every number recomputes; the q-value is recomputed by re-running the detectors over all recomputed
    # snapshots (one BH family): the hand-made fact stored q = p, the family's q is larger. The detector
    # reports diverges_from once per segment key (its most divergent value, here ios); the other value's
    # test is run and counted but yields no fact, and recompute says so.
    assert result["mismatched"] == ["q_value"], result["entries"]
    q = next(e for e in result["entries"] if e["key"] == "q_value")
    if value == "ios":
        assert q["recomputed"] > f.evidence["p_value"] and "re-run" in q["note"]
    else:
        assert q["recomputed"] is None and "do not produce this fact" in q["note"]
    # with the default floor (50 transitions) no state is tested: the stored numbers no longer recompute
    assert not recompute_fact(f, con=con)["ok"]


def path_fact(states: tuple[str, ...] = (START, "import_data"), top: int = 10) -> Fact:
    """Oracle for path quality (detectors.path_quality): the sequence's totals over every outcome, its entry's
    median timed against journeys of the same outcome class; a converted journey lasts 3600 s, a dropped
    one stops at its last step (one step a minute)."""
    import statistics

    js = [j for j in JOURNEYS if _in_scope(j, "s_all")]
    groups = Counter((tuple(j[5]), j[3]) for j in js)
    ranked = sorted(groups.items(), key=lambda kv: (-kv[1], list(kv[0][0]), kv[0][1]))[:top]
    shown = [o for (p, o), _ in ranked if p == states]
    outcome = CONV if CONV in shown else shown[0]

    def duration(j: tuple) -> float:
        return 3600.0 if j[3] == CONV else 60.0 * (len(j[5]) - 1)

    seq = [j for j in js if tuple(j[5]) == states]
    count, conversions = len(seq), sum(1 for j in seq if j[3] == CONV)
    med_d = statistics.median(duration(j) for j in seq if j[3] == outcome)
    same = [j for j in js if (j[3] == CONV) == (outcome == CONV)]
    cls_d, cls_len = statistics.median(duration(j) for j in same), statistics.median(len(j[5]) for j in same)
    n, conv_all = len(js), sum(1 for j in js if j[3] == CONV)
    _, p, test = proportion_test(conversions, count, conv_all - conversions, n - count)
    ratio = max(med_d / cls_d, 0.1) * max(len(states) / cls_len, 0.1)
    return fact("path:" + ">".join(states), "is_fast_path_to", f"outcome:{CONV}", {
        "count": count, "share": r6(count / n), "conversion_rate": r6(conversions / count),
        "median_duration_s": med_d, "median_length": float(len(states)),
        "quality": r6(conversions / count / ratio / (conv_all / n)), "test": test, "outcome": outcome,
        "outcome_class": "converted" if outcome == CONV else "lost", "time_ratio": r6(ratio),
        "class_median_duration_s": cls_d, "class_median_length": float(cls_len),
        "n": n, "p_value": r6(p), "q_value": r6(p)})


@pytest.mark.parametrize("states", [(START, "import_data"), (START, "feature_used"), (START,)],
                         ids=["two-steps", "split-by-outcome", "start-only"])
def test_path_quality_numbers_recompute(con: duckdb.DuckDBPyConnection, states: tuple[str, ...]) -> None:
    result = recompute_fact(path_fact(states), con=con)
    assert result["ok"], result["entries"]


def test_a_path_outside_the_top_paths_is_an_error_not_a_match(con: duckdb.DuckDBPyConnection) -> None:
    f = path_fact((START, "import_data"))
    odd = fact("path:sign_up>settings", f.predicate, f.object, dict(f.evidence))
    result = recompute_fact(odd, con=con)
    assert not result["ok"] and "not among the recomputed top paths" in result["error"]
