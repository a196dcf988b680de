"""Answer a plain-language question from the facts only, with citations.

plan (planner) -> retrieve (BM25 + plan filter) -> bounded bundle -> answer
constrained to the bundle -> faithfulness check. The offline answer is built
from the facts' own summaries, so every number in it is a number of a cited
fact; an LLM backend (cfg.narrator.backend anthropic/openai) may rephrase, but
its text must pass the same checker or the template answer is used. When no
fact fits, the answer is exactly NO_ANSWER and the result says what was
searched: the system never guesses.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from narrator.answers import rate_answer
from narrator.planner import Plan, Vocabulary, plan_question
from narrator.retrieval import MAX_FACTS, Hit, retrieve
from narrator.summaries import entity_label, split_sentences, summarize
from ontology.errors import BadInput
from ontology.model import Fact

log = logging.getLogger(__name__)

NO_ANSWER = "The data does not say."

# Evidence key that orders facts of one intent, largest first ("most associated" = highest lift).
_ORDER_KEY: Mapping[str, str] = {
    "is_activation_driver_for": "lift", "increases_probability_of": "lift",
    "is_dropoff_point_for": "exit_probability", "diverges_from": "jsd",
    "more_common_in": "difference", "less_common_in": "difference",
    "regressed_after": "delta", "changed_after": "delta",
    "is_revisited_in": "visits_mean", "is_fast_path_to": "quality", "transitions_to": "probability",
}
_PREDICATE_RANK = {"necessary_for_conversion": 0, "is_activation_driver_for": 1, "increases_probability_of": 2,
                   "diverges_from": 0, "regressed_after": 0}
_DRIVER_PREDICATES = ("necessary_for_conversion", "is_activation_driver_for", "increases_probability_of")


def scope_context(con: Any) -> dict[str, list[str]]:
    """snapshot_id -> the entities its scope implies ('scope:segment', 'segment:plan=pro', 'release:v2.3')."""
    if con is None:
        return {}
    rows = con.execute("SELECT snapshot_id, scope, segment_key, segment_value, release, journey "
                       "FROM snapshots ORDER BY snapshot_id").fetchall()
    out: dict[str, list[str]] = {}
    for sid, scope, key, value, release, journey in rows:
        ents = [f"scope:{scope}", f"journey:{journey}"]
        if key:
            ents.append(f"segment:{key}={value}")
        if release:
            ents.append(f"release:{release}")
        out[sid] = ents
    return out


def _magnitude(fact: Fact) -> float:
    value = fact.evidence.get(_ORDER_KEY.get(fact.predicate, ""), 0.0)
    return abs(float(value)) if isinstance(value, (int, float)) else 0.0


def _order(hits: Sequence[Hit], plan: Plan) -> list[Fact]:
    """Facts in answer order: for a 'most …' question the largest effect first, else retrieval order."""
    facts = [h.fact for h in hits]
    if any(i in plan.intents for i in ("driver", "dropoff", "segment", "change", "revisit", "path")):
        facts.sort(key=lambda f: (_PREDICATE_RANK.get(f.predicate, 3), -_magnitude(f), f.fact_id))
    return facts


def _lead(fact: Fact, plan: Plan) -> str:
    """The opening sentence that answers the question's shape, grounded in the first fact."""
    subject, obj = entity_label(fact.subject), entity_label(fact.object)
    if "driver" in plan.intents and fact.predicate == "necessary_for_conversion":
        return f"Of the facts found, every journey ending in {obj} passed through {subject}."
    if "driver" in plan.intents and fact.predicate in _DRIVER_PREDICATES:
        return f"Of the facts found, the step most associated with {obj} is {subject}."
    if "dropoff" in plan.intents and fact.predicate == "is_dropoff_point_for":
        return f"Of the facts found, the step with the highest exit probability is {subject}."
    if "change" in plan.intents and fact.predicate in ("regressed_after", "changed_after"):
        return f"Of the facts found, the largest change after {obj} is on {subject}."
    if "segment" in plan.intents and plan.segments:
        return "The facts on " + ", ".join(f'segment "{seg}"' for seg in plan.segments) + " are these."
    return "The facts found are these."


