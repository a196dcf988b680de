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

`to_spark_sql` compiles the same checked tree for Spark SQL (the `--engine spark` path) so that it
selects the same rows as the DuckDB SQL; the differences it handles are listed at `_spark_tree`
and tested by tests/spark/test_rules_spark.py on an edge-case corpus run in both engines.
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
def column_sql(column: str, where: str = "column", dialect: str = "duckdb") -> str:
    """DuckDB (or Spark) SQL reading one column reference (e.g. `platform`, `properties.plan`)."""
    tree = _parse(column, where)
    if not isinstance(tree, (exp.Column, exp.Dot)):
        raise _fail(where, f"{column!r} is not a column; write e.g. platform or properties.plan")
    node = _column_sql_node(_column_parts(tree), where)
    return node.sql(dialect="duckdb") if dialect == "duckdb" else _spark_tree(node).sql(dialect="spark")


def compile_sql(expr: str, where: str, dialect: str) -> str:
    """A checked predicate in the given dialect: "duckdb" or "spark"."""
    return to_duckdb_sql(expr, where) if dialect == "duckdb" else to_spark_sql(expr, where)


def string_literal(text: str, dialect: str) -> str:
    """A SQL string literal (Spark reads '' inside a literal as two adjacent literals, so it is escaped by sqlglot)."""
    return "'" + text.replace("'", "''") + "'" if dialect == "duckdb" else exp.Literal.string(text).sql(dialect="spark")


@lru_cache(maxsize=1024)
def to_spark_sql(expr: str, where: str = "rule") -> str:
    """Spark SQL for a checked predicate that selects the rows `to_duckdb_sql` selects in DuckDB."""
    return _spark_tree(_checked(expr, where)).sql(dialect="spark")


# Characters whose Unicode upper case is several characters (Java's toUpperCase expands them, "ß" -> "SS")
# and DuckDB's single-character upper case of each: Spark swaps them for private-use placeholders around
# upper() and puts DuckDB's result back (checked against DuckDB by tests/spark/test_rules_spark.py).
UPPER_SPECIAL = (
    "\xdf\u0149\u01f0\u0390\u03b0\u0587\u1e96\u1e97\u1e98\u1e99\u1e9a\u1f50\u1f52\u1f54\u1f56\u1f80\u1f81\u1f82"
    "\u1f83\u1f84\u1f85\u1f86\u1f87\u1f88\u1f89\u1f8a\u1f8b\u1f8c\u1f8d\u1f8e\u1f8f\u1f90\u1f91\u1f92\u1f93\u1f94"
    "\u1f95\u1f96\u1f97\u1f98\u1f99\u1f9a\u1f9b\u1f9c\u1f9d\u1f9e\u1f9f\u1fa0\u1fa1\u1fa2\u1fa3\u1fa4\u1fa5\u1fa6"
    "\u1fa7\u1fa8\u1fa9\u1faa\u1fab\u1fac\u1fad\u1fae\u1faf\u1fb2\u1fb3\u1fb4\u1fb6\u1fb7\u1fbc\u1fc2\u1fc3\u1fc4"
    "\u1fc6\u1fc7\u1fcc\u1fd2\u1fd3\u1fd6\u1fd7\u1fe2\u1fe3\u1fe4\u1fe6\u1fe7\u1ff2\u1ff3\u1ff4\u1ff6\u1ff7\u1ffc"
    "\ufb00\ufb01\ufb02\ufb03\ufb04\ufb05\ufb06\ufb13\ufb14\ufb15\ufb16\ufb17")
UPPER_DUCKDB = (
    "\u1e9e\u0149\u01f0\u0390\u03b0\u0587\u1e96\u1e97\u1e98\u1e99\u1e9a\u1f50\u1f52\u1f54\u1f56\u1f88\u1f89\u1f8a"
    "\u1f8b\u1f8c\u1f8d\u1f8e\u1f8f\u1f88\u1f89\u1f8a\u1f8b\u1f8c\u1f8d\u1f8e\u1f8f\u1f98\u1f99\u1f9a\u1f9b\u1f9c"
    "\u1f9d\u1f9e\u1f9f\u1f98\u1f99\u1f9a\u1f9b\u1f9c\u1f9d\u1f9e\u1f9f\u1fa8\u1fa9\u1faa\u1fab\u1fac\u1fad\u1fae"
    "\u1faf\u1fa8\u1fa9\u1faa\u1fab\u1fac\u1fad\u1fae\u1faf\u1fb2\u1fbc\u1fb4\u1fb6\u1fb7\u1fbc\u1fc2\u1fcc\u1fc4"
    "\u1fc6\u1fc7\u1fcc\u1fd2\u1fd3\u1fd6\u1fd7\u1fe2\u1fe3\u1fe4\u1fe6\u1fe7\u1ff2\u1ffc\u1ff4\u1ff6\u1ff7\u1ffc"
    "\ufb00\ufb01\ufb02\ufb03\ufb04\ufb05\ufb06\ufb13\ufb14\ufb15\ufb16\ufb17")
