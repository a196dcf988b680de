"""Attribute every number in a sentence to one evidence field, and check the words around it.

The faithfulness checker finds, for each number, the cited fields whose value it
renders (narrator.numbers.matches). This module then keeps only the fields the
surrounding words allow, and reports a failure when none is left:

- NUM_UNIT: the written unit contradicts the field: ``%`` is a share or a
  relative change, ``percentage points`` a difference of shares, ``x`` a ratio,
  a duration unit a duration, and a noun after the number (``531 journeys``,
  ``29.2% of moves``) must be the population the field counts;
- NUM_SIGN: an explicit sign must be the field's sign (counts are never
  negative); SIGN_DROPPED: a negative difference written without a sign must
  carry a direction word;
- NUM_LABEL: a label right before the number (lift, divergence, z =, q-value,
  quality, baseline, n =) or the word "relative" in its clause names the field;
- NUM_TOPIC: conversion words (convert, end in, outcome) pick an outcome rate,
  reach words (reached by, followed by, of moves) any other share;
- NUM_ROLE: in a comparison, the clause's role words (reach / skip, segment /
  elsewhere, before / after, repeat / single, baseline) must name the field's
  side, so swapped numbers fail;
- DIRECTION: a direction word (more, less, higher, lower, …) must agree with
  the sign of the signed field it governs, as shown (a lift shown as 1.00x or a
  difference shown as 0 has no direction), read through the field's subtrahend
  cues ("journeys *without* X convert less" states a positive removal effect);
  with no signed number, "A … more/less than … B" must match A and B's order;
- DENOMINATOR: in "A of B", B must be the whole A is counted in (same fact,
  same unit, a known part/whole pair).

Clauses are split at ``, ; : ( )`` and at against / versus / vs / compared
with / and / but / while / whereas.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from narrator import measures, numbers
from narrator.measures import Measure


@dataclass(frozen=True)
class Field:
    fact_id: str
    key: str
    value: float | int
    measure: Measure


@dataclass(frozen=True)
class Problem:
    rule: str
    span: str
    message: str


CLAUSE_SEP = re.compile(r"(?:,(?=\s)|[;:()]|\s(?:against|versus|vs\.?|compared with|and|but|while|whereas)\s)+")
UP_RE = re.compile(r"\b(?:more|higher|increase[ds]?|rose|risen|rises|greater|larger|gain(?:s|ed)?)\b", re.IGNORECASE)
DOWN_RE = re.compile(r"\b(?:less|lower|fewer|decrease[ds]?|fell|falls|fallen|dropped|drops|smaller)\b", re.IGNORECASE)
NOT_DIRECTION = re.compile(r"\bmore than once\b|\bmore often revisited\b", re.IGNORECASE)
THAN_RE = re.compile(r"\bthan\b", re.IGNORECASE)
NOUNS = {"journey": "journeys", "journeys": "journeys", "move": "moves", "moves": "moves", "transition": "moves",
         "transitions": "moves", "actor": "actors", "actors": "actors", "user": "actors", "users": "actors",
         "people": "actors", "customer": "actors", "customers": "actors", "step": "steps", "steps": "steps",
         "visit": "visits", "visits": "visits"}
COUNTED = "#"  # marks a noun written right after the number ("531 moves"), not after "of"
_NOUN_ALT = "|".join(sorted(NOUNS, key=len, reverse=True))
NOUN_AFTER = re.compile(rf"^\s*(?P<of>of\s+(?:the\s+|all\s+)?)?(?:(?:completed|mature|distinct|extra|expected)\s+)*"
                        rf"({_NOUN_ALT})\b", re.IGNORECASE)
OF_RE = re.compile(r"^\s+of\s+(?:the\s+)?$", re.IGNORECASE)
ROLE_CUES: dict[str, re.Pattern[str]] = {name: re.compile(rx, re.IGNORECASE) for name, rx in {
    "reached": r"\b(?:that|who|which) reach(?:es|ed)?\b|\breaching\b|\b(?:when|if|once) reached\b|"
               r"\bpass(?:es|ing)? through\b|\bwith it\b",
    "skipped": r"\bskip\w*|\bwithout\b|\bnot reach\w*|\bnever reach\w*",
    "baseline": r"\bbaseline\b|\boverall\b|\bother states\b|\belsewhere\b",
    "state": r"\bout of (?:it\b|this state\b|⟦)", "all": r"\ball journeys\b|\bin total\b",
    "model": r"\bmodel\w*|\babsorbing\b",
    "segment": r"\bin (?:the |this )?segment\b|\bthere\b",
    "rest": r"\belsewhere\b|\bthe rest\b|\bother journeys\b|\boutside\b",
    "path": r"\bon (?:this|the) path\b",
    "before": r"\bbefore\b|\bprevious period\b", "after": r"\bafter\b|\bthis period\b",
    "repeat": r"\brepeat\w*|\bcome back\b|\breturn\w*|\brevisit\w*|\bmore than once\b",
    "single": r"\bsingle\b|(?<!than )\bonce\b",
}.items()}
LABELS: tuple[tuple[re.Pattern[str], frozenset[str]], ...] = tuple((re.compile(rx + r"\s*$", re.IGNORECASE), frozenset(keys)) for rx, keys in (
    (r"\blift(?: of| is)?", {"lift"}), (r"\bdivergence(?: of| is)?", {"jsd"}), (r"\bz\s*=", {"z"}),
    (r"\bq-value\s*(?:=|of|is)?", {"q_value"}), (r"\bp-value\s*(?:=|of|is)?", {"p_value", "gap_p_value"}),
    (r"\bquality(?: score)?(?: of| is)?", {"quality"}), (r"\bbaseline(?: of| is)?", {"baseline", "baseline_exit"}),
    (r"\bn\s*=", {"n", "n_before", "n_after", "n_segment", "n_rest"}),
))
LABELS_AFTER: tuple[tuple[re.Pattern[str], frozenset[str]], ...] = (
    (re.compile(r"^\s*baseline\b", re.IGNORECASE), frozenset({"baseline", "baseline_exit"})),)
OUTCOME_CUE = re.compile(r"\bconvert\w*|\bconversion\b|\bends? in\b|\boutcome\b", re.IGNORECASE)
REACH_CUE = re.compile(r"\breached by\b|\bfollowed by\b|\bof (?:the |all )?moves\b|\bshare of journeys\b", re.IGNORECASE)
CONTINUES = re.compile(r"\(|\s(?:against|versus|vs\.?|compared with|and|but|while|whereas)\s", re.IGNORECASE)
RELATIVE_RE = re.compile(r"\brelative\b", re.IGNORECASE)
PART_WHOLE = {("n_reached", "n"), ("n_reached", "n_journeys"), ("n_not_reached", "n"), ("n_repeat", "n_reached"),
              ("count", "from_total"), ("count", "n"), ("exits", "n"), ("exits", "from_total")}
WRITTEN_KINDS: dict[str, tuple[str, ...]] = {
    "pct": ("share", "rel"), "pp": ("pp",), "x": ("ratio",), "dur": ("seconds",), "mag": ("count", "score")}


def _written(num: numbers.TextNumber) -> str:
    unit = num.text.lstrip("<≤ -−+0123456789.,eE").strip()
    if unit in ("%", "percent"):
        return "pct"
    if unit in ("percentage points", "pp"):
        return "pp"
    if unit in ("x", "×"):
        return "x"
    if unit == "times":
        return "times"
    if unit in ("k", "M"):
        return "mag"
    return "dur" if unit else "plain"


def _unit_ok(written: str, noun: str | None, m: Measure) -> bool:
    """The written unit fits the kind; "531 moves" is a count (or a score in moves), "26% of moves" a share."""
    if written == "times":
        kind_ok = m.kind == "ratio" or m.unit == "visits"
    else:
        kind_ok = written == "plain" or m.kind in WRITTEN_KINDS[written]
    if noun is not None and noun.endswith(COUNTED):
        return kind_ok and m.kind in ("count", "score") and m.unit == noun[:-len(COUNTED)]
    return kind_ok and (noun is None or m.unit == noun)


def clauses(text: str) -> list[tuple[int, int]]:
    cuts = [0] + [p for m in CLAUSE_SEP.finditer(text) for p in (m.start(), m.end())] + [len(text)]
    return [(cuts[i], cuts[i + 1]) for i in range(0, len(cuts) - 1, 2)]


def _clause_of(pos: int, spans: Sequence[tuple[int, int]]) -> tuple[int, int]:
    return next((s for s in spans if s[0] <= pos < s[1]), (0, 0))


def _frame(text: str) -> str:
    """The part of a clause that names its subject: everything before `than`."""
    m = THAN_RE.search(text)
    return text[: m.start()] if m else text


def _directions(text: str) -> list[tuple[int, int]]:
    """(position, +1/-1) of every direction word, ignoring fixed phrases that are not comparisons."""
    blank = NOT_DIRECTION.sub(lambda m: " " * len(m.group(0)), text)
    return sorted([(m.start(), 1) for m in UP_RE.finditer(blank)] + [(m.start(), -1) for m in DOWN_RE.finditer(blank)])


def _claimed(word: int, frame: str, m: Measure) -> int:
    inverted = any(cue in frame.lower() for cue in m.invert)
    return -word if inverted else word


def _roles(text: str) -> set[str]:
    return {role for role, rx in ROLE_CUES.items() if rx.search(text)}


@dataclass
class _Num:
    num: numbers.TextNumber
    clause: tuple[int, int]
    fields: list[Field]
    noun: str | None = None


def _noun_after(text: str, num: numbers.TextNumber, nums: Sequence[numbers.TextNumber]) -> str | None:
    m = NOUN_AFTER.match(text[num.end:])
    if m:
        return NOUNS[m.group(2).lower()] + ("" if m.group("of") else COUNTED)
    follower = next((n for n in nums if n.start >= num.end), None)  # "A of B journeys": A counts journeys too
    if follower is not None and OF_RE.match(text[num.end:follower.start]):
        m = NOUN_AFTER.match(text[follower.end:])
        return NOUNS[m.group(2).lower()] + ("" if "%" in num.text else COUNTED) if m else None
    return None


def _keep(items: list[Field], test: Callable[[Field], bool]) -> list[Field]:
    return [f for f in items if test(f)]


def attribute(text: str, found: Sequence[tuple[numbers.TextNumber, list[Field]]],
              show: Callable[[str], str]) -> list[Problem]:
    """Narrow each number's value-matching fields by its words; one Problem per contradiction."""
    problems: list[Problem] = []
    spans = clauses(text)
    nums = [n for n, _ in found]
    items: list[_Num] = []
    for num, cands in found:
        item = _Num(num, _clause_of(num.start, spans), cands, _noun_after(text, num, nums))
        if num.threshold and num.sign:
            problems.append(Problem("NUM_SIGN", show(num.text), "a reporting threshold is never negative"))
        elif not (num.threshold or num.spelled):
            _narrow(text, spans, item, problems, show)
        items.append(item)
    _check_free_directions(text, spans, items, problems, show)
    _check_denominators(text, items, problems, show)
    return problems


