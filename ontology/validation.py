"""JSON Schema validation of every journeygraph artifact, and the one fact check every store runs.

The schemas (draft 2020-12) ship as package data under ``ontology/schemas/``.
Validators are built once and cached. Stores validate every fact they write,
so validation must be cheap for batches: python-jsonschema costs ~80 µs per
small object, which alone would cap writes near 10k facts/s. Each schema is
therefore also compiled into a small predicate (`compile_schema`)
that accepts only what the schema accepts; jsonschema runs only when that
predicate says no (or cannot judge a schema), and then it names the JSON path
of the problem.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from functools import cache, lru_cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource

from ontology import vocabulary
from ontology.errors import EvidenceError, OntologyError
from ontology.model import Fact, canonical_json, content_id
from ontology.privacy import check_evidence

#: Artifact kinds with a top-level schema file `schemas/<kind>.schema.json`.
KINDS: tuple[str, ...] = ("fact", "finding", "insight", "bundle", "feed_item", "feed", "run", "snapshot")


def _schema_files() -> Iterable[tuple[str, Any]]:
    root = resources.files("ontology") / "schemas"
    for kind in KINDS:
        schema = json.loads((root / f"{kind}.schema.json").read_text(encoding="utf-8"))
        if kind == "finding":  # the closed types plus those installed extensions add (vocabulary.extension_finding_types)
            schema["properties"]["type"]["enum"] += list(vocabulary.extension_finding_types())
        yield kind, schema
    for predicate in vocabulary.PREDICATES:
        yield f"evidence/{predicate}", json.loads((root / "evidence" / f"{predicate}.json").read_text(encoding="utf-8"))


@cache
def schemas() -> dict[str, dict[str, Any]]:
    """Every shipped schema by kind ('fact', …, 'evidence/<predicate>')."""
    return dict(_schema_files())


@cache
def _registry() -> Registry:
    return Registry().with_resources(
        (schema["$id"], Resource.from_contents(schema)) for schema in schemas().values()
    )


@cache
def validator(kind: str) -> Draft202012Validator:
    """The cached jsonschema validator of one kind; unknown kinds list the valid ones."""
    if kind not in schemas():
        raise ValueError(f"no schema for {kind!r}; known kinds: {', '.join(sorted(schemas()))}")
    return Draft202012Validator(schemas()[kind], registry=_registry())


@cache
def _fast(kind: str) -> Callable[[Any], bool] | None:
    return compile_schema(schemas()[kind])


def json_path(error: ValidationError, root: str = "") -> str:
    """`evidence.lift`, `sentences[0].text`: the location of a schema error, readable."""
    path = root
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(root)"


def errors(kind: str, obj: Any) -> list[str]:
    """All problems of obj against the schema of `kind`, as 'path: message', best first."""
    fast = _fast(kind)
    if fast is not None and fast(obj):
        return []
    root = "evidence" if kind.startswith("evidence/") else ""
    found = list(validator(kind).iter_errors(obj))
    if not found:
        return []
    first = best_match(found)
    rest = sorted((e for e in found if e is not first), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    return [f"{json_path(e, root)}: {e.message}" for e in [first, *rest]]


def validate(kind: str, obj: Any) -> None:
    """Raise EvidenceError (evidence kinds) or OntologyError naming the JSON path of the first problem."""
    problems = errors(kind, obj)
    if not problems:
        return
    more = f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})" if len(problems) > 1 else ""
    what = f"evidence of {kind.split('/', 1)[1]}" if kind.startswith("evidence/") else kind
    error_cls = EvidenceError if kind.startswith("evidence/") or problems[0].startswith("evidence") else OntologyError
    schema_file = f"ontology/schemas/{kind}.json" if kind.startswith("evidence/") else f"ontology/schemas/{kind}.schema.json"
    raise error_cls(f"invalid {what}: {problems[0]}{more}; fix what produced it (schema: {schema_file})")


def validate_evidence(predicate: str, evidence: Mapping[str, Any]) -> None:
    """Check one evidence payload against its predicate's schema (EvidenceError with the JSON path)."""
    vocabulary.require_predicate(predicate)
    validate(f"evidence/{predicate}", evidence if isinstance(evidence, dict) else dict(evidence))


