"""Faithfulness checker: the deterministic gate between any narrator and a reader.

``check(bundle, narrative) -> CheckResult(ok, failures=[Failure(rule, span, message)])``.

A narrative is either structured, ``{"sentences": [{"text", "fact_ids"}],
"recommendation": {"text", "fact_ids"}}`` (the recommendation may instead be
the last sentence), plain text with citation markers, or plain text with no
marker at all: the narrative exactly as the feed and the web page show it.
Each sentence of such a text is read against the facts it speaks of: every
fact all of whose names (states, outcomes, segments, releases) it quotes, the
subject's before the object's, and the finding's own fact when the sentence
names its subject, all its names, or no name at all.

Plain-text citation format: ``[f:ID]`` or ``[f:ID1,ID2]`` where each ID is a
full fact id or a unique prefix of at least 8 hex characters. A marker cites
for the sentence it stands in; markers right after a sentence's final
punctuation (``… 57.7%. [f:1a2b3c4d]``) belong to that sentence. Sentences end
at ``.``, ``!`` or ``?`` followed by white space.

Names from the bundle (states, outcomes, segments, releases) are data, not
claims: when quoted (``"x"``, ``“x”``, ```x```, ``'x'``) they are masked
before the rules run, so a state called "conversion doubled" can be named but a
sentence cannot claim it. Rules (failure codes):

- CITE_MISSING / CITE_UNKNOWN: every sentence, the recommendation included,
  cites ≥ 1 fact and every cited id is in the bundle;
- NUM_UNSUPPORTED / NUM_MISATTRIBUTED: every number (digits, percentages,
  multiples, durations, spelled multiples such as "doubled") is a faithful
  rendering of a number of a fact the sentence cites (rounding rule in
  narrator/numbers.py); MISATTRIBUTED means it belongs to an uncited fact;
- NUM_UNIT / NUM_SIGN / SIGN_DROPPED / NUM_ROLE / DIRECTION / DENOMINATOR:
  each number is attributed to one evidence field whose unit, population,
  sign, comparison side and direction its words agree with, and "A of B" names
  a part and its whole (narrator.attribution, field meanings in narrator.measures);
- DATE_UNSUPPORTED: ISO dates must be dates of the bundle;
- CAUSAL: no causal verbs or phrases (word boundaries, case-insensitive);
- CONFIDENCE_MISSING / N_MISSING: the finding's confidence label appears in a
  sentence that speaks of confidence, and its sample size n appears (exactly);
- RECOMMENDATION_MISSING / RECOMMENDATION_MULTIPLE / RECOMMENDATION_NOT_LAST:
  exactly one recommendation (a sentence opening with an action verb), last;
- EVENT_UNKNOWN: an unquoted snake_case identifier that is not a bundle name;
- URL / FENCE_ECHO: no links, images or echoed prompt fences.
Warnings (not failures): agentive change verbs and overclaims.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from narrator import kinds, measures, numbers
from narrator.attribution import Field, attribute
from narrator.bundle import (
    bundle_names,
    clean_name,
    clean_text,
    entity_states,
    facts_by_id,
    local_name,
    primary_fact_id,
)
from ontology import vocabulary

CAUSAL_RE = re.compile(
    r"\b(?:caus(?:e|es|ed|ing|al|ally|ation)|drives?|drove|driven|driving|lead(?:s|ing)? to|led to|"
    r"result(?:s|ed|ing)? in|because|due to|thanks to|makes?|made (?:users|people|them|customers)|"
    r"triggers?|triggered|triggering|produces?|produced|producing|proves?|proved|proven|impacts?|impacted|"
    r"influences?|influenced|responsible for|attributable to|(?:will|would) (?:increase|improve|boost|"
    r"raise|reduce|lower|lift|double|grow|fix))\b", re.IGNORECASE)
AGENTIVE_RE = re.compile(r"\b(?:increases|improves|boosts|reduces|hurts|prevents|harms)\b", re.IGNORECASE)
OVERCLAIM_RE = re.compile(r"\b(?:always|never|guarantee[sd]?|significant(?:ly)?|certainly|definitely|all users)\b",
                          re.IGNORECASE)
ACTION_RE = re.compile(
    r"^\W*(?:consider|test|run|validate|investigate|prioriti[sz]e|review|examine|explore|check|compare|monitor|"
    r"audit|instrument|interview|try|simplify|study|we recommend)\b", re.IGNORECASE)
URL_RE = re.compile(r"(?:https?://|ftp://|www\.|!\[|\]\(|<img|<a\s)", re.IGNORECASE)
FENCE_RE = re.compile(r"</?facts[-\w]*>?", re.IGNORECASE)
SNAKE_RE = re.compile(r"(?<![\w⟦])[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)+(?![\w⟧])")
MARKER_RE = re.compile(r"\[f:\s*([0-9a-fA-F]{1,64}(?:\s*,\s*[0-9a-fA-F]{1,64})*)\s*\]")
SPLIT_RE = re.compile(r"(?<=[.!?])\s+")
QUOTES = (('"', '"'), ("“", "”"), ("`", "`"), ("'", "'"), ("‘", "’"), ("«", "»"))
MIN_PREFIX = 8


@dataclass(frozen=True)
class Failure:
    """One broken rule: the rule code, the exact offending span, and what to do about it."""

    rule: str
    span: str
    message: str


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    failures: tuple[Failure, ...] = ()
    warnings: tuple[Failure, ...] = ()
    numbers_checked: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "failures": [asdict(f) for f in self.failures],
                "warnings": [asdict(w) for w in self.warnings], "numbers_checked": self.numbers_checked}


@dataclass(frozen=True)
class Sentence:
    text: str
    fact_ids: tuple[str, ...]


@dataclass(frozen=True)
class Narrative:
    """Sentences plus the one closing recommendation; `text` is what a reader sees."""

    sentences: tuple[Sentence, ...]
    recommendation: Sentence | None

    @property
    def all_sentences(self) -> tuple[Sentence, ...]:
        return self.sentences + ((self.recommendation,) if self.recommendation else ())

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.all_sentences)

    def marked_text(self) -> str:
        """Plain text with `[f:…]` markers (8-char prefixes), the format `verify` reads."""
        parts = []
        for s in self.all_sentences:
            marker = f" [f:{','.join(i[:MIN_PREFIX] for i in s.fact_ids)}]" if s.fact_ids else ""
            body = s.text.rstrip()
            end = body[-1] if body and body[-1] in ".!?" else ""
            parts.append(f"{body[:-1] if end else body}{marker}{end or '.'}")
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text,
                "sentences": [{"text": s.text, "fact_ids": list(s.fact_ids)} for s in self.all_sentences],
                "recommendation": ({"text": self.recommendation.text, "fact_ids": list(self.recommendation.fact_ids)}
                                   if self.recommendation else None)}

    @classmethod
    def from_obj(cls, obj: Mapping[str, Any] | str) -> Narrative:
        """Parse structured output or marked plain text (format in the module doc)."""
        if isinstance(obj, str):
            return parse_text(obj)
        sents = tuple(Sentence(str(s.get("text", "")), tuple(str(i) for i in s.get("fact_ids") or ()))
                      for s in obj.get("sentences") or ())
        rec = obj.get("recommendation")
        if isinstance(rec, Mapping):
            recommendation = Sentence(str(rec.get("text", "")), tuple(str(i) for i in rec.get("fact_ids") or ()))
            if sents and sents[-1] == recommendation:  # feed shape: recommendation repeated as last sentence
                sents = sents[:-1]
            return cls(sents, recommendation)
        return cls(sents, None)


def parse_text(text: str) -> Narrative:
    """Split marked plain text into sentences with their cited ids."""
    text = re.sub(r"\s+", " ", text).strip()
    chunks = [c for c in SPLIT_RE.split(text) if c]
    out: list[tuple[str, list[str]]] = []
    for chunk in chunks:
        lead = re.match(r"^(?:\s*\[f:[^\]]*\])+", chunk)
        if lead and out:
            out[-1][1].extend(_marker_ids(lead.group(0)))
            chunk = chunk[lead.end():].strip()
        if not chunk:
            continue
        ids = _marker_ids(chunk)
        body = re.sub(r"\s*" + MARKER_RE.pattern, "", chunk).strip()
        out.append((body, ids))
    return Narrative(tuple(Sentence(t, tuple(i)) for t, i in out if t), None)


def _marker_ids(text: str) -> list[str]:
    return [i.strip().lower() for m in MARKER_RE.finditer(text) for i in m.group(1).split(",")]


# ---- rule helpers ----------------------------------------------------------------------------

@dataclass
class _Context:
    facts: dict[str, Mapping[str, Any]]
    fields_by_fact: dict[str, list[Field]]
    names: list[str]
    known_identifiers: set[str]
    dates: set[str]
    failures: list[Failure] = field(default_factory=list)
    warnings: list[Failure] = field(default_factory=list)
    checked: int = 0

    @property
    def all_fields(self) -> list[Field]:
        return [f for fs in self.fields_by_fact.values() for f in fs]


def _context(bundle: Mapping[str, Any]) -> _Context:
    facts = facts_by_id(bundle)
    finding = bundle["finding"]
    by_fact = {fid: [Field(fid, k, v, m) for k, v, m in measures.fields(f)] for fid, f in facts.items()}
    head = primary_fact_id(bundle)
    by_fact[head] = by_fact[head] + [Field(head, k, v, m) for k, v, m in measures.fields(finding)]
    names = bundle_names(bundle)
    identifiers = set(names) | set(vocabulary.PREDICATES) | set(vocabulary.FINDING_TYPES) | set(kinds.registry().findings)
    for item in [finding, *facts.values()]:
        identifiers.update(item.get("evidence", {}).keys())
    strings = [str(v) for item in [finding, *facts.values()] for v in _all_strings(item)]
    dates = {m.group(0)[:10] for s in strings for m in numbers.DATE_RE.finditer(s)}
    return _Context(facts, by_fact, names, identifiers, dates)


def _all_strings(obj: Any) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, Mapping):
        return [s for v in obj.values() for s in _all_strings(v)]
    if isinstance(obj, (list, tuple)):
        return [s for v in obj for s in _all_strings(v)]
    return []


def mask_names(text: str, names: Sequence[str]) -> tuple[str, list[str]]:
    """Replace quoted bundle names by ⟦N<i>⟧ so their contents never count as claims."""
    masked, table = text, list[str]()
    for name in names:
        for left, right in QUOTES:
            needle = f"{left}{name}{right}"
            if needle in masked:
                masked = masked.replace(needle, f"{left}⟦N{len(table)}⟧{right}")
                table.append(name)
    return masked, table


def unmask(text: str, table: Sequence[str]) -> str:
    return re.sub(r"⟦N(\d+)⟧", lambda m: table[int(m.group(1))], text)


def _prepare(text: str, ctx: _Context) -> tuple[str, list[str]]:
    cleaned = clean_text(re.sub(r"\s+", " ", numbers.normalise(text)))  # never truncated: every word is checked
    cleaned = MARKER_RE.sub("", cleaned)  # citation markers inside structured text are not numbers
    return mask_names(cleaned, ctx.names)


def _resolve(ids: Sequence[str], ctx: _Context, span: str) -> list[str]:
    resolved = []
    for raw in ids:
        fid = raw.lower()
        if fid in ctx.facts:
            resolved.append(fid)
            continue
        hits = [k for k in ctx.facts if len(fid) >= MIN_PREFIX and k.startswith(fid)]
        if len(hits) == 1:
            resolved.append(hits[0])
        else:
            why = "is ambiguous" if hits else "is not a fact of this bundle"
            ctx.failures.append(Failure("CITE_UNKNOWN", span, f"cited id {raw!r} {why}; cite only bundle fact ids"))
    return resolved


def _check_dates(text: str, ctx: _Context) -> str:
    def replace(m: re.Match[str]) -> str:
        if m.group(0)[:10] not in ctx.dates:
            ctx.failures.append(Failure("DATE_UNSUPPORTED", m.group(0), "this date is not in the bundle"))
        return "⟦D⟧"
    return numbers.DATE_RE.sub(replace, text)


def _check_numbers(text: str, cited: Sequence[str], ctx: _Context, table: Sequence[str]) -> None:
    """Each number must render a cited field's value, and its words must fit that field (narrator.attribution)."""
    allowed = [f for fid in cited for f in ctx.fields_by_fact.get(fid, [])]
    found = []
    for num in numbers.extract_numbers(text):
        ctx.checked += 1
        matching = [f for f in allowed if numbers.matches(num, f.value)]
        found.append((num, matching))
        if matching:
            continue
        if any(numbers.matches(num, f.value) for f in ctx.all_fields):
            ctx.failures.append(Failure("NUM_MISATTRIBUTED", unmask(num.text, table),
                                        "this number belongs to a fact the sentence does not cite; cite that fact"))
        else:
            ctx.failures.append(Failure("NUM_UNSUPPORTED", unmask(num.text, table),
                                        "no cited fact holds this number (altered, invented, derived or over-rounded); "
                                        "use the bundle's number" + _nearest(num, [f.value for f in allowed])))
    for p in attribute(text, found, lambda span: unmask(span, table)):
        ctx.failures.append(Failure(p.rule, p.span, p.message))