def _narrow(text: str, spans: Sequence[tuple[int, int]], item: _Num, problems: list[Problem],
            show: Callable[[str], str]) -> None:
    if not item.fields:  # no value matched: the checker already reported it
        return
    num, clause = item.num, text[item.clause[0]:item.clause[1]]
    written = _written(num)
    word = _nearest_direction(text, item)
    steps: list[tuple[str, Callable[[Field], bool], str]] = [
        ("NUM_UNIT", lambda f: _unit_ok(written, item.noun, f.measure),
         f"written as {num.text!r}{' ' + item.noun.rstrip(COUNTED) if item.noun else ''}, which is not the unit of "
         "the field it matches"),
        ("NUM_SIGN", lambda f: num.sign == 0 or (f.measure.signed and (word != 0 or _sign_of(f) == num.sign)),
         "the written sign is not the sign of the evidence"),
        ("NUM_LABEL", lambda f: _label_ok(text, item, f) and (f.measure.kind == "rel" or not RELATIVE_RE.search(clause)),
         "the label in front of this number (lift, divergence, q-value, relative, …) names another measure"),
        ("NUM_TOPIC", lambda f: _topic_ok(text, spans, item, f),
         "conversion words name an outcome rate, reach words a share of journeys or moves; this number is the other"),
        ("NUM_ROLE", lambda f: f.measure.role is None or not _roles(clause) or f.measure.role in _roles(clause),
         "the words around this number name the other side of the comparison (swapped numbers?)"),
        ("DIRECTION", lambda f: _direction_ok(text, item, f),
         "the direction word contradicts the sign of the evidence"),
        ("SIGN_DROPPED", lambda f: _sign_kept(text, item, f),
         "this difference is negative but is written without a sign or a direction word"),
    ]
    for rule, test, message in steps:
        kept = _keep(item.fields, test)
        if not kept:
            problems.append(Problem(rule, show(num.text), message))
            item.fields = []
            return
        item.fields = kept


