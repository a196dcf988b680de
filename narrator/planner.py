"""Question planner: resolve a plain-language question against the graph's own vocabulary.

The planner never guesses names: states, outcomes, segments, releases and
journeys are matched only against what the workspace and the fact store
actually contain, tolerantly (case, snake_case vs spaces, simple stemming).
Phrases map to predicates ("most associated with converting" -> driver
predicates, "differ" -> segment predicates, "what changed after X" -> change
predicates). A name-like word the vocabulary does not know is recorded as
unresolved, so the answer can say the facts do not cover it instead of
answering a different question.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from narrator import kinds
from narrator.linking import (
    latest_release,
    near_segments,
    outcome_matches,
    resolve_window,
)
from ontology.model import Fact
from ontology.names import entity_states

_WORD = re.compile(r"[a-z0-9]+(?:\.[a-z0-9]+)*")
_STOP = frozenset([
    "a", "an", "the", "of", "in", "on", "to", "for", "with", "by", "and", "or", "is", "are", "was", "were",
    "do", "does", "did", "what", "which", "who", "how", "why", "when", "where", "users", "user", "journeys",
    "journey", "step", "steps", "state", "states", "most", "more", "than", "after", "before", "since",
    "between", "from", "it", "its", "that", "this", "these", "those", "there", "be", "been", "has", "have",
    "had", "not", "no", "vs", "versus", "me", "tell", "show", "about", "any", "all", "compare", "differ",
    "per", "each", "every"
])

def _intent_table() -> tuple[tuple[str, tuple[str, ...], str], ...]:
    """(regex over the lower-cased question, predicates it points to, intent name), from the kinds (narrator.kinds)."""
    return tuple((i.pattern, i.predicates, i.name) for i in kinds.registry().intents)


# A question about the future: the facts describe what happened, never forecast.
_FUTURE = re.compile(r"\bwill\b|\bnext (?:week|month|quarter|year)\b|\btomorrow\b|\bforecast\w*|\bpredict(?:ed|ion)? (?:for|next)")
_FUTURE_SPAN = re.compile(r"\bnext (?:week|month|quarter|year)\b|\btomorrow\b|\bforecast\w*")

# Near misses: a word the workspace does not use, and the name parts it points to ("mobile" -> android, ios).
NEAR: dict[str, tuple[str, ...]] = {
    "mobile": ("android", "ios", "iphone", "ipad", "mobile"), "phone": ("android", "ios", "iphone"),
    "desktop": ("web", "desktop", "windows", "mac", "macos", "linux"), "browser": ("web",),
    "small": ("under", "small", "low", "below", "less"), "low": ("under", "low", "below"),
    "large": ("plus", "over", "large", "high", "above"), "big": ("plus", "over", "large", "high", "above"),
    "paid": ("pro", "team", "paid", "premium", "business"), "paying": ("pro", "team", "paid", "premium"),
    "apple": ("ios", "mac", "macos"),
}
# Words a segment-ranking question uses instead of naming a key ("which segment", "which amount band").
_SEGMENT_WORDS = frozenset(["segment", "segments", "group", "groups", "cohort", "cohorts", "band", "bands", "tier",
                            "tiers", "kind", "type", "types", "users", "customers", "platform", "plan"])

_DATE = re.compile(r"\b(\d{4}-\d{2}-\d{2})\b")
_AFTER_NAME = re.compile(r"\b(?:after|since|before|release|version)\s+([a-z]*\d[\w.\-]*)")


def stem(word: str) -> str:
    """A small suffix stripper: converting/converted/conversion -> convert, dropping -> drop."""
    if len(word) <= 3 or any(ch.isdigit() for ch in word):
        return word
    for suffix, repl in (("ations", "at"), ("ation", "at"), ("sion", "t"), ("ies", "y"), ("ing", ""),
                         ("ers", ""), ("er", ""), ("ed", ""), ("es", ""), ("ly", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            word = word[: len(word) - len(suffix)] + repl
            break
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiouls":
        word = word[:-1]
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    return word


def words(text: str) -> list[str]:
    """Lower-case words with snake_case, kebab-case and punctuation split; dotted versions kept whole."""
    return _WORD.findall(text.lower().replace("_", " ").replace("-", " "))


def stems(text: str) -> list[str]:
    return [stem(w) for w in words(text)]


_STOP_STEMS = frozenset(stem(w) for w in _STOP) | _STOP


def _is_stop(word: str) -> bool:
    return word in _STOP_STEMS or stem(word) in _STOP_STEMS


# Words that may stand beside a segment key without naming a value ("plan types", "each platform").
_GENERIC = frozenset(stem(w) for w in [
    "segment", "segments", "group", "groups", "type", "types", "value", "values", "each", "every", "other",
    "rest", "different", "differently", "behave", "behaviour", "behavior", "level", "levels", "tier",
    "tiers"
])


@dataclass(frozen=True)
class Term:
    """One vocabulary entry: its kind, canonical name and stemmed word sequence."""

    kind: str  # journey | state | outcome | segment_key | segment_value | release
    name: str  # e.g. "import_data", "plan=pro" for a segment value, "plan" for a key
    key: tuple[str, ...]


@dataclass
class Vocabulary:
    """Names the graph itself uses, gathered from the workspace and the fact store."""

    terms: list[Term] = field(default_factory=list)
    conversion_outcome: str | None = None
    data_end: str | None = None  # the last all-data snapshot's window end: "last week" is relative to it
    release_at: dict[str, str] = field(default_factory=dict)  # release -> time, for "the last release"
    segment_values: dict[str, list[str]] = field(default_factory=dict)  # key -> values, yes/no values too

    def add(self, kind: str, name: str, text: str | None = None) -> None:
        key = tuple(stems(text if text is not None else name))
        if key and Term(kind, name, key) not in self.terms:
            self.terms.append(Term(kind, name, key))

    @classmethod
    def build(cls, facts: Iterable[Fact], con: Any = None, cfg: Any = None) -> Vocabulary:
        vocab = cls()
        for fact in facts:
            for entity in (fact.subject, fact.object):
                vocab._add_entity(entity)
        if con is not None:
            vocab._add_workspace(con)
        if cfg is not None:
            for journey in getattr(cfg, "journeys", ()):
                vocab.add("journey", journey.name)
                vocab.conversion_outcome = vocab.conversion_outcome or journey.conversion_outcome
            for release in getattr(cfg, "releases", ()):
                vocab.add("release", release.name)
                vocab.release_at[release.name] = release.at
            for segment in getattr(cfg, "segments", ()):
                vocab.add("segment_key", segment.key)
        vocab.terms.sort(key=lambda t: (-len(t.key), t.kind, t.name))
        return vocab

    def _add_entity(self, entity: str) -> None:
        kind, _, rest = entity.partition(":")
        if kind in ("state", "outcome", "journey", "release"):
            self.add(kind, rest)
        elif kind == "segment":
            seg_key, _, value = rest.partition("=")
            self.add("segment_key", seg_key)
            if value and value != "*":
                self._add_segment_value(seg_key, value)
        elif kind == "edge":
            for state in entity_states(entity):
                self.add("state", state)

    def _add_segment_value(self, seg_key: str, value: str) -> None:
        known = self.segment_values.setdefault(seg_key, [])
        if value not in known:
            known.append(value)
        if value.lower() in ("true", "false", "(none)", "none", "yes", "no"):
            return  # too generic to match on its own; the key carries it
        self.add("segment_value", f"{seg_key}={value}", value)

    def _add_workspace(self, con: Any) -> None:
        rows = con.execute(
            "SELECT DISTINCT journey, segment_key, segment_value, release, "
            "CAST(json_extract(payload, '$.states') AS VARCHAR), CAST(json_extract(payload, '$.outcomes') AS VARCHAR), "
            "json_extract_string(payload, '$.conversion_outcome') FROM snapshots ORDER BY ALL").fetchall()
        end = con.execute("SELECT max(window_end) FROM snapshots WHERE scope = 'all'").fetchone()
        self.data_end = str(end[0])[:10] if end and end[0] else None
        for journey, seg_key, seg_value, release, states, outcomes, conversion in rows:
            self.add("journey", journey)
            if seg_key:
                self.add("segment_key", seg_key)
                if seg_value is not None:
                    self._add_segment_value(seg_key, seg_value)
            if release:
                self.add("release", release)
            for state in json.loads(states or "[]"):
                self.add("state", state)
            for outcome in json.loads(outcomes or "[]"):
                self.add("outcome", outcome)
            self.conversion_outcome = self.conversion_outcome or conversion


@dataclass(frozen=True)
class Plan:
    """What a question asks for, in the graph's own names."""

    question: str
    intents: tuple[str, ...]
    predicates: tuple[str, ...]
    journeys: tuple[str, ...]
    states: tuple[str, ...]
    outcomes: tuple[str, ...]
    segments: tuple[str, ...]  # "key=value" or "key" (every value of the key)
    releases: tuple[str, ...]
    window: tuple[str, str] | None
    unresolved: tuple[str, ...]
    terms: tuple[str, ...]  # stemmed content words, the BM25 query
    notes: tuple[str, ...] = ()  # near misses and defaults the answer must state
    unknown: tuple[str, ...] = ()  # content words that name nothing in the workspace
    future: str | None = None  # the phrase asking about the future ("next month"), which facts cannot answer
    outcome_named: bool = False  # the question names an outcome (else the conversion outcome is the default)

    def entities(self) -> tuple[str, ...]:
        """Entity-id prefixes this plan constrains facts to."""
        out = [f"state:{s}" for s in self.states] + [f"outcome:{o}" for o in self.outcomes]
        out += [f"segment:{s}" for s in self.segments] + [f"release:{r}" for r in self.releases]
        return tuple(out)

    @property
    def empty(self) -> bool:
        return not (self.predicates or self.states or self.outcomes or self.segments or self.releases)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["window"] = list(self.window) if self.window else None
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}