def template_answer(facts: Sequence[Fact], plan: Plan) -> list[dict[str, Any]]:
    """Sentences, each citing the facts it rests on: a lead sentence, then one summary per fact."""
    sentences = [{"text": _lead(facts[0], plan), "fact_ids": [facts[0].fact_id]}]
    for fact in facts:
        sentences += [{"text": part, "fact_ids": [fact.fact_id]} for part in split_sentences(summarize(fact))]
    return sentences


MAX_RATE_FACTS = 24  # a rate answer cites at most 10 listed values, 2 tests, overall, 6 related facts


def build_bundle(question: str, plan: Plan, facts: Sequence[Fact], limit: int = MAX_FACTS) -> dict[str, Any]:
    """The bounded bundle the answer may use: the question, the plan and at most `limit` facts."""
    return {"kind": "ask", "question": question, "plan": plan.to_dict(),
            "facts": [f.to_dict() for f in facts][:limit]}


# Checker rules that belong to a finding's narrative (it must state a confidence label and n, and end
# with one recommendation); an answer to a question has no finding, so these do not apply to it.
FINDING_ONLY_RULES = frozenset({"CONFIDENCE_MISSING", "N_MISSING", "RECOMMENDATION_MISSING",
                                "RECOMMENDATION_MULTIPLE", "RECOMMENDATION_NOT_LAST"})


def checker_bundle(bundle: Mapping[str, Any]) -> dict[str, Any]:
    """The ask bundle in the shape narrator.checker reads: a finding header built from the first fact."""
    head = bundle["facts"][0]
    finding = {"finding_id": "", "type": "", "subject": head["subject"], "predicate": head["predicate"],
               "object": head["object"], "snapshot_id": head["provenance"]["snapshot_id"], "n": None,
               "confidence": None, "confidence_label": "", "p_value": None, "q_value": None, "evidence": {}}
    return {"finding": finding, "facts": list(bundle["facts"])}


def verify_answer(bundle: Mapping[str, Any], narrative: Any) -> dict[str, Any]:
    """`verify` for an ask bundle: the faithfulness checker (every number a cited fact's, associative wording,
    known ids) minus the rules that belong to a finding's narrative; text with [f:ID] markers or sentences."""
    from narrator import checker

    result = checker.check(checker_bundle(bundle), narrative).to_dict()
    result["failures"] = [f for f in result["failures"] if f["rule"] not in FINDING_ONLY_RULES]
    result["ok"] = not result["failures"]
    result["grounding_issues"] = []
    return result