def validate_fact(
    fact: Fact,
    allowed_properties: Collection[str] = (),
    *,
    forbidden_values: Collection[str] = (),
) -> None:
    """The one check every store's write runs, so every backend refuses the same facts.

    Closed vocabulary and entity classes (OntologyError / UnknownPredicate),
    content-hash id, fact shape, the predicate's evidence schema
    (EvidenceError) and privacy (PrivacyError: user ids, emails, values in
    `forbidden_values`, properties outside `allowed_properties`).
    """
    if not isinstance(fact, Fact):
        raise TypeError(f"expected a Fact, got {type(fact).__name__}")
    vocabulary.require_predicate(fact.predicate)
    vocabulary.require_entity_kinds(fact.subject, fact.predicate, fact.object)
    data = fact.to_dict()
    validate("fact", data)
    validate_evidence(fact.predicate, data["evidence"])
    check_evidence(data["evidence"], allowed_properties, forbidden_values, where=f"fact {fact.fact_id}")
    expected = content_id("fact", {k: v for k, v in data.items() if k != "fact_id"})
    if expected != fact.fact_id:
        raise OntologyError(f"fact id {fact.fact_id} does not match its content (expected {expected}); build facts with Fact(...) and let it compute fact_id")


def validate_facts(
    facts: Iterable[Fact],
    allowed_properties: Collection[str] = (),
    *,
    forbidden_values: Collection[str] = (),
) -> list[str]:
    """validate_fact over a batch; returns each fact's canonical evidence JSON (writers reuse it).

    Hot path for store writes: everything that depends only on a fact's
    entities, window and provenance is checked once per distinct value
    (cached), the evidence schema once per evidence shape (keys and value
    types), leaving per row only range checks, the privacy walk and the
    content-hash check. Any doubt falls back to the full validate_fact, which
    decides and names the problem, so the batch refuses exactly what
    validate_fact refuses.
    """
    allowed = frozenset(allowed_properties)
    forbidden = frozenset(forbidden_values)
    out = []
    for fact in facts:
        evidence_json = _quick(fact, allowed, forbidden)
        if evidence_json is None:
            validate_fact(fact, allowed, forbidden_values=forbidden)
            evidence_json = canonical_json(fact.to_dict()["evidence"])
        out.append(evidence_json)
    return out


def identity_json(fact: Fact, evidence_json: str, fact_id: str | None = None) -> str:
    """canonical_json of the fact's hashed content (plus fact_id when given), built around a serialised evidence.

    Keys in sorted order as canonical_json writes them (tests check the two
    agree); only for facts whose fields are plain str and a finite number, as
    validated facts are.
    """
    head = f'{{"confidence":{fact.confidence!r},"evidence":{evidence_json},'
    if fact_id is not None:
        head += f'"fact_id":{_jstr(fact_id)},'
    return (f'{head}"object":{_jstr(fact.object)},"predicate":{_jstr(fact.predicate)},'
            f'"provenance":{_provenance_json(fact.provenance)},"subject":{_jstr(fact.subject)},'
            f'"valid_from":{_jstr(fact.valid_from)},"valid_to":{_jstr(fact.valid_to)}}}')


#: canonical_json with its encoder built once (json.dumps builds one per call).
_canonical = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
#: What json.dumps(ensure_ascii=False) writes for a str, in C.
_jstr: Callable[[str], str] = json.encoder.encode_basestring


@lru_cache(maxsize=4096)
def _provenance_json(prov: Any) -> str:
    return canonical_json({"snapshot_id": prov.snapshot_id, "detector": prov.detector,
                           "config_hash": prov.config_hash, "engine_version": prov.engine_version})


def _quick(fact: Any, allowed: frozenset[str], forbidden: frozenset[str]) -> str | None:
    """The fact's evidence JSON if it surely passes validate_fact's schema and id checks, else None.

    Privacy is checked for real here (its PrivacyError propagates), after the
    schema checks, in the same order validate_fact runs them.
    """
    try:
        if type(fact) is not Fact or not _static_ok(fact.subject, fact.predicate, fact.object,
                                                    fact.valid_from, fact.valid_to, fact.provenance):
            return None
        confidence, evidence = fact.confidence, fact.evidence
        if (type(confidence) is not float and type(confidence) is not int) or not 0 <= confidence <= 1:
            return None
        if type(evidence) is not dict or not _evidence_ok(fact.predicate, evidence):
            return None
    except (TypeError, ValueError, AttributeError):  # unhashable or odd values: the full path explains
        return None
    check_evidence(evidence, allowed, forbidden, where=f"fact {fact.fact_id}")
    try:
        evidence_json = _canonical(evidence)
        identity = identity_json(fact, evidence_json)
    except (TypeError, ValueError):
        return None
    if hashlib.sha256(f"fact\x00{identity}".encode()).hexdigest()[:24] != fact.fact_id:
        return None
    return evidence_json


