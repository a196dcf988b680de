"""Is a first-order chain good enough? Held-out log-likelihood of first- vs second-order models.

Every number downstream (absorption, removal effects, expected steps) assumes
the next step depends only on the current state. This check tests that on the
data itself: journeys are split deterministically by md5(journey_id) (one in
five held out), both models are fitted on the rest with additive (Laplace,
α = 1) smoothing over the scope's symbols, and each is scored by mean
log-likelihood per held-out transition (the final step → outcome edge
included). The second-order model conditions on (previous, current) state, with
`^` as the previous state of a journey's first step.

`preferred` is second_order only when it beats first_order by more than
MARGIN nats per transition on at least MIN_HELDOUT transitions; otherwise the
simpler model is kept.
"""

from __future__ import annotations

import math
from typing import Any

ALPHA = 1.0
HOLDOUT_MOD = 5  # int(md5(journey_id)[:8], 16) % 5 == 0 -> held out
MARGIN = 0.005
MIN_HELDOUT = 200

_CHECK_SQL = """
WITH g AS (SELECT * FROM {trans}),
sym AS (SELECT sid, count(DISTINCT x) AS k FROM (SELECT sid, state AS x FROM g UNION ALL SELECT sid, next FROM g) GROUP BY sid),
c2 AS (SELECT sid, prev, state, next, sum(c) AS c FROM g WHERE NOT heldout GROUP BY ALL),
n2 AS (SELECT sid, prev, state, sum(c) AS n FROM c2 GROUP BY ALL),
c1 AS (SELECT sid, state, next, sum(c) AS c FROM c2 GROUP BY ALL),
n1 AS (SELECT sid, state, sum(c) AS n FROM c1 GROUP BY ALL),
h AS (SELECT sid, prev, state, next, c AS w FROM g WHERE heldout)
SELECT h.sid, h.w,
       ln((coalesce(c1.c, 0) + $alpha) / (coalesce(n1.n, 0) + $alpha * sym.k)) AS l1,
       ln((coalesce(c2.c, 0) + $alpha) / (coalesce(n2.n, 0) + $alpha * sym.k)) AS l2
FROM h JOIN sym USING (sid)
LEFT JOIN c1 ON c1.sid = h.sid AND c1.state = h.state AND c1.next = h.next
LEFT JOIN n1 ON n1.sid = h.sid AND n1.state = h.state
LEFT JOIN c2 ON c2.sid = h.sid AND c2.prev = h.prev AND c2.state = h.state AND c2.next = h.next
LEFT JOIN n2 ON n2.sid = h.sid AND n2.prev = h.prev AND n2.state = h.state
"""


def empty_check() -> dict[str, Any]:
    """The model_check block of a scope with no held-out transition."""
    return {"first_order_loglik": None, "second_order_loglik": None, "heldout_transitions": 0,
            "preferred": "first_order",
            "note": "too few journeys to compare first- and second-order chains; first-order assumed"}


def verdict(ll1: float, ll2: float, n: int) -> tuple[str, str]:
    """(preferred, a one-line note a product manager can read)."""
    gain = ll2 - ll1
    if n < MIN_HELDOUT:
        return "first_order", (f"only {n} held-out steps: too few to test whether the previous step matters; "
                               "first-order assumed")
    if gain > MARGIN:
        return "second_order", (f"the previous step predicts the next one ({gain:.3f} nats per step better on "
                                f"{n} held-out steps): treat absorption and removal effects as approximate")
    return "first_order", (f"where users came from adds nothing to predicting their next step "
                           f"(second-order gain {gain:+.3f} nats per step on {n} held-out steps): the chain fits")


def heldout_sql(column: str) -> str:
    """SQL for the deterministic split: the first 8 hex digits of md5(journey_id), modulo HOLDOUT_MOD."""
    return f"((('0x' || md5({column})[1:8])::BIGINT % {HOLDOUT_MOD}) = 0)"


def model_checks(con: Any, trans: str) -> dict[int, dict[str, Any]]:
    """model_check block per scope id; `trans` holds grouped (sid, prev, state, next, heldout, c) rows."""
    sql = _CHECK_SQL.format(trans=trans)
    grouped: dict[int, list[tuple[int, float, float]]] = {}
    for sid, w, l1, l2 in con.execute(sql, {"alpha": ALPHA}).fetchall():
        grouped.setdefault(sid, []).append((w, l1, l2))
    out: dict[int, dict[str, Any]] = {}
    for sid, rows in grouped.items():  # fsum: exact, so the result never depends on row order
        n = sum(w for w, _, _ in rows)
        ll1 = math.fsum(w * l1 for w, l1, _ in rows) / n
        ll2 = math.fsum(w * l2 for w, _, l2 in rows) / n
        preferred, note = verdict(ll1, ll2, n)
        out[sid] = {"first_order_loglik": round(ll1, 6), "second_order_loglik": round(ll2, 6),
                    "heldout_transitions": int(n), "preferred": preferred, "note": note}
    return out
