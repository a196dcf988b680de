"""The predicate language for states, outcomes and segments.

Analysts write rules as SQL boolean expressions (``event_name IN ('a', 'b')
AND properties.plan = 'pro'``). A rule is user text that ends up inside our
SQL, so it is never pasted in: it is parsed with sqlglot (DuckDB dialect), the
tree is walked against an allowlist (columns of the ``events`` table,
``properties.<path>`` lookups, literals, comparisons, arithmetic, boolean
logic, IN lists, LIKE/ILIKE, IS NULL, BETWEEN, CASE, CAST and a few scalar
functions), and DuckDB SQL is generated back from the checked tree. Anything
else (subqueries, table functions such as read_csv, file or settings access,
unknown functions) is refused with a ConfigError that names the rule and the
offending part, before any data is read.

Two deliberate rewrites happen while compiling:

* ``properties.a.b`` becomes ``json_extract_string(properties, '$.a.b')``:
  properties are a JSON object, and a string result compares cleanly.
* ``CAST`` becomes ``TRY_CAST``: one malformed property value (``"12k"``)
  should make that event not match, not abort a run over millions of events.
"""

from __future__ import annotations

import re
from functools import lru_cache

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from ontology.errors import ConfigError

# Column names a rule may use -> the column of the `events` table they read.
COLUMNS: dict[str, str] = {
    "event_name": "event_name",
    "event_id": "event_id",
    "actor_id": "actor_id",
    "user_id": "actor_id",
    "platform": "platform",
    "tenant_id": "tenant_id",
    "session_id": "session_id",
    "user_agent": "user_agent",
    "timestamp": "ts",
    "ts": "ts",
    "received_at": "received_at",
    "state_raw": "event_name",
}

# sqlglot node classes a predicate may contain (structure, operators, literals).
_STRUCTURAL: tuple[type[exp.Expression], ...] = (
    exp.Column, exp.Identifier, exp.Literal, exp.Boolean, exp.Null, exp.Paren, exp.Tuple,
    exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.NullSafeEQ, exp.NullSafeNEQ,
    exp.Add, exp.Sub, exp.Mul, exp.Div, exp.IntDiv, exp.Mod, exp.Neg, exp.DPipe,
    exp.And, exp.Or, exp.Not, exp.In, exp.Like, exp.ILike, exp.Is, exp.Between,
    exp.Case, exp.If, exp.Cast, exp.TryCast, exp.DataType, exp.Dot,
)

# Allowed scalar functions: sqlglot class -> the name users write.
_FUNCTIONS: dict[type[exp.Expression], str] = {
    exp.Lower: "lower",
    exp.Upper: "upper",
    exp.Length: "length",
    exp.Coalesce: "coalesce",
    exp.RegexpLike: "regexp_matches",
    exp.Trim: "trim",
    exp.Abs: "abs",
    exp.Round: "round",
    exp.StartsWith: "starts_with",
    exp.Contains: "contains",
}
ALLOWED_FUNCTIONS: tuple[str, ...] = tuple(sorted(_FUNCTIONS.values()))
_ALLOWED_TYPES = {"BOOLEAN", "TINYINT", "SMALLINT", "INT", "BIGINT", "HUGEINT", "DOUBLE", "FLOAT", "DECIMAL",
                  "VARCHAR", "TEXT", "CHAR", "DATE", "TIMESTAMP", "TIMESTAMPTZ", "UBIGINT", "UINT", "USMALLINT", "UTINYINT"}
_PATH_SEGMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _fail(where: str, problem: str) -> ConfigError:
    return ConfigError(f"{where}: {problem}")


def _parse(text: str, where: str) -> exp.Expr:
    if not isinstance(text, str) or not text.strip():
        raise _fail(where, "empty rule; write a SQL boolean expression such as event_name = 'sign_up'")
    try:
        tree = sqlglot.parse_one(text, read="duckdb")
    except ParseError as exc:
        first = exc.errors[0]["description"] if exc.errors else str(exc)
        raise _fail(where, f"not a valid SQL expression ({first}): {text!r}") from exc
    if tree is None:
        raise _fail(where, f"not a valid SQL expression: {text!r}")
    return tree


def _column_parts(node: exp.Expr) -> list[str]:
    """Dotted name of a Column or Dot chain, outermost first (properties.a.b -> [properties, a, b])."""
    if isinstance(node, exp.Dot):
        return _column_parts(node.this) + [node.expression.name]
    if isinstance(node, exp.Column):
        return [part.name for part in node.parts]
    return [node.sql(dialect="duckdb")]