def _nearest(num: numbers.TextNumber, allowed: Sequence[float | int]) -> str:
    """A hint for the repair round: the cited value this number most likely meant (within 25%)."""
    written = num.value * num.scale
    close = [v for v in allowed if v and abs(abs(float(v)) - written) <= 0.25 * abs(float(v))]
    if not close or num.spelled or num.threshold:
        return ""
    best = min(close, key=lambda v: (abs(abs(float(v)) - written), str(v)))
    return f"; the closest cited value is {best}"


def _check_language(text: str, ctx: _Context, table: Sequence[str]) -> None:
    for m in CAUSAL_RE.finditer(text):
        ctx.failures.append(Failure("CAUSAL", m.group(0), "causal wording; use associative wording "
                                    "(is associated with, more likely, suggests)"))
    for m in AGENTIVE_RE.finditer(text):
        ctx.warnings.append(Failure("AGENTIVE", m.group(0), "agentive change verb reads as causal"))
    for m in OVERCLAIM_RE.finditer(text):
        ctx.warnings.append(Failure("OVERCLAIM", m.group(0), "overclaiming word"))
    for m in URL_RE.finditer(text):
        ctx.failures.append(Failure("URL", unmask(m.group(0), table), "no links or images in narratives"))
    for m in FENCE_RE.finditer(text):
        ctx.failures.append(Failure("FENCE_ECHO", m.group(0), "the prompt's data fence is echoed"))
    for m in SNAKE_RE.finditer(text):
        if m.group(0) not in ctx.known_identifiers:
            ctx.failures.append(Failure("EVENT_UNKNOWN", m.group(0), "this identifier is not in the bundle"))


