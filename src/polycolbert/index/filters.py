"""Compile the portable filter language (``polycolbert.filters``) to SQLite over metadata JSON."""

from __future__ import annotations

from typing import Any

from polycolbert.filters import Filter, validate_filter

_OPS = {"$eq": "=", "$ne": "!=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


def compile_filter(filter: Filter) -> tuple[str, list[Any]]:
    """A SQL boolean expression over ``docs.metadata`` and its parameters (never string-interpolated)."""
    validate_filter(filter)
    params: list[Any] = []
    return _compile(filter, params), params


def _field(name: str) -> str:
    """The JSON path as an escaped SQL literal (field names are data, so quotes are rejected)."""
    if '"' in name or not all(name.split(".")):
        raise ValueError(f"filter field {name!r}: use dot-separated names without double quotes")
    path = "$." + ".".join(f'"{part}"' for part in name.split("."))
    return "json_extract(metadata, '" + path.replace("'", "''") + "')"


def _compile(filter: Filter, params: list[Any]) -> str:
    parts = []
    for key, item in filter.items():
        if key in ("$and", "$or"):
            joiner = " AND " if key == "$and" else " OR "
            parts.append("(" + joiner.join(_compile(sub, params) for sub in item) + ")")
        elif key == "$not":
            parts.append(f"NOT ({_compile(item, params)})")
        elif isinstance(item, dict):
            for op, operand in item.items():
                parts.append(_comparison(key, op, operand, params))
        else:
            parts.append(_comparison(key, "$eq", item, params))
    return "(" + " AND ".join(parts) + ")"


def _comparison(name: str, op: str, operand: Any, params: list[Any]) -> str:
    """A comparison that is never NULL (a missing field is simply false), so ``$not`` stays two-valued."""
    return f"COALESCE({_raw_comparison(name, op, operand, params)}, 0)"


def _raw_comparison(name: str, op: str, operand: Any, params: list[Any]) -> str:
    field = _field(name)
    if op in ("$in", "$nin"):
        if not operand:
            return "0" if op == "$in" else "1"
        params.extend(operand)
        inside = f"{field} IN ({', '.join('?' * len(operand))})"
        return inside if op == "$in" else f"({field} IS NULL OR NOT {inside})"
    if operand is None:
        return f"{field} IS NULL" if op == "$eq" else f"{field} IS NOT NULL"
    params.append(operand)
    if op == "$ne":
        return f"({field} IS NULL OR {field} != ?)"
    return f"{field} {_OPS[op]} ?"