def check_answer(bundle: Mapping[str, Any], sentences: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The faithfulness checker (narrator.checker) on an answer, minus the finding-only rules."""
    result = verify_answer(bundle, {"sentences": [dict(s) for s in sentences]})
    failures = [f"{f['rule']}: {f['span']} ({f['message']})" for f in result["failures"]]
    return {"checked": True, "faithful": not failures, "failures": failures,
            "numbers_checked": result["numbers_checked"]}


def marked_text(sentences: Sequence[Mapping[str, Any]]) -> str:
    """Plain text with [f:<8-char id prefix>] citation markers, the format `journeygraph verify` reads."""
    parts = []
    for s in sentences:
        body = str(s["text"]).rstrip()
        end = body[-1] if body and body[-1] in ".!?" else "."
        body = body[:-1] if body and body[-1] in ".!?" else body
        parts.append(f"{body} [f:{','.join(i[:8] for i in s['fact_ids'])}]{end}")
    return " ".join(parts)


ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["sentences"],
    "properties": {"sentences": {"type": "array", "items": {
        "type": "object", "additionalProperties": False, "required": ["text", "fact_ids"],
        "properties": {"text": {"type": "string"}, "fact_ids": {"type": "array", "items": {"type": "string"}}}}}},
}
def answer_request(bundle: Mapping[str, Any]) -> Any:
    """The provider request: system rules, then the question and the fenced facts (data, never instructions)."""
    import prompts
    from narrator.backends.base import Request
    from narrator.fence import escape_data, fence

    facts = [{k: f[k] for k in ("fact_id", "subject", "predicate", "object", "confidence", "evidence")}
             for f in bundle["facts"]]
    nonce, payload = fence(facts)
    user = prompts.load("ask_user").render(question=escape_data(bundle["question"]), nonce=nonce, facts=payload)
    return Request(system=prompts.load("ask_system").text, user=user, schema=ANSWER_SCHEMA, schema_name="answer")


def prompt_version() -> str:
    import prompts

    return "+".join(prompts.load(n).tag for n in ("ask_system", "ask_user"))


def _full_ids(bundle: Mapping[str, Any], ids: Sequence[str]) -> list[str]:
    known = [f["fact_id"] for f in bundle["facts"]]
    out = []
    for i in ids:
        hits = [k for k in known if k.startswith(str(i).lower())]
        out.append(hits[0] if len(hits) == 1 else str(i))
    return out


def llm_answer(bundle: Mapping[str, Any], backend: Any) -> tuple[list[dict[str, Any]] | None, dict[str, Any]]:
    """Ask the LLM; its sentences when they pass the checker, else None and what went wrong."""
    from ontology.errors import NarrationError

    info: dict[str, Any] = {"backend": backend.name, "model": backend.model, "prompt_version": prompt_version()}
    try:
        reply = backend.complete(answer_request(bundle))
    except NarrationError as exc:  # ProviderError after the retry budget, or a reply outside the schema
        return None, {**info, "status": "fallback", "error": str(exc)}
    info["usage"] = dict(reply.usage)
    sentences = [{"text": str(s["text"]), "fact_ids": _full_ids(bundle, s["fact_ids"])} for s in reply.data["sentences"]]
    if not sentences:
        return None, {**info, "status": "fallback", "error": "the model found no answer in the facts"}
    check = check_answer(bundle, sentences)
    if check["faithful"] is False:
        return None, {**info, "status": "fallback", "error": "faithfulness check failed", "failures": check["failures"]}
    return sentences, {**info, "status": "answered"}


def _backend(cfg: Any, backend: Any) -> tuple[Any, dict[str, Any] | None]:
    """The LLM backend to use (given, or from cfg.narrator), or None for the template answer."""
    if backend is not None:
        return backend, None
    narrator_cfg = getattr(cfg, "narrator", None)
    if getattr(narrator_cfg, "backend", "template") == "template":
        return None, None
    from narrator.backends import make_backend
    from ontology.errors import ProviderError

    try:
        return make_backend(narrator_cfg), None
    except ProviderError as exc:  # e.g. no API key: answer offline and say why
        return None, {"backend": getattr(narrator_cfg, "backend", "?"), "status": "fallback", "error": str(exc)}


def _searched(plan: Plan, n_facts: int) -> dict[str, Any]:
    return {"facts_searched": n_facts, "predicates": list(plan.predicates), "states": list(plan.states),
            "outcomes": list(plan.outcomes), "segments": list(plan.segments), "releases": list(plan.releases),
            "journeys": list(plan.journeys), "window": list(plan.window) if plan.window else None,
            "unresolved": list(plan.unresolved), "terms": list(plan.terms)}


def _no_answer(plan: Plan, searched: dict[str, Any], reason: str) -> dict[str, Any]:
    """The honest refusal: the data does not say, why, and what was searched."""
    return {"answer": f"{NO_ANSWER} {reason}", "fact_ids": [], "facts": [], "plan": plan.to_dict(),
            "searched": searched, "notes": list(plan.notes), "sentences": [], "bundle": None, "check": None,
            "backend": "template", "llm": None}


def _why_not(plan: Plan, data_end: str | None) -> str | None:
    """A reason to refuse before searching: a forecast, a name the workspace does not have."""
    if plan.future:
        until = f" up to {data_end}" if data_end else ""
        return f'The facts describe what happened{until}; they do not forecast "{plan.future}".'
    if plan.unresolved:
        return "No state, segment or release in the workspace is named " + ", ".join(f'"{u}"' for u in plan.unresolved) + "."
    anchored = plan.outcome_named or plan.segments or plan.states or plan.releases or plan.window
    if plan.unknown and not anchored:
        return "Nothing in the facts matches " + ", ".join(f'"{u}"' for u in plan.unknown) + "."
    return None


def _wants_rates(plan: Plan) -> bool:
    intents = set(plan.intents)
    if {"rate", "compare"} & intents:
        return True
    if "segment" in intents and sum("=" in s for s in plan.segments) >= 2:
        return True
    return "change" in intents and bool(plan.releases) and plan.outcome_named and not plan.states


def _rate_sentences(plan: Plan, facts: Sequence[Fact], conversion: str | None) -> list[dict[str, Any]]:
    """Sentences from outcome-rate facts when the question asks for a rate (or contrasts segment values)."""
    outcome = plan.outcomes[0] if plan.outcomes else conversion
    if not _wants_rates(plan) or outcome is None:
        return []
    if "segment" in plan.intents and "compare" not in plan.intents:
        plan = Plan(**{**plan.__dict__, "intents": (*plan.intents, "compare")})
    return rate_answer(facts, plan, outcome)


def _with_notes(plan: Plan, sentences: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not plan.notes or not sentences:
        return sentences
    ids = list(dict.fromkeys(i for s in sentences if "segment" in s["text"] for i in s["fact_ids"]))
    ids = ids or sentences[0]["fact_ids"]
    return [{"text": " ".join(plan.notes), "fact_ids": list(ids)}, *sentences]


@dataclass(frozen=True)
class Prepared:
    """What answering needs from a workspace, read once: the facts, the vocabulary, each snapshot's scope."""

    facts: tuple[Fact, ...]
    vocab: Vocabulary
    context: dict[str, list[str]]
    cfg: Any = None


def prepare(facts: Sequence[Fact], con: Any = None, cfg: Any = None) -> Prepared:
    """Read the workspace's names and scopes once; a long-lived server reuses this across questions."""
    return Prepared(tuple(facts), Vocabulary.build(facts, con, cfg), scope_context(con), cfg)


def answer_from_facts(question: str, facts: Sequence[Fact], *, con: Any = None, cfg: Any = None,
                      backend: Any = None) -> dict[str, Any]:
    """The whole ask flow over an explicit fact list (what `ask` runs after reading the store)."""
    return answer_prepared(question, prepare(facts, con, cfg), backend=backend)


def answer_prepared(question: str, prep: Prepared, *, backend: Any = None) -> dict[str, Any]:
    """Plan, then rates or retrieval, then the cited answer and its check, over prepared workspace data."""
    if not question or not question.strip():
        raise BadInput("ask needs a non-empty question")
    facts, vocab = prep.facts, prep.vocab
    plan = plan_question(question, vocab)
    searched = _searched(plan, len(facts))
    reason = _why_not(plan, vocab.data_end)
    if reason:
        return _no_answer(plan, searched, reason)
    sentences = _rate_sentences(plan, facts, vocab.conversion_outcome)
    hits = [] if sentences and "segment" not in plan.intents else retrieve(plan, facts, context=prep.context)
    if sentences:  # a segment contrast adds its divergence facts after the rates
        by_id = {f.fact_id: f for f in facts}
        ordered = [by_id[i] for i in dict.fromkeys(i for s in sentences for i in s["fact_ids"])]
        extra = [h.fact for h in hits if h.fact.fact_id not in {f.fact_id for f in ordered}]
        sentences += template_answer(extra, plan)[1:] if extra else []
        ordered += extra
    elif not hits:
        return _no_answer(plan, searched, _searched_text(plan))
    else:
        ordered = _order(hits, plan)
    return _finish(question, plan, ordered, _with_notes(plan, sentences) or None, searched, prep.cfg, backend)


def _searched_text(plan: Plan) -> str:
    parts = [f"{k} {', '.join(v)}" for k, v in (("intents", plan.intents), ("outcomes", plan.outcomes),
             ("states", plan.states), ("segments", plan.segments), ("releases", plan.releases)) if v]
    if plan.window:
        parts.append(f"window {plan.window[0]} to {plan.window[1]}")
    if plan.unknown:
        parts.append("unmatched words " + ", ".join(f'"{u}"' for u in plan.unknown))
    return "No fact matches the question; searched " + ("; ".join(parts) or "every fact") + "."


def _finish(question: str, plan: Plan, ordered: Sequence[Fact], sentences: list[dict[str, Any]] | None,
            searched: dict[str, Any], cfg: Any, backend: Any) -> dict[str, Any]:
    """Bundle, optional LLM rephrasing, template fallback, citations and the faithfulness check."""
    bundle = build_bundle(question, plan, ordered, MAX_RATE_FACTS if sentences else MAX_FACTS)
    llm, llm_info = _backend(cfg, backend)
    template_sentences = sentences or template_answer(ordered, plan)
    final = None
    if llm is not None:
        final, llm_info = llm_answer(bundle, llm)
        if final is None:
            log.warning("LLM answer not used (%s); template answer", llm_info.get("error"))
    used = llm.name if final is not None else "template"
    final = final or template_sentences
    cited = list(dict.fromkeys(fid for s in final for fid in s["fact_ids"]))
    by_id = {f.fact_id: f for f in ordered}
    return {"answer": marked_text(final), "fact_ids": cited,
            "facts": [{**by_id[i].to_dict(), "summary": summarize(by_id[i])} for i in cited if i in by_id],
            "plan": plan.to_dict(), "searched": searched, "notes": list(plan.notes), "sentences": final,
            "bundle": bundle, "check": check_answer(bundle, final), "backend": used, "llm": llm_info}


def ask(question: str, *, con: Any, store: Any, cfg: Any, backend: Any = None) -> dict[str, Any]:
    """Answer `question` from the facts in `store` (vocabulary from `con`'s snapshots and `cfg`).

    `backend` (an LLMBackend) overrides cfg.narrator.backend; the LLM may only rephrase the bundle and
    its text must pass the faithfulness checker, else the template answer is returned."""
    if not question or not question.strip():
        raise BadInput("ask needs a non-empty question")
    facts = list(store.facts())
    return answer_from_facts(question, facts, con=con, cfg=cfg, backend=backend)


def render_text(result: Mapping[str, Any]) -> str:
    """CLI text form: the answer, then numbered citations with each fact's summary."""
    lines = [result["answer"]]
    if not result["fact_ids"]:
        s = result["searched"]
        parts = [f"{k}: {', '.join(v) if isinstance(v, list) else v}" for k, v in s.items()
                 if v and k not in ("terms", "facts_searched")]
        lines.append(f"Searched {s['facts_searched']} facts" + (" (" + "; ".join(parts) + ")." if parts else "."))
        return "\n".join(lines) + "\n"
    lines.append("")
    for i, fact in enumerate(result["facts"], 1):
        lines.append(f"[{i}] {fact['fact_id']}  {fact['subject']} {fact['predicate']} {fact['object']}"
                     f"  (confidence {fact['confidence']}, snapshot {fact['provenance']['snapshot_id']})")
    check = result.get("check") or {}
    if check.get("checked"):
        lines.append("faithfulness: " + ("ok" if check["faithful"] else "FAILED " + "; ".join(check["failures"])))
    return "\n".join(lines) + "\n"
