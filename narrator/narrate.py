"""Narration orchestration: validate → generate → check → regenerate once → template fallback.

1. The bundle must pass grounding validation, or it is never narrated (the
   insight records the reasons, status `ungrounded`).
2. With the template backend the deterministic narrative is checked and stored.
3. With an LLM backend the bundle is sent fenced as data; the reply must be
   schema-valid JSON that passes the faithfulness checker. On failure one repair
   round is sent with the failures as feedback; if that fails too, or the
   provider fails after its retry budget, the template narrative is used and
   the LLM failure is recorded on the insight (status `fallback`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

import prompts
from narrator import template
from narrator.backends.base import LLMBackend, OutputFormatError, Reply, Request
from narrator.bundle import BundleLimits, FactSource, build_bundle, facts_by_id
from narrator.checker import Failure, Narrative, Sentence, check
from narrator.fence import escape_data, fence
from narrator.grounding import grounding_issues
from narrator.insight import TEMPLATE_VERSION, Insight, make_insight, ungrounded_insight
from ontology.errors import ProviderError
from ontology.model import Finding

log = logging.getLogger(__name__)

MIN_N = 30
PROMPT_NAMES = ("narrate_system", "narrate_user", "narrate_repair")


def prompt_version() -> str:
    return "+".join(prompts.load(n).tag for n in PROMPT_NAMES)


def _view(bundle: Mapping[str, Any]) -> dict[str, Any]:
    """What the model reads: the finding and facts without hashes and provenance plumbing."""
    f = bundle["finding"]
    keep = ("finding_id", "type", "journey", "subject", "predicate", "object", "segment", "release", "n",
            "confidence_label", "p_value", "q_value", "evidence")
    facts = [{k: fact[k] for k in ("fact_id", "subject", "predicate", "object", "confidence", "evidence")}
             for fact in bundle["facts"]]
    return {"finding": {k: f.get(k) for k in keep}, "facts": facts}


def fenced_payload(bundle: Mapping[str, Any]) -> tuple[str, str]:
    """(nonce, escaped JSON) of what the model reads of a bundle (narrator.fence)."""
    return fence(_view(bundle))


def build_request(bundle: Mapping[str, Any], failures: Sequence[Failure] = (), previous: str | None = None) -> Request:
    """System rules (static, cacheable) + the fenced bundle in the user turn (+ repair feedback)."""
    nonce, payload = fenced_payload(bundle)
    user = prompts.load("narrate_user").render(nonce=nonce, bundle=payload)
    if failures:
        listed = "\n".join(f"- {f.rule}: {escape_data(f.span)!r}: {f.message}" for f in failures)
        user += "\n\n" + prompts.load("narrate_repair").render(
            failures=listed, previous=escape_data(previous or ""), nonce=nonce)
    return Request(system=prompts.load("narrate_system").text, user=user)


def _canonical_ids(bundle: Mapping[str, Any], narrative: Narrative) -> Narrative:
    """Expand unique id prefixes the model may have used to full fact ids."""
    ids = list(facts_by_id(bundle))

    def full(i: str) -> str:
        hits = [k for k in ids if k.startswith(i.lower())]
        return hits[0] if len(hits) == 1 else i

    def fix(s: Sentence) -> Sentence:
        return Sentence(s.text, tuple(full(i) for i in s.fact_ids))

    rec = fix(narrative.recommendation) if narrative.recommendation else None
    return Narrative(tuple(fix(s) for s in narrative.sentences), rec)


def _parameters(backend: LLMBackend | None, limits: Mapping[str, Any] | None, min_n: int) -> dict[str, Any]:
    params: dict[str, Any] = {"min_n": min_n, "bundle_limits": dict(limits or {})}
    if backend is not None:
        s = backend.settings
        params.update({"max_tokens": s.max_tokens, "timeout_s": s.timeout_s, "max_attempts": s.max_attempts,
                       "schema": "narrative", "base_url": s.base_url})
    return params


def _usage_entry(stage: str, reply: Reply | OutputFormatError, model: str) -> dict[str, Any]:
    return {"stage": stage, "model": getattr(reply, "model", model), "attempts": reply.attempts, **reply.usage}


def narrate_bundle(bundle: Mapping[str, Any], backend: LLMBackend | None = None, min_n: int = MIN_N) -> Insight:
    """One insight for one bundle, following the policy in the module doc."""
    requested = backend.name if backend else "template"
    params = _parameters(backend, bundle.get("limits"), min_n)
    issues = grounding_issues(bundle, min_n)
    if issues:
        log.warning("finding %s not narrated: %s", bundle["finding"]["finding_id"], "; ".join(map(str, issues)))
        return ungrounded_insight(bundle, [str(i) for i in issues], requested, params)
    if backend is None:
        return _template_insight(bundle, "narrated", requested, params)
    calls: list[dict[str, Any]] = []
    request = build_request(bundle)
    failure: dict[str, Any] | None = None
    for stage in ("generate", "repair"):
        try:
            reply = backend.complete(request)
        except ProviderError as exc:
            failure = {"stage": stage, "error": "ProviderError", "message": str(exc)}
            break
        except OutputFormatError as exc:
            calls.append(_usage_entry(stage, exc, backend.model))
            failures: Sequence[Failure] = (Failure("OUTPUT_FORMAT", exc.raw[:120], str(exc)),)
            previous = exc.raw
        else:
            calls.append(_usage_entry(stage, reply, backend.model))
            narrative = _canonical_ids(bundle, Narrative.from_obj(reply.data))
            result = check(bundle, narrative)
            if result.ok:
                return make_insight(bundle, narrative, result, status="narrated", backend=backend.name,
                                    requested_backend=requested, model=reply.model, prompt_version=prompt_version(),
                                    parameters=params, usage_calls=calls)
            failures, previous = result.failures, reply.raw
        failure = {"stage": stage, "error": failures[0].rule,
                   "failures": [asdict(f) for f in failures], "message": f"{len(failures)} checker failure(s)"}
        request = build_request(bundle, failures, previous)
    log.warning("%s narration rejected at %s (%s); using the template", backend.name,
                failure["stage"] if failure else "?", failure["error"] if failure else "?")
    log.debug("rejected %s narration detail: %s", backend.name, failure)
    return _template_insight(bundle, "fallback", requested, params, calls, failure)


def _template_insight(bundle: Mapping[str, Any], status: str, requested: str, params: Mapping[str, Any],
                      calls: Sequence[Mapping[str, Any]] = (), failure: Mapping[str, Any] | None = None) -> Insight:
    narrative = template.narrate(bundle)
    result = check(bundle, narrative)
    if not result.ok:  # a template bug: still shown, but visibly flagged on the insight
        log.error("template narrative failed the checker for %s: %s", bundle["finding"]["finding_id"], result.failures)
    return make_insight(bundle, narrative, result, status=status, backend="template", requested_backend=requested,
                        model=None, prompt_version=TEMPLATE_VERSION, parameters=params, usage_calls=calls,
                        llm_failure=failure)


def narrate_finding(finding: Finding, source: FactSource | None = None, backend: LLMBackend | None = None,
                    limits: BundleLimits | None = None, min_n: int = MIN_N) -> Insight:
    """Bundle a finding from a fact store and narrate it (default BundleLimits())."""
    return narrate_bundle(build_bundle(finding, source, limits or BundleLimits()), backend, min_n)