def _static_ok(subject: str, predicate: str, obj: str, valid_from: str, valid_to: str, prov: Any) -> bool:
    """Vocabulary, domain/range and the fact schema for everything but confidence, id and evidence values."""
    return (_entity_ok(subject, "subject") and _entity_ok(obj, "object")
            and _kinds_ok(predicate, subject.partition(":")[0], obj.partition(":")[0])
            and _context_ok(valid_from, valid_to, prov))


@lru_cache(maxsize=65536)
def _entity_ok(entity: str, role: str) -> bool:
    pattern = schemas()["fact"]["properties"][role].get("pattern")
    if type(entity) is not str or pattern is None or re.search(pattern, entity) is None:
        return False
    try:
        vocabulary.entity_kind(entity)
    except OntologyError:
        return False
    return True


@lru_cache(maxsize=4096)
def _kinds_ok(predicate: str, subject_prefix: str, object_prefix: str) -> bool:
    """Domain and range depend only on the entity kinds, i.e. the id prefixes."""
    try:
        vocabulary.require_predicate(predicate)
        vocabulary.require_entity_kinds(f"{subject_prefix}:x", predicate, f"{object_prefix}:x")
    except OntologyError:
        return False
    return True


@lru_cache(maxsize=4096)
def _context_ok(valid_from: str, valid_to: str, prov: Any) -> bool:
    """The fact schema on a fact with these window and provenance values and known-good other fields."""
    fast = _fast("fact")
    return fast is not None and fast({
        "fact_id": "0" * 24, "subject": "state:x", "predicate": "transitions_to", "object": "state:x",
        "confidence": 0.0, "valid_from": valid_from, "valid_to": valid_to, "evidence": {"journey": ""},
        "provenance": {"snapshot_id": prov.snapshot_id, "detector": prov.detector,
                       "config_hash": prov.config_hash, "engine_version": prov.engine_version},
    })


def _evidence_ok(predicate: str, evidence: dict[str, Any]) -> bool:
    plan = _evidence_plan(predicate, tuple(evidence), tuple(map(type, evidence.values())))
    if plan is None:  # the schema uses something the planner does not handle: the compiled predicate decides
        fast = _fast(f"evidence/{predicate}")
        return fast is not None and fast(evidence)
    if plan is False:
        return False
    ranges, others = plan
    for key, low, high in ranges:
        if not low <= evidence[key] <= high:
            return False
    for key, check in others:
        if not check(evidence[key]):
            return False
    return True


@lru_cache(maxsize=4096)
def _evidence_plan(predicate: str, keys: tuple[str, ...], types: tuple[type, ...]) -> Any:
    """What is left to check per row for evidence of this shape: (ranges, other checks); False = shape fails."""
    schema = schemas().get(f"evidence/{predicate}")
    if schema is None or set(schema) - _IGNORED - {"type", "required", "properties", "additionalProperties"}:
        return None
    if schema.get("type", "object") != "object" or not set(schema.get("required", ())) <= set(keys):
        return False if schema.get("type", "object") == "object" else None
    props, extra = schema.get("properties", {}), schema.get("additionalProperties", True)
    ranges, others = [], []
    for key, kind in zip(keys, types):
        sub = props.get(key, extra)
        if sub is False:
            return False
        leaf = _numeric_bounds(sub)
        if leaf is not None:
            allowed_types, low, high = leaf
            if kind not in allowed_types:
                return False
            ranges.append((key, low, high))
            continue
        check = compile_schema(sub)
        if check is None:
            return None
        others.append((key, check))
    return tuple(ranges), tuple(others)


def _numeric_bounds(schema: Any) -> tuple[tuple[type, ...], float, float] | None:
    """(types, minimum, maximum) of a `{type: number|integer, minimum, maximum}` leaf, else None."""
    if not isinstance(schema, dict):
        return None
    keys = set(schema) - _IGNORED
    if not keys or not keys <= _LEAF_NUMERIC or not isinstance(schema.get("type"), str):
        return None
    types = _TYPES[schema["type"]]
    if not set(types) <= {int, float}:
        return None
    return types, schema.get("minimum", float("-inf")), schema.get("maximum", float("inf"))