def _check_sentence(sentence: Sentence, ctx: _Context) -> str:
    masked, table = _prepare(sentence.text, ctx)
    span = sentence.text[:120]
    if not sentence.fact_ids:
        ctx.failures.append(Failure("CITE_MISSING", span, "the sentence cites no fact; add the fact ids it rests on"))
    cited = _resolve(sentence.fact_ids, ctx, span)
    masked = _check_dates(masked, ctx)
    _check_numbers(masked, cited, ctx, table)
    _check_language(masked, ctx, table)
    return masked


def _check_recommendation(narrative: Narrative, ctx: _Context) -> None:
    actions = [i for i, s in enumerate(narrative.sentences) if ACTION_RE.match(s.text)]
    extra: list[int] = actions
    if narrative.recommendation is not None and not narrative.recommendation.text.strip():
        ctx.failures.append(Failure("RECOMMENDATION_MISSING", "", "the recommendation is empty"))
    elif narrative.recommendation is not None:
        if not ACTION_RE.match(narrative.recommendation.text):
            ctx.warnings.append(Failure("RECOMMENDATION_NOT_IMPERATIVE", narrative.recommendation.text[:120],
                                        "start the recommendation with an action verb"))
    else:
        last = len(narrative.sentences) - 1
        if not actions:
            ctx.failures.append(Failure("RECOMMENDATION_MISSING", "", "end with one concrete recommendation "
                                        "(a sentence opening with Consider/Test/Investigate/…)"))
            return
        if actions[-1] != last:
            ctx.failures.append(Failure("RECOMMENDATION_NOT_LAST", narrative.sentences[actions[-1]].text[:120],
                                        "the recommendation must be the last sentence"))
        extra = actions[:-1]
    for i in extra:
        ctx.failures.append(Failure("RECOMMENDATION_MULTIPLE", narrative.sentences[i].text[:120],
                                    "exactly one recommendation is allowed"))