def _column_sql_node(parts: list[str], where: str) -> exp.Expr:
    """The DuckDB expression that reads one column reference."""
    head = parts[0].lower() if parts else ""
    if head == "properties" and len(parts) >= 2:
        bad = [p for p in parts[1:] if not _PATH_SEGMENT.match(p)]
        if bad:
            raise _fail(where, f"property path segment {bad[0]!r} must be letters, digits and underscores")
        path = "$." + ".".join(parts[1:])
        return exp.Anonymous(this="json_extract_string", expressions=[exp.column("properties"), exp.Literal.string(path)])
    if len(parts) == 1 and head in COLUMNS:
        return exp.column(COLUMNS[head])
    allowed = ", ".join(sorted(COLUMNS)) + ", properties.<path>"
    raise _fail(where, f"column {'.'.join(parts)} is not allowed (allowed: {allowed})")


def _check_node(node: exp.Expr, where: str) -> None:
    if isinstance(node, (exp.Subquery, exp.Select, exp.Query)):
        raise _fail(where, "subqueries are not allowed; a rule looks at one event at a time")
    if isinstance(node, exp.In) and (node.args.get("query") or node.args.get("unnest") or node.args.get("field")):
        raise _fail(where, "IN takes a list of literals only, e.g. event_name IN ('a', 'b')")
    if isinstance(node, exp.Placeholder):
        raise _fail(where, "placeholders are not allowed; write the value into the rule")
    if _is_column_ref(node):
        _column_sql_node(_column_parts(node), where)
        return
    if type(node) in _FUNCTIONS or isinstance(node, _STRUCTURAL):
        if isinstance(node, exp.DataType) and node.this.name not in _ALLOWED_TYPES:
            raise _fail(where, f"CAST to {node.sql(dialect='duckdb')} is not allowed (allowed: {', '.join(sorted(_ALLOWED_TYPES))})")
        return
    if isinstance(node, exp.Func):
        name = node.name if isinstance(node, exp.Anonymous) else node.sql_name().lower()
        raise _fail(where, f"function {name.lower()} is not allowed (allowed: {', '.join(ALLOWED_FUNCTIONS)})")
    raise _fail(where, f"{node.key.upper()} ({node.sql(dialect='duckdb')[:60]}) is not allowed in a rule")


def _checked(text: str, where: str) -> exp.Expr:
    """Parse, walk the whole tree against the allowlist, and return the rewritten tree."""
    tree = _parse(text, where)
    for node in tree.walk():
        _check_node(node, where)
    return _rewrite(tree, where)


def _is_column_ref(node: exp.Expr) -> bool:
    """The outermost node of a (possibly dotted) column reference."""
    if isinstance(node, exp.Dot):
        return not isinstance(node.parent, exp.Dot)
    return isinstance(node, exp.Column) and not isinstance(node.parent, exp.Dot)


def _rewrite(tree: exp.Expr, where: str) -> exp.Expr:
    """Two passes: column references to events columns / JSON lookups, then CAST to TRY_CAST."""

    def columns(node: exp.Expr) -> exp.Expr:
        return _column_sql_node(_column_parts(node), where) if _is_column_ref(node) else node

    rewritten = tree.copy().transform(columns)
    casts = [n for n in rewritten.find_all(exp.Cast) if not isinstance(n, exp.TryCast)]
    for cast in reversed(casts):  # innermost first, so outer casts wrap the replaced inner ones
        replacement = exp.TryCast(this=cast.this, to=cast.args["to"])
        if cast is rewritten:
            rewritten = replacement
        else:
            cast.replace(replacement)
    return rewritten


def check_predicate(expr: str, where: str) -> None:
    """Refuse a rule outside the allowlist; `where` is the config key path shown in the error."""
    _compile(expr, where)


def check_column(column: str, where: str) -> None:
    """A segment column must be a plain column or a properties.<path> reference."""
    column_sql(column, where)


@lru_cache(maxsize=1024)
def _compile(expr: str, where: str) -> str:
    return _checked(expr, where).sql(dialect="duckdb")


def to_duckdb_sql(expr: str, where: str = "rule") -> str:
    """DuckDB SQL for a checked predicate; raises ConfigError for anything off the allowlist."""
    return _compile(expr, where)


@lru_cache(maxsize=256)
def column_sql(column: str, where: str = "column") -> str:
    """DuckDB SQL reading one column reference (e.g. `platform`, `properties.plan`)."""
    tree = _parse(column, where)
    if not isinstance(tree, (exp.Column, exp.Dot)):
        raise _fail(where, f"{column!r} is not a column; write e.g. platform or properties.plan")
    return _column_sql_node(_column_parts(tree), where).sql(dialect="duckdb")