def _match_terms(tokens: list[str], vocab: Vocabulary) -> tuple[list[Term], set[int], dict[str, int]]:
    """Longest-first contiguous matches of vocabulary word sequences in the question's stems
    (the matched terms, the token positions used, and where each segment key was found)."""
    used: set[int] = set()
    found: list[Term] = []
    key_at: dict[str, int] = {}
    for term in vocab.terms:  # sorted longest first
        n = len(term.key)
        for i in range(len(tokens) - n + 1):
            span = set(range(i, i + n))
            if tuple(tokens[i:i + n]) == term.key and not span & used:
                if n == 1 and _is_stop(term.key[0]) and term.kind not in ("release",):
                    continue
                used |= span
                found.append(term)
                if term.kind == "segment_key":
                    key_at[term.name] = i
                break
    return found, used, key_at


def _intents(text: str) -> tuple[list[str], list[str]]:
    names: list[str] = []
    predicates: list[str] = []
    for pattern, preds, name in _intent_table():
        if re.search(pattern, text):
            names.append(name)
            predicates += [p for p in preds if p not in predicates]
    return names, predicates


def _segments(found: list[Term]) -> list[str]:
    values = sorted({t.name for t in found if t.kind == "segment_value"})
    keys_with_value = {v.split("=", 1)[0] for v in values}
    keys = sorted({t.name for t in found if t.kind == "segment_key"} - keys_with_value)
    return values + keys


