"""Compile a parsed filter (``polycolbert.filters``) to a SQLite expression over ``docs.metadata`` JSON.

The SQL keeps the semantics ``polycolbert.filters`` states for every backend, which are Qdrant's payload
semantics: a comparison on an array field holds when any element satisfies it; types never mix (the
string ``"5"`` is not the number 5, ``true`` is not 1); a missing field makes every comparison false;
``null`` equality matches a missing, null or empty-array field. Values are bound as parameters, never
interpolated; field names are checked by the parser and quoted as JSON path members.

>>> sql, params = compile_filter({"lang": "de"})
>>> params
['de', 'de']
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from polycolbert.filters import And, Compare, Expr, Filter, Not, Or, parse_filter

_DATE_GLOB = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*"
"""Only text that starts as a date is a datetime (``julianday`` would read ``"5"`` as a Julian day number)."""
_OPS = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


def compile_filter(filter: Filter) -> tuple[str, list[Any]]:
    """A SQL boolean expression over ``docs.metadata`` and its parameters (never string-interpolated)."""
    params: list[Any] = []
    return _compile(parse_filter(filter), params), params


def _path(name: str) -> str:
    """The JSON path as a SQL string literal (the parser refuses double quotes and control characters)."""
    path = "$." + ".".join(f'"{part}"' for part in name.split("."))
    return "'" + path.replace("'", "''") + "'"


def _compile(expr: Expr, params: list[Any]) -> str:
    if isinstance(expr, And):
        return "(" + " AND ".join(_compile(sub, params) for sub in expr.items) + ")"
    if isinstance(expr, Or):
        return "(" + " OR ".join(_compile(sub, params) for sub in expr.items) + ")"
    if isinstance(expr, Not):
        return f"(NOT {_compile(expr.item, params)})"
    return _comparison(expr, params)


def _comparison(expr: Compare, params: list[Any]) -> str:
    """Two-valued (never NULL), so ``$not`` and ``$ne`` stay the complements of what they negate."""
    path = _path(expr.field)
    if expr.op in ("$ne", "$nin"):
        positive = Compare(expr.field, "$eq" if expr.op == "$ne" else "$in", expr.operand)
        return f"(NOT {_comparison(positive, params)})"
    if expr.op == "$eq" and expr.operand is None:
        return _is_empty(path)
    values = expr.operand if expr.op == "$in" else (expr.operand,)
    if expr.op == "$in" and None in values:
        rest = Compare(expr.field, "$in", tuple(v for v in values if v is not None))
        return f"({_is_empty(path)} OR {_comparison(rest, params)})"
    if not values:
        return "0"
    # The element test appears twice (array elements, or the value itself), so its parameters do too.
    element: list[Any] = []
    test = _element_test(expr.op, values, element)
    params.extend(element + element)
    kind = f"json_type(metadata, {path})"
    return (
        f"(CASE {kind} WHEN 'array' THEN EXISTS (SELECT 1 FROM json_each(metadata, {path}) AS e "
        f"WHERE {test.format(t='e.type', v='e.value')}) "
        f"ELSE COALESCE({test.format(t=kind, v=f'json_extract(metadata, {path})')}, 0) END)"
    )


def _is_empty(path: str) -> str:
    kind = f"json_type(metadata, {path})"
    empty_array = f"({kind} = 'array' AND json_array_length(metadata, {path}) = 0)"
    return f"({kind} IS NULL OR {kind} = 'null' OR {empty_array})"


def _element_test(op: str, values: tuple[Any, ...], params: list[Any]) -> str:
    """A test on one JSON value given as ``{t}`` (its json type) and ``{v}`` (its SQL value)."""
    if op in _OPS:
        (bound,) = values
        if isinstance(bound, datetime):
            params.append(_utc_text(bound))
            dated = f"{{t}} = 'text' AND {{v}} GLOB '{_DATE_GLOB}'"
            return f"({dated} AND julianday({{v}}) {_OPS[op]} julianday(?))"
        params.append(bound)
        return f"({{t}} IN ('integer', 'real') AND {{v}} {_OPS[op]} ?)"
    tests = []
    for kind, members in _by_kind(values).items():
        if kind == "bool":
            names = ", ".join(sorted({f"'{'true' if v else 'false'}'" for v in members}))
            tests.append(f"{{t}} IN ({names})")
            continue
        params.extend(members)
        marks = ", ".join("?" * len(members))
        types = "'text'" if kind == "text" else "'integer', 'real'"
        tests.append(f"({{t}} IN ({types}) AND {{v}} IN ({marks}))")
    return "(" + " OR ".join(tests) + ")"


def _by_kind(values: tuple[Any, ...]) -> dict[str, list[Any]]:
    kinds: dict[str, list[Any]] = {}
    for value in values:
        kind = "bool" if isinstance(value, bool) else "text" if isinstance(value, str) else "number"
        kinds.setdefault(kind, []).append(value)
    return kinds


def _utc_text(moment: datetime) -> str:
    """UTC ``YYYY-MM-DD HH:MM:SS.SSS``, as ``julianday`` reads it (naive means UTC, as in Qdrant)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