def _nearest_direction(text: str, item: _Num) -> int:
    start, end = item.clause
    words = _directions(text[start:end])
    if not words:
        return 0
    pos = item.num.start - start
    return min(words, key=lambda w: abs(w[0] - pos))[1]


def _label_ok(text: str, item: _Num, f: Field) -> bool:
    before = text[max(item.clause[0], item.num.start - 40):item.num.start]
    after = text[item.num.end:item.clause[1]]
    return (all(f.key in keys for rx, keys in LABELS if rx.search(before))
            and all(f.key in keys for rx, keys in LABELS_AFTER if rx.search(after)))


def _topic_ok(text: str, spans: Sequence[tuple[int, int]], item: _Num, f: Field) -> bool:
    """Conversion words pick an outcome rate; reach words ("reached by", "followed by", "of moves") pick any other share."""
    if f.measure.kind not in ("share", "pp", "rel"):
        return True
    start, end = item.clause
    previous = max(((s, e) for s, e in spans if e <= start and (s, e) != item.clause), default=None)
    if previous is not None and CONTINUES.search(text[previous[1]:start]):
        start = previous[0]  # "(…)" and "against …" speak of the clause they follow
    context = text[start:end]
    said_outcome, said_reach = bool(OUTCOME_CUE.search(context)), bool(REACH_CUE.search(context))
    if said_outcome != said_reach:
        return f.measure.outcome == said_outcome
    return True