def _unresolved(text: str, found: list[Term], raw: list[str], used: set[int], key_at: dict[str, int]) -> list[str]:
    """Names the question uses that the graph does not know: a version after 'after/since/release'
    (e.g. 'v9.9'), or the word beside a segment key that is none of its values ('enterprise plan')."""
    known = {w for t in found for w in t.key}
    out = {m for m in _AFTER_NAME.findall(text) if stem(m) not in known and not _DATE.fullmatch(m)}
    keys_with_value = {t.name.split("=", 1)[0] for t in found if t.kind == "segment_value"}
    for key, i in key_at.items():
        if key in keys_with_value:
            continue
        for j in (i - 1, i + 1):
            if 0 <= j < len(raw) and j not in used and not _is_stop(raw[j]) and stem(raw[j]) not in _GENERIC:
                out.add(f"{key}={raw[j]}")
    return sorted(out)


# Words of the question's shape that name nothing in the data (never "unknown" in a no-answer note).
_QUESTION_WORDS = frozenset(stem(w) for w in [
    "rate", "rates", "share", "percent", "percentage", "proportion", "fraction", "many", "often", "much",
    "overall", "baseline", "ratio", "likely", "convert", "conversion", "converting", "converts", "worse",
    "worst", "better", "best", "least", "lowest", "highest", "poorest", "less", "often", "matter", "matters",
    "important", "key", "factor", "drive", "drives", "driver", "drivers", "associated", "associate",
    "change", "changed", "got", "release", "releases", "last", "latest", "previous", "recent", "week",
    "month", "year", "day", "since", "during", "period", "segment", "segments", "group", "groups", "cohort",
    "band", "bands", "tier", "type", "kind", "platform", "plan", "people", "customers", "customer",
    "visitors", "happen", "come", "get", "go", "make", "use", "see", "look", "drop", "off", "fall", "leave",
    "lose", "lost", "biggest", "largest", "most", "top", "step", "steps", "page", "screen", "where", "why",
    "whose", "overall", "total", "number", "count", "counts", "total", "complete", "completed", "finish",
    "finished", "end", "ends", "outcome", "outcomes", "quick", "fast", "slow", "path", "paths", "route",
    "repeat", "again", "loop", "differ", "compare", "versus", "between", "next", "good", "bad"
])


