"""Kinds: everything the narrator, the ask planner, the audit and the feed need to know about a detector's output.

Decision. A detector is one unit in two layers. The detector class (detectors/<name>.py) finds and
declares its `types`; its kind (narrator/kinds/<name>.py, one `KIND` per detector module) says,
in one declaration, how those findings are told and checked:

- per finding type (`FindingKind`): the predicates its facts use, the narrative plan
  (narrator.template), the typed headline patterns (narrator.measures) and the feed's wording of
  its effect (engine.app.render);
- per predicate the detector introduces (`FactKind`): the one-line summary for retrieval
  (narrator.summaries), the recomputation formula (narrator.recompute), the words a question uses
  for it (BM25), how a "Related:" sentence names it and which number it headlines;
- the ask planner's question patterns (`Intent`) that lead to those predicates.

The kind cannot sit in the detector's own module: detectors may not import the narrator
(tests/test_layers.py), and plans and formulas are narrator code. Everything else reads the
registry below; the old parallel tables (PLANS, HEADLINES, summary renderers, RECOMPUTERS, INTENTS,
the feed's MEASURES) are views of it. Facts stated by the journey graph itself, with no detector
(transitions, reach lifts, outcome rates), are the kind `journey_graph` (narrator/kinds/base.py).

Registration has the shape of every other plugin (ontology.plugins): built-ins by "module:attribute",
imported on first use, then an installed package's entry points in the `journeygraph.kinds` group,
one per finding type it adds and named after it (that name is how the ontology, which imports
nothing above it, learns the type: ontology.vocabulary.extension_finding_types). A third party's
detector and its kind can then live in one file; predicates stay the closed vocabulary's.
tests/test_detector_units.py fails, naming the missing part, when a registered detector emits a
type without a complete kind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache, cached_property
from typing import Any

from ontology.plugins import Plugin, PluginRegistry
from ontology.vocabulary import PREDICATES

BUILTINS = (  # the order is the ask planner's: the first intents are tried first
    "activation_driver", "segment_divergence", "regression", "dropoff", "repeated_visit", "path_quality", "base",
)

Summary = Callable[[Any], str]  # Fact -> one line
Recompute = Callable[[Any, Any, Any], dict[str, Any]]  # (Fact, Recount, Ctx) -> evidence recomputed
PlanFn = Callable[[Any], str]  # narrator.template.Plan -> the recommendation (sentences said on the plan)
FeedFn = Callable[[Mapping[str, Any], Mapping[str, Any]], str]  # (evidence, finding) -> the feed's effect wording


@dataclass(frozen=True)
class FactKind:
    """How facts of one predicate are summarised, found, recomputed and named in a related sentence."""

    predicate: str
    summary: Summary
    recompute: Recompute
    words: str  # what a question says for it, indexed beside the summary (never in the summary itself)
    phrase: str | None = None  # the "Related:" verb phrase (None: the template words it itself)
    related: tuple[str, ...] = ()  # evidence keys a "Related:" sentence headlines, the first present wins


@dataclass(frozen=True)
class FindingKind:
    """How findings of one type are narrated and headlined."""

    type: str
    predicates: tuple[str, ...]  # the predicates of its primary and supporting facts
    plan: PlanFn
    headlines: tuple[str, ...]  # measure patterns, most specific first (narrator.measures.headline)
    feed: FeedFn
    variants: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # evidence `kind` -> its own headlines


@dataclass(frozen=True)
class Intent:
    """A question pattern of the ask planner and the predicates it asks for, in order."""

    name: str
    pattern: str  # a regex over the lower-cased question
    predicates: tuple[str, ...]


@dataclass(frozen=True)
class Kind:
    """One detector's declaration (or the journey graph's own facts, `journey_graph`)."""

    name: str
    findings: tuple[FindingKind, ...] = ()
    facts: tuple[FactKind, ...] = ()
    intents: tuple[Intent, ...] = ()


class Registry:
    """Every kind, and the tables read from them (the views that replaced the parallel tables)."""

    def __init__(self, kinds: Iterable[Kind]) -> None:
        self.kinds = tuple(kinds)

    @cached_property
    def findings(self) -> dict[str, FindingKind]:
        return {f.type: f for k in self.kinds for f in k.findings}

    @cached_property
    def facts(self) -> dict[str, FactKind]:
        return {f.predicate: f for k in self.kinds for f in k.facts}

    @cached_property
    def intents(self) -> tuple[Intent, ...]:
        return tuple(i for k in self.kinds for i in k.intents)

    @cached_property
    def phrases(self) -> dict[str, str]:
        """predicate -> how a "Related:" sentence names it (the checker reads these back)."""
        return {p: f.phrase for p, f in self.facts.items() if f.phrase is not None}

    def finding(self, ftype: str) -> FindingKind:
        found = self.findings.get(ftype)
        if found is None:
            raise KeyError(f"finding type {ftype!r} has no kind; known: {', '.join(sorted(self.findings))} "
                           "(declare a FindingKind in its detector's narrator.kinds module)")
        return found

    def fact(self, predicate: str) -> FactKind | None:
        return self.facts.get(predicate)


def plugins() -> dict[str, Plugin]:
    builtins = [Plugin(name, f"narrator.kinds.{name}:KIND") for name in BUILTINS]
    return PluginRegistry("kind", builtins).plugins()


@cache
def registry() -> Registry:
    """Built-in kinds in planner order, then installed ones by entry-point name; refuses a clash."""
    found = plugins()
    loaded: dict[str, Kind] = {}
    for name in [*BUILTINS, *sorted(set(found) - set(BUILTINS))]:
        kind = found[name].load()
        if not isinstance(kind, Kind):
            raise TypeError(f"kind {name!r} ({found[name].target}) is a {type(kind).__name__}, not a narrator.kinds.Kind")
        unnamed = [f.type for f in kind.findings if name not in BUILTINS and f.type not in found]
        if unnamed:
            raise ValueError(f"kind {kind.name!r} adds finding types {unnamed} without an entry point of that name in "
                             "`journeygraph.kinds`; name one per type so the ontology knows it (ontology.vocabulary)")
        loaded.setdefault(kind.name, kind)  # one kind may be installed under each of its types' names
    reg = Registry(loaded.values())
    clashes = problems_of_registry(reg.kinds)
    if clashes:
        raise ValueError("; ".join(clashes))
    return reg


def problems_of_registry(kinds: Iterable[Kind]) -> list[str]:
    """Two kinds claiming one finding type or one predicate, or a predicate outside the vocabulary."""
    out: list[str] = []
    types: dict[str, str] = {}
    preds: dict[str, str] = {}
    for kind in kinds:
        for f in kind.findings:
            if f.type in types:
                out.append(f"finding type {f.type!r} is declared by kinds {types[f.type]!r} and {kind.name!r}")
            types.setdefault(f.type, kind.name)
        for fk in kind.facts:
            if fk.predicate not in PREDICATES:
                out.append(f"kind {kind.name!r} declares predicate {fk.predicate!r}, which is not in the closed vocabulary")
            if fk.predicate in preds:
                out.append(f"predicate {fk.predicate!r} is declared by kinds {preds[fk.predicate]!r} and {kind.name!r}")
            preds.setdefault(fk.predicate, kind.name)
    return out


def missing_parts(ftype: str, reg: Registry | None = None) -> list[str]:
    """What a finding type still lacks, each part named as its author would add it; [] when complete."""
    reg = reg or registry()
    kind = reg.findings.get(ftype)
    if kind is None:
        return [f"a FindingKind for {ftype!r} (its narrative plan, headline patterns, feed wording and predicates)"]
    out = [f"FindingKind({ftype!r}).{part}" for part, ok in (
        ("plan", callable(kind.plan)), ("headlines", bool(kind.headlines)), ("feed", callable(kind.feed)),
        ("predicates", bool(kind.predicates))) if not ok]
    for predicate in kind.predicates:
        out += missing_fact_parts(predicate, reg)
    return out


def missing_fact_parts(predicate: str, reg: Registry | None = None) -> list[str]:
    """What a predicate lacks: its FactKind (summary, recompute formula, search words) and an ask intent."""
    reg = reg or registry()
    fact = reg.fact(predicate)
    if fact is None:
        return [f"a FactKind for predicate {predicate!r} (its summary, recompute formula and search words)"]
    out = [f"FactKind({predicate!r}).{part}" for part, ok in (
        ("summary", callable(fact.summary)), ("recompute", callable(fact.recompute)),
        ("words", bool(fact.words.strip()))) if not ok]
    if not any(predicate in i.predicates for i in reg.intents):
        out.append(f"an Intent asking for predicate {predicate!r} (the ask planner's vocabulary)")
    return out
