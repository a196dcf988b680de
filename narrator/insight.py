"""Insights: a narrative plus everything needed to trace and re-verify it.

An insight stores the finding id, the exact bundle and its hash, the fact ids
each sentence cites, which backend and model wrote it with which prompt
version and parameters, the token usage of every LLM call, the checker's
verdict, and, when an LLM answer was rejected or a provider failed, what went
wrong. Its id is a content hash of (finding id, bundle hash, narrative), so the
same bundle narrated the same way always gets the same id.

`status` is `narrated` (the requested backend's text passed the checker),
`fallback` (an LLM failed; the template text is shown, the failure recorded)
or `ungrounded` (the bundle failed grounding and was never narrated).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from narrator.checker import CheckResult, Narrative
from ontology.model import canonical_json, content_id

TEMPLATE_VERSION = "template@1"
STATUSES = ("narrated", "fallback", "ungrounded")


@dataclass(frozen=True)
class Insight:
    finding_id: str
    bundle_hash: str
    narrative: Mapping[str, Any]  # Narrative.to_dict() plus backend, model, prompt_version
    fact_ids: tuple[str, ...]
    status: str
    backend: str
    requested_backend: str
    model: str | None
    prompt_version: str | None
    parameters: Mapping[str, Any]
    usage: Mapping[str, int]
    usage_calls: tuple[Mapping[str, Any], ...]
    check: Mapping[str, Any]
    grounding: Mapping[str, Any]
    llm_failure: Mapping[str, Any] | None
    bundle: Mapping[str, Any] = field(repr=False, default_factory=dict)
    insight_id: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"insight status {self.status!r} is not one of {STATUSES}")
        if not self.insight_id:
            story = {k: self.narrative.get(k) for k in ("text", "sentences")}
            ident = {"finding_id": self.finding_id, "bundle_hash": self.bundle_hash, "narrative": story}
            object.__setattr__(self, "insight_id", content_id("insight", ident))

    def to_dict(self) -> dict[str, Any]:
        """The `insights.payload` JSON (ontology/schemas/insight.schema.json plus provenance fields)."""
        return {
            "insight_id": self.insight_id, "finding_id": self.finding_id, "bundle_hash": self.bundle_hash,
            "narrative": dict(self.narrative), "fact_ids": list(self.fact_ids), "status": self.status,
            "backend": self.backend, "requested_backend": self.requested_backend, "model": self.model,
            "prompt_version": self.prompt_version, "parameters": dict(self.parameters), "usage": dict(self.usage),
            "usage_calls": [dict(c) for c in self.usage_calls], "check": dict(self.check),
            "grounding": dict(self.grounding), "llm_failure": dict(self.llm_failure) if self.llm_failure else None,
            "bundle": dict(self.bundle),
        }

    def to_row(self) -> tuple[str, str, str]:
        """(insight_id, finding_id, payload JSON) for the DuckDB `insights` table."""
        return self.insight_id, self.finding_id, canonical_json(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Insight:
        d = dict(data)
        return cls(
            finding_id=d["finding_id"], bundle_hash=d["bundle_hash"], narrative=d["narrative"],
            fact_ids=tuple(d["fact_ids"]), status=d["status"], backend=d["backend"],
            requested_backend=d["requested_backend"], model=d.get("model"), prompt_version=d.get("prompt_version"),
            parameters=d.get("parameters", {}), usage=d.get("usage", {}), usage_calls=tuple(d.get("usage_calls", ())),
            check=d.get("check", {}), grounding=d.get("grounding", {}), llm_failure=d.get("llm_failure"),
            bundle=d.get("bundle", {}), insight_id=d["insight_id"],
        )


def total_usage(calls: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Token totals over every LLM call made for one insight (zeros for the template)."""
    out = {"calls": len(calls), "input_tokens": 0, "output_tokens": 0}
    for call in calls:
        out["input_tokens"] += int(call.get("input_tokens", 0) or 0)
        out["output_tokens"] += int(call.get("output_tokens", 0) or 0)
    return out


def cited_ids(narrative: Narrative) -> tuple[str, ...]:
    return tuple(dict.fromkeys(i for s in narrative.all_sentences for i in s.fact_ids))


def make_insight(bundle: Mapping[str, Any], narrative: Narrative, result: CheckResult, *, status: str,
                 backend: str, requested_backend: str, model: str | None, prompt_version: str | None,
                 parameters: Mapping[str, Any], usage_calls: Sequence[Mapping[str, Any]] = (),
                 llm_failure: Mapping[str, Any] | None = None) -> Insight:
    story = {**narrative.to_dict(), "backend": backend, "model": model, "prompt_version": prompt_version}
    return Insight(
        finding_id=bundle["finding"]["finding_id"], bundle_hash=bundle["bundle_hash"], narrative=story,
        fact_ids=cited_ids(narrative), status=status, backend=backend, requested_backend=requested_backend,
        model=model, prompt_version=prompt_version, parameters=parameters, usage=total_usage(usage_calls),
        usage_calls=tuple(usage_calls), check=result.to_dict(), grounding={"ok": True, "reasons": []},
        llm_failure=llm_failure, bundle=bundle,
    )


def ungrounded_insight(bundle: Mapping[str, Any], reasons: Sequence[str], requested_backend: str,
                       parameters: Mapping[str, Any]) -> Insight:
    """The record of a finding that was not narrated, with the grounding reasons shown instead."""
    text = "Not narrated: the fact bundle failed grounding validation (" + "; ".join(reasons) + ")."
    story: dict[str, Any] = {"text": text, "sentences": [], "recommendation": None, "backend": "template", "model": None,
             "prompt_version": None}
    return Insight(
        finding_id=bundle["finding"]["finding_id"], bundle_hash=bundle["bundle_hash"], narrative=story, fact_ids=(),
        status="ungrounded", backend="template", requested_backend=requested_backend, model=None,
        prompt_version=None, parameters=parameters, usage=total_usage(()), usage_calls=(),
        check={"ok": False, "failures": [], "warnings": [], "numbers_checked": 0},
        grounding={"ok": False, "reasons": list(reasons)}, llm_failure=None, bundle=bundle,
    )