_PLACEHOLDERS = "".join(chr(0xE000 + i) for i in range(len(UPPER_SPECIAL)))
# Lower case: Java maps "\u0130" to two characters and a word-final sigma to "\u03c2"; DuckDB gives "i" and "\u03c3".
_LOWER_FIRST = (("\u0130", "i"), ("\u03a3", "\u03c3"))
# DuckDB's integer types -> (Spark type, smallest, largest); Spark has no unsigned types.
_INTEGERS = {"TINYINT": ("TINYINT", -2**7, 2**7 - 1), "SMALLINT": ("SMALLINT", -2**15, 2**15 - 1),
             "INT": ("INT", -2**31, 2**31 - 1), "BIGINT": ("BIGINT", -2**63, 2**63 - 1),
             "UTINYINT": ("SMALLINT", 0, 2**8 - 1), "USMALLINT": ("INT", 0, 2**16 - 1),
             "UINT": ("BIGINT", 0, 2**32 - 1), "UBIGINT": ("DECIMAL(20, 0)", 0, 2**64 - 1)}


def _spark_tree(tree: exp.Expr) -> exp.Expr:
    """The checked DuckDB tree rewritten, innermost nodes first, so Spark selects the same rows.

    * ``json_extract_string`` -> ``get_json_object`` (properties stay a JSON string column on Spark);
    * casts to integers round like DuckDB (a string or decimal half away from zero, a double half to
      even) where Spark's try_cast gives NULL for '1.9' and truncates 1.9;
    * ``a / b`` is a double division, and ``x / 0`` is DuckDB's +-inf or NaN, not Spark's ANSI abort;
    * LIKE has no escape character in DuckDB, so a backslash in the pattern is doubled for Spark;
      ILIKE becomes LIKE over both sides lower-cased the DuckDB way;
    * lower/upper use DuckDB's one-to-one case mapping, not Java's special casing.
    """
    tree = tree.copy()
    doubles = {id(n) for n in tree.find_all(exp.TryCast) if _is_double(n.this)}
    for node in reversed(list(tree.walk(bfs=True))):  # children before their parents
        new = _spark_node(node, id(node) in doubles)
        if new is not node:
            if node is tree:
                tree = new
            else:
                node.replace(new)
    return tree


def _spark_node(node: exp.Expr, double_operand: bool) -> exp.Expr:
    if isinstance(node, exp.Anonymous) and node.name.lower() == "json_extract_string":
        return exp.Anonymous(this="get_json_object", expressions=list(node.expressions))
    if isinstance(node, exp.TryCast):
        return _spark_cast(node, double_operand)
    if isinstance(node, exp.Div):
        a, b = (f"CAST({n.sql(dialect='spark')} AS DOUBLE)" for n in (node.this, node.expression))
        return _spark(f"CASE WHEN {b} = 0 THEN {a} * CAST('Infinity' AS DOUBLE) ELSE {a} / {b} END")
    if isinstance(node, exp.ILike):
        return exp.Like(this=_spark_lower(node.this), expression=_spark_lower(_like_pattern(node.expression)))
    if isinstance(node, exp.Like):
        return exp.Like(this=node.this, expression=_like_pattern(node.expression))
    if isinstance(node, exp.Lower):
        return _spark_lower(node.this)
    if isinstance(node, exp.Upper):
        swapped = _call("translate", node.this, exp.Literal.string(UPPER_SPECIAL), exp.Literal.string(_PLACEHOLDERS))
        return _call("translate", exp.Upper(this=swapped), exp.Literal.string(_PLACEHOLDERS), exp.Literal.string(UPPER_DUCKDB))
    return node


def _spark(text: str) -> exp.Expr:
    return sqlglot.parse_one(text, read="spark")


def _call(name: str, *args: exp.Expr) -> exp.Expr:
    return exp.Anonymous(this=name, expressions=list(args))


def _spark_lower(node: exp.Expr) -> exp.Expr:
    for special, simple in _LOWER_FIRST:
        node = _call("replace", node, exp.Literal.string(special), exp.Literal.string(simple))
    return exp.Lower(this=node)


def _like_pattern(node: exp.Expr) -> exp.Expr:
    if isinstance(node, exp.Literal) and node.is_string:
        return exp.Literal.string(node.this.replace("\\", "\\\\"))
    return _call("replace", node, exp.Literal.string("\\"), exp.Literal.string("\\\\"))


def _spark_cast(node: exp.TryCast, double_operand: bool) -> exp.Expr:
    to = node.args["to"]
    name = to.this.name
    operand = node.this.sql(dialect="spark")
    if name in _INTEGERS:
        spark_type, low, high = _INTEGERS[name]
        value = (f"TRY_CAST(BROUND({operand}, 0) AS DECIMAL(38, 0))" if double_operand
                 else f"ROUND(TRY_CAST({operand} AS DECIMAL(38, 9)), 0)")
        return _spark(f"CASE WHEN {value} BETWEEN {low} AND {high} THEN CAST({value} AS {spark_type}) END")
    return exp.TryCast(this=node.this, to=to, safe=True)  # safe: sqlglot's Spark generator writes TRY_CAST, not CAST


def _is_double(node: exp.Expr) -> bool:
    """Whether DuckDB types the expression DOUBLE (a cast of it to an integer rounds half to even then)."""
    if isinstance(node, exp.Div):
        return True
    if isinstance(node, (exp.Cast, exp.TryCast)):
        return node.args["to"].this.name in ("DOUBLE", "FLOAT")
    if isinstance(node, exp.Literal):
        return not node.is_string and "e" in node.this.lower()
    if isinstance(node, (exp.Paren, exp.Neg, exp.Abs, exp.Round)):
        return _is_double(node.this)
    if isinstance(node, (exp.Add, exp.Sub, exp.Mul, exp.Mod)):
        return _is_double(node.this) or _is_double(node.expression)
    return False
