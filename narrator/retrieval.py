"""Fact retrieval for questions: BM25 over fact summaries, filtered and boosted by the plan.

BM25 (bm25s) finds facts whose words match the question; the plan decides
which facts may answer at all (a fact must carry the asked predicate and touch
every asked entity group), and boosts facts that match more of it. Ties break
on fact_id so the same question over the same facts always gives the same
bundle.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import bm25s
import numpy as np

from narrator.planner import Plan, stems
from narrator.summaries import search_text
from ontology.model import Fact
from ontology.names import entity_states

MAX_FACTS = 6  # the bounded bundle: enough to answer, small enough to check
logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs every index build at DEBUG


@dataclass(frozen=True)
class Hit:
    fact: Fact
    score: float
    bm25: float


def fact_entities(fact: Fact, context: Mapping[str, Sequence[str]] | None = None) -> set[str]:
    """Every entity a fact touches: subject, object, the states inside edges/paths, evidence states,
    plus its snapshot's scope entities from `context` (snapshot_id -> e.g. ['segment:plan=pro'])."""
    out = {fact.subject, fact.object} | set((context or {}).get(fact.provenance.snapshot_id, ()))
    for entity in (fact.subject, fact.object):
        out |= {f"state:{s}" for s in entity_states(entity)}
    ev = fact.evidence
    if isinstance(ev.get("state"), str):
        out.add(f"state:{ev['state']}")
    for state in ev.get("states", []) or []:
        out.add(f"state:{state}")
    for release in ev.get("releases", []) or []:
        out.add(f"release:{release}")
    if isinstance(ev.get("journey"), str):
        out.add(f"journey:{ev['journey']}")
    return out


def _touches(entities: set[str], wanted: Sequence[str]) -> bool:
    """True when a fact touches one of the wanted entities ('segment:plan' matches any plan value)."""
    for want in wanted:
        prefix = want if "=" in want or not want.startswith("segment:") else want + "="
        if any(e == want or e.startswith(prefix) and prefix != want for e in entities):
            return True
    return False


def _overlaps(fact: Fact, window: tuple[str, str] | None) -> bool:
    if window is None:
        return True
    return fact.valid_from[:10] <= window[1] and fact.valid_to[:10] >= window[0]


def admissible(fact: Fact, plan: Plan, context: Mapping[str, Sequence[str]] | None = None) -> int:
    """0 when the fact cannot answer the plan, else how many entity groups it matched (for boosting)."""
    if plan.predicates and fact.predicate not in plan.predicates:
        return 0
    if not _overlaps(fact, plan.window):
        return 0
    ents = fact_entities(fact, context)
    groups = [[f"journey:{j}" for j in plan.journeys], [f"state:{s}" for s in plan.states],
              [f"outcome:{o}" for o in plan.outcomes], [f"segment:{s}" for s in plan.segments],
              [f"release:{r}" for r in plan.releases]]
    matched = 1
    for group in groups:
        if not group:
            continue
        if not _touches(ents, group):
            if group[0].startswith(("outcome:", "journey:")) and not any(
                    e.startswith(group[0].split(":")[0] + ":") for e in ents):
                continue  # the fact does not speak of outcomes/journeys at all: no constraint
            return 0
        matched += 1
    return matched


def _bm25_scores(facts: Sequence[Fact], terms: Sequence[str]) -> np.ndarray:
    corpus = [stems(search_text(f)) or [""] for f in facts]
    retriever = bm25s.BM25()
    retriever.index(corpus, show_progress=False)
    return np.asarray(retriever.get_scores(list(terms)), dtype=np.float64) if terms else np.zeros(len(facts))


def _scope_bonus(fact: Fact, plan: Plan, context: Mapping[str, Sequence[str]]) -> float:
    """Prefer facts from the snapshot whose scope the question asks for (all data when it names none)."""
    scope = [e for e in context.get(fact.provenance.snapshot_id, ()) if e.startswith("scope:")]
    if not scope:
        return 0.0
    wants_all = not (plan.segments or plan.releases or plan.window)
    if scope[0] == "scope:all":
        return 1.0 if wants_all else 0.0
    return 0.0 if wants_all else 0.5


def _prefer_all_scope(hits: list[Hit], plan: Plan, context: Mapping[str, Sequence[str]]) -> list[Hit]:
    """A question naming no segment, release or window is about all data: drop narrower-scope facts
    of a predicate that also has all-data facts (a segment's driver is not the overall driver)."""
    if plan.segments or plan.releases or plan.window:
        return hits

    def is_all(hit: Hit) -> bool:
        ents = context.get(hit.fact.provenance.snapshot_id)
        return ents is None or "scope:all" in ents

    covered = {h.fact.predicate for h in hits if is_all(h)}
    return [h for h in hits if is_all(h) or h.fact.predicate not in covered]


def retrieve(plan: Plan, facts: Sequence[Fact], k: int = MAX_FACTS,
             context: Mapping[str, Sequence[str]] | None = None) -> list[Hit]:
    """The top-k admissible facts, best first, one per (subject, predicate, object);
    empty when the plan is empty, names something unknown, or nothing fits."""
    if plan.empty or plan.unresolved or not facts:
        return []
    ordered = sorted(facts, key=lambda f: f.fact_id)
    scores = _bm25_scores(ordered, plan.terms)
    hits = []
    context = context or {}
    for fact, bm in zip(ordered, scores):
        groups = admissible(fact, plan, context)
        if groups:
            bm = round(float(bm), 6)
            bonus = groups + _scope_bonus(fact, plan, context)
            hits.append(Hit(fact, score=round(bm * (1.0 + 0.5 * groups) + bonus, 6), bm25=bm))
    hits = _prefer_all_scope(hits, plan, context)
    hits.sort(key=lambda h: (-h.score, -h.fact.confidence, h.fact.fact_id))
    seen: set[tuple[str, str, str]] = set()
    unique = []
    for hit in hits:
        triple = (hit.fact.subject, hit.fact.predicate, hit.fact.object)
        if triple not in seen:
            seen.add(triple)
            unique.append(hit)
    return unique[:k]