def _check_mentions(masked_texts: Sequence[str], bundle: Mapping[str, Any], ctx: _Context) -> None:
    finding = bundle["finding"]
    joined = " ".join(masked_texts)
    label = str(finding.get("confidence_label", ""))
    said = [t for t in masked_texts if re.search(r"\bconfiden", t, re.IGNORECASE)
            and re.search(rf"\b{re.escape(label)}\b", t, re.IGNORECASE)]
    if not label or not said:
        ctx.failures.append(Failure("CONFIDENCE_MISSING", "", f"state the confidence label, e.g. 'confidence is {label}'"))
    n = finding.get("n")
    if not any(numbers.matches(num, n) for num in numbers.extract_numbers(joined) if not num.spelled):
        ctx.failures.append(Failure("N_MISSING", "", f"state the sample size n = {n}"))


def _entity_names(entity: str) -> set[str]:
    kind = entity.partition(":")[0]
    if kind in ("edge", "path"):
        return {clean_name(n) for n in entity_states(entity)}
    return {clean_name(local_name(entity))} if kind in ("state", "outcome", "segment", "release") else set()


def _named_facts(text: str, bundle: Mapping[str, Any], ctx: _Context) -> tuple[str, ...]:
    """For text shown without citations, the facts a sentence speaks of (see the module doc)."""
    masked, quoted = mask_names(clean_text(numbers.normalise(text)), ctx.names)
    first = {name: masked.find(f"⟦N{i}⟧") for i, name in reversed(list(enumerate(quoted)))}
    head = primary_fact_id(bundle)

    def spoken_of(fact: Mapping[str, Any]) -> bool:
        subj, obj = _entity_names(fact["subject"]), _entity_names(fact["object"])
        if not (subj | obj) <= set(first):
            return False
        if subj and obj and not subj & obj:  # "A is followed by B": A is named before B
            return min(first[n] for n in subj) < min(first[n] for n in obj)
        return True

    named = [fid for fid, fact in ctx.facts.items() if fid != head and spoken_of(fact)]
    subject = _entity_names(ctx.facts[head]["subject"])
    own = not first or spoken_of(ctx.facts[head]) or (bool(subject) and subject <= set(first))
    return _narrowed(text, ((head,) if own or not named else ()) + tuple(named), bundle, ctx)