def _outcomes(tokens: list[str], used: set[int], found: list[Term], vocab: Vocabulary) -> list[str]:
    """Outcomes named exactly, or by a word sharing the outcome's stem ('approval' -> approved)."""
    names = {t.name for t in found if t.kind == "outcome"}
    for term in vocab.terms:
        if term.kind != "outcome" or len(term.key) != 1:
            continue
        for i, tok in enumerate(tokens):
            if i not in used and outcome_matches(tok, term.key[0]):
                names.add(term.name)
                used.add(i)
    return sorted(names)


def _near(raw: list[str], used: set[int], vocab: Vocabulary) -> tuple[list[str], list[str]]:
    """Segments reached through a near-miss word ('mobile' -> platform=android, platform=ios) and the notes."""
    segments: list[str] = []
    notes: list[str] = []
    for i, word in enumerate(raw):
        if i in used or word not in NEAR:
            continue
        linked = near_segments(word, NEAR[word], vocab.segment_values)
        if linked:
            used.add(i)
            segments += [s for s in linked if s not in segments]
            notes.append(f'No segment is named "{word}"; read as ' + ", ".join(f'"{s}"' for s in linked) + ".")
    return segments, notes


def _unknown(raw: list[str], tokens: list[str], used: set[int]) -> list[str]:
    return [raw[i] for i, tok in enumerate(tokens) if i not in used and not _is_stop(raw[i]) and
            tok not in _QUESTION_WORDS and raw[i] not in _QUESTION_WORDS and not raw[i].isdigit()]


def _releases(text: str, found: list[Term], vocab: Vocabulary) -> list[str]:
    named = sorted({t.name for t in found if t.kind == "release"})
    if named or not re.search(r"\b(?:last|latest|recent|previous|the) (?:release|launch|deploy|version)", text):
        return named
    last = latest_release(vocab.release_at) or next((t.name for t in vocab.terms if t.kind == "release"), None)
    return [last] if last else []


def _shape(intents: list[str], predicates: list[str], has_segments: bool, raw: list[str]) -> None:
    """Keep 'compare' only for segment questions, and let a rate question ask for rates, not drop-off points."""
    mentions_group = has_segments or any(w in _SEGMENT_WORDS for w in raw)
    if "compare" in intents and (not mentions_group or {"driver", "dropoff", "path"} & set(intents)):
        intents.remove("compare")
    if "compare" in intents and "rate" not in intents:
        intents.append("rate")
    if "compare" in intents and "change" in intents and not re.search(r"\d", " ".join(raw)):
        intents.remove("change")
    keep = {p for name, preds in ((n, p) for _, p, n in _intent_table()) if name in intents for p in preds}
    predicates[:] = [p for p in predicates if p in keep]


def plan_question(question: str, vocab: Vocabulary) -> Plan:
    """Resolve a question to journeys, states, outcomes, segments, releases, window and predicates."""
    text = question.lower()
    raw = words(question)
    tokens = [stem(w) for w in raw]
    found, used, key_at = _match_terms(tokens, vocab)
    intents, predicates = _intents(text)
    outcomes = _outcomes(tokens, used, found, vocab)
    outcome_named = bool(outcomes)
    near, notes = _near(raw, used, vocab)
    segments = _segments(found) + [s for s in near if s not in _segments(found)]
    _shape(intents, predicates, bool(segments), raw)
    if ("driver" in intents or "rate" in intents) and not outcomes and vocab.conversion_outcome:
        outcomes = [vocab.conversion_outcome]  # "converting" means the journey's conversion outcome
    releases = _releases(text, found, vocab)
    if releases and "change" not in intents and "segment" not in intents:
        intents.append("change")
        predicates += ["regressed_after", "changed_after"]
    window = resolve_window(text, vocab.data_end)
    future = _FUTURE_SPAN.search(text) if _FUTURE.search(text) else None
    content = [tok for i, tok in enumerate(tokens) if not _is_stop(raw[i]) and i not in used]
    return Plan(
        question=question,
        intents=tuple(intents),
        predicates=tuple(predicates),
        journeys=tuple(sorted({t.name for t in found if t.kind == "journey"})),
        states=tuple(sorted({t.name for t in found if t.kind == "state"})),
        outcomes=tuple(outcomes),
        segments=tuple(segments),
        releases=tuple(releases),
        window=window,
        unresolved=tuple(_unresolved(text, found, raw, used, key_at)),
        terms=tuple(tokens[i] for i in sorted(used)) + tuple(content),
        notes=tuple(notes),
        unknown=tuple(_unknown(raw, tokens, used)),
        future=future.group(0) if future else None,
        outcome_named=outcome_named,
    )