def _sign_of(f: Field) -> int:
    diff = float(f.value) - (f.measure.neutral or 0.0)
    return 1 if diff > 0 else -1 if diff < 0 else 0


def _direction_ok(text: str, item: _Num, f: Field) -> bool:
    """A direction word (times an explicit sign, "-3 points more" = less) must be the field's shown direction."""
    if not f.measure.signed:
        return True
    word = _nearest_direction(text, item)
    if word == 0:
        return True
    frame = _frame(text[item.clause[0]:item.clause[1]])
    claimed = _claimed(word, frame, f.measure) * (item.num.sign or 1)
    return claimed == measures.shown_direction(f.value, f.measure)


def _sign_kept(text: str, item: _Num, f: Field) -> bool:
    if not f.measure.signed or f.measure.kind == "ratio" or item.num.sign:
        return True
    return measures.shown_direction(f.value, f.measure) >= 0 or _nearest_direction(text, item) != 0


def _check_free_directions(text: str, spans: Sequence[tuple[int, int]], items: Sequence[_Num],
                           problems: list[Problem], show: Callable[[str], str]) -> None:
    """Direction words in clauses without a signed number: governed by the sentence's signed numbers, else by order."""
    signed = [i for i in items if any(f.measure.signed for f in i.fields)]
    for start, end in spans:
        if any(start <= i.num.start < end for i in items if i in signed):
            continue
        frame = _frame(text[start:end])
        for pos, word in _directions(text[start:end]):
            if signed:
                ok = all(any(f.measure.signed and _claimed(word, frame, f.measure)
                             == measures.shown_direction(f.value, f.measure) for f in i.fields) for i in signed)
            else:
                ok = _order_ok(text, start + pos, word, items)
            if not ok:
                problems.append(Problem("DIRECTION", show(text[start + pos:start + pos + 12].strip()),
                                        "the direction word contradicts the evidence's sign or the order of the numbers"))


def _order_ok(text: str, at: int, word: int, items: Sequence[_Num]) -> bool:
    """`A … more/less … than … B`: the direction must be the order of A and B (same written unit only)."""
    than = THAN_RE.search(text, at)
    if not than or text[at:than.start()].count(" ") > 3:
        return True
    before = [i for i in items if i.num.end <= at]
    after = [i for i in items if i.num.start >= than.end()]
    if not before or not after:
        return True
    a, b = before[-1].num, after[0].num
    if a.scale != b.scale or _written(a) != _written(b) or a.threshold or b.threshold:
        return True
    diff = a.value - b.value
    return diff != 0 and (1 if diff > 0 else -1) == word


def _check_denominators(text: str, items: Sequence[_Num], problems: list[Problem], show: Callable[[str], str]) -> None:
    """A share and the counts in brackets after it are one population of one fact; in "A of B", B is A's whole."""
    for share, part, whole in zip(items, items[1:], [*items[2:], None]):  # "29.2% of journeys (453 of 1,553 journeys)"
        if not ("%" in share.num.text and "(" in text[share.num.end:part.num.start]):
            continue
        if share.noun and part.noun and share.noun.rstrip(COUNTED) != part.noun.rstrip(COUNTED):
            problems.append(Problem("NUM_UNIT", show(share.num.text), f"a share of {share.noun.rstrip(COUNTED)} is "
                                    f"followed by counts of {part.noun.rstrip(COUNTED)}; a share and its counts speak of one population"))
        elif whole is None or not OF_RE.match(text[part.num.end:whole.num.start]):
            continue
        elif share.fields and part.fields and whole.fields and not (
                {f.fact_id for f in share.fields} & {f.fact_id for f in part.fields} & {f.fact_id for f in whole.fields}):
            problems.append(Problem("DENOMINATOR", show(f"{share.num.text} ({part.num.text} of {whole.num.text}"),
                                    "the counts in brackets belong to another fact than the share before them"))
    for part, whole in zip(items, items[1:]):
        if "%" in part.num.text or not OF_RE.match(text[part.num.end:whole.num.start]):
            continue
        if not part.fields or not whole.fields:
            continue
        ok = any(a.fact_id == b.fact_id and (a.key, b.key) in PART_WHOLE and a.measure.unit == b.measure.unit
                 and float(a.value) <= float(b.value) for a in part.fields for b in whole.fields)
        if not ok:
            problems.append(Problem("DENOMINATOR", show(f"{part.num.text} of {whole.num.text}"),
                                    "the second number is not the population the first is counted in"))