_WINDOW_NOTE = re.compile(r"in the window (\d{4}-\d{2}-\d{2}) to (\d{4}-\d{2}-\d{2})")


def _narrowed(text: str, candidates: tuple[str, ...], bundle: Mapping[str, Any], ctx: _Context) -> tuple[str, ...]:
    """The facts a sentence is checked against: the finding's own fact for its own sentences; for a "Related:"
    sentence, of the facts it names, those its predicate phrase and its window say (never none).

    A related sentence that says "precedes every case of" speaks of a necessary step, not of the same states' other
    facts; one without a window note speaks of the finding's own snapshot (the template adds the note
    otherwise). Without this, a number moved in from another fact naming the same states would pass."""
    if not text.lstrip().startswith("Related:"):  # the finding's own sentences speak of its own fact
        head = primary_fact_id(bundle)
        return (head,) if head in candidates else candidates
    facts = ctx.facts
    said = {p for p, phrase in kinds.registry().phrases.items() if phrase in text}
    if said:
        candidates = tuple(f for f in candidates if facts[f]["predicate"] in said) or candidates
    window = _WINDOW_NOTE.search(text)
    if window:
        keep = tuple(f for f in candidates if str(facts[f].get("valid_from", ""))[:10] == window[1]
                     and str(facts[f].get("valid_to", ""))[:10] == window[2])
    else:
        snapshot = bundle["finding"].get("snapshot_id")
        keep = tuple(f for f in candidates if (facts[f].get("provenance") or {}).get("snapshot_id") == snapshot)
    return keep or candidates


def check(bundle: Mapping[str, Any], narrative: Mapping[str, Any] | str | Narrative) -> CheckResult:
    """Run every rule; ok only when no failure remains (warnings do not fail)."""
    ctx = _context(bundle)
    if isinstance(narrative, str):  # mask quoted names first so a name like "a. B" cannot split a sentence
        masked_text, table = mask_names(numbers.normalise(narrative), ctx.names)
        split = parse_text(masked_text)
        uncited = not any(s.fact_ids for s in split.sentences)  # the text exactly as the feed shows it
        sentences = [unmask(s.text, table) for s in split.sentences]
        parsed = Narrative(tuple(Sentence(t, _named_facts(t, bundle, ctx) if uncited else s.fact_ids)
                                 for t, s in zip(sentences, split.sentences)), None)
    else:
        parsed = narrative if isinstance(narrative, Narrative) else Narrative.from_obj(narrative)
    if not parsed.all_sentences:
        return CheckResult(False, (Failure("EMPTY", "", "the narrative has no sentences"),))
    masked = [_check_sentence(s, ctx) for s in parsed.all_sentences]
    _check_recommendation(parsed, ctx)
    _check_mentions(masked, bundle, ctx)
    return CheckResult(not ctx.failures, tuple(ctx.failures), tuple(ctx.warnings), ctx.checked)