# ── fast acceptance predicates ──────────────────────────────────────────────
# compile_schema turns the subset of JSON Schema our schemas use into nested
# closures. It may reject what jsonschema would accept (e.g. 1.0 as an
# integer); it must never accept what jsonschema rejects. On "no", jsonschema
# decides and explains.

_IGNORED = frozenset({"$schema", "$id", "title", "description", "$comment"})
_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list,), "string": (str,), "integer": (int,),
    "number": (int, float), "boolean": (bool,), "null": (type(None),),
}
_LEAF_NUMERIC = frozenset({"type", "minimum", "maximum"})
_Check = Callable[[Any], bool]


def compile_schema(schema: Any) -> _Check | None:
    """A predicate accepting a subset of what `schema` accepts, or None if a keyword is unsupported."""
    if schema is True or schema == {}:
        return lambda v: True
    if not isinstance(schema, dict):
        return None
    leaf = _compile_numeric_leaf(schema)
    if leaf is not None:
        return leaf
    checks: list[_Check] = []
    for key, arg in schema.items():
        if key in _IGNORED:
            continue
        check = _compile_keyword(key, arg, schema)
        if check is None:
            return None
        checks.append(check)
    return _all_of(tuple(checks))


def _all_of(checks: tuple[_Check, ...]) -> _Check:
    def run(value: Any) -> bool:
        for check in checks:
            if not check(value):
                return False
        return True
    return run


def _compile_numeric_leaf(schema: dict[str, Any]) -> _Check | None:
    """The common case `{type: number|integer, minimum, maximum}` as one comparison."""
    bounds = _numeric_bounds(schema)
    if bounds is None:
        return None
    types, low, high = bounds
    return lambda v: type(v) in types and low <= v <= high


def _compile_keyword(key: str, arg: Any, schema: dict[str, Any]) -> _Check | None:
    if key == "type":
        names = [arg] if isinstance(arg, str) else list(arg)
        types = frozenset(t for name in names for t in _TYPES[name])
        return lambda v: type(v) in types
    if key == "enum":
        allowed = list(arg)
        return lambda v: type(v) in (str, type(None)) and v in allowed
    if key in ("minimum", "maximum"):
        bound = arg
        if key == "minimum":
            return lambda v: type(v) not in (int, float) or v >= bound
        return lambda v: type(v) not in (int, float) or v <= bound
    if key == "minLength":
        return lambda v: not isinstance(v, str) or len(v) >= arg
    if key == "pattern":
        regex = re.compile(arg)
        return lambda v: not isinstance(v, str) or regex.search(v) is not None
    if key == "required":
        required = frozenset(arg)
        return lambda v: not isinstance(v, dict) or required <= v.keys()
    if key in ("minItems", "maxItems"):
        bound = arg
        return (lambda v: not isinstance(v, list) or len(v) >= bound) if key == "minItems" else (
            lambda v: not isinstance(v, list) or len(v) <= bound)
    if key == "items":
        item = compile_schema(arg)
        return None if item is None else (lambda v: not isinstance(v, list) or all(item(x) for x in v))
    if key == "properties":
        return _compile_properties(arg)
    if key == "additionalProperties":
        return _compile_additional(arg, set(schema.get("properties", {})))
    return None


def _compile_properties(props: dict[str, Any]) -> _Check | None:
    compiled = {name: compile_schema(sub) for name, sub in props.items()}
    if any(check is None for check in compiled.values()):
        return None
    pairs = tuple(compiled.items())

    def run(value: Any) -> bool:
        if not isinstance(value, dict):
            return True
        for name, check in pairs:
            if name in value and not check(value[name]):  # type: ignore[misc]
                return False
        return True
    return run


def _compile_additional(arg: Any, known: set[str]) -> _Check | None:
    if arg is True:
        return lambda v: True
    if arg is False:
        return lambda v: not isinstance(v, dict) or all(name in known for name in v)
    extra = compile_schema(arg)
    if extra is None:
        return None
    return lambda v: not isinstance(v, dict) or all(name in known or extra(x) for name, x in v.items())
