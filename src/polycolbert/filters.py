"""The portable filter language: JSON-able dicts, the same for every backend, parsed once into a typed tree.

* ``{"lang": "de"}``: equality; ``{"year": {"$gte": 2020, "$lt": 2024}}``: ranges (``$gt $gte $lt $lte``);
* ``{"lang": {"$in": ["de", "en"]}}``, ``{"lang": {"$ne": "fr"}}``, ``{"lang": {"$nin": [...]}}``;
* ``{"$and": [f1, f2]}``, ``{"$or": [f1, f2]}``, ``{"$not": f}``; several keys in one dict mean AND.

Field names are metadata keys (dots reach into nested objects). Semantics every backend keeps:

* a missing field makes a comparison false (so ``$ne`` and ``$nin`` match documents without the field,
  and ``$not`` stays two-valued); ``null`` equality matches a missing or null field;
* range operands are numbers, or strings that are ISO 8601 datetimes compared as instants (a stored value
  that is not a datetime never matches a datetime range);
* ``$eq``/``$ne``/``$in``/``$nin`` operands are scalars (string, number, boolean, null).

:func:`parse_filter` is the one place that checks a filter: shape, operand types, the size limits below
(so no backend meets an expression its engine cannot evaluate) and field names. Every problem is a
:class:`FilterError` naming the part at fault; the SQL and Qdrant compilers walk the tree it returns.

>>> parse_filter({"lang": {"$in": ["de", "en"]}, "year": {"$gte": 2020}}).items[0]
Compare(field='lang', op='$in', operand=('de', 'en'))
>>> parse_filter({"year": {"$gt": "soon"}})
Traceback (most recent call last):
...
polycolbert.filters.FilterError: filter.year.$gt: a range needs a number or an ISO 8601 datetime ...
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

Filter = dict[str, Any]
COMPARISONS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin")
RANGES = ("$gt", "$gte", "$lt", "$lte")
LOGICAL = ("$and", "$or", "$not")

MAX_DEPTH = 16
"""Nesting of ``$and``/``$or``/``$not`` and field objects; deeper trees overflow engines' parsers."""
MAX_CONDITIONS = 256
"""Comparisons plus logical branches in one filter; SQLite refuses expression trees past ~1,000 nodes."""
MAX_LIST = 1024
"""Values in one ``$in``/``$nin`` list; SQLite binds at most 32,766 parameters per statement."""
MAX_FIELD_CHARS = 256
INT64 = (-(2**63), 2**63 - 1)
"""Integers outside SQLite's and Qdrant's 64-bit range cannot be compared exactly by either."""

Scalar = str | int | float | bool | None


class FilterError(ValueError):
    """A filter the backends cannot evaluate; the message starts with the path of the part at fault."""


@dataclass(frozen=True)
class Compare:
    """``field op operand``; ``operand`` is a scalar, a tuple of scalars (``$in``/``$nin``) or a datetime."""

    field: str
    op: str
    operand: Any


@dataclass(frozen=True)
class And:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Not:
    item: Expr


Expr = Compare | And | Or | Not


def parse_filter(value: Any, path: str = "filter") -> Expr:
    """The checked, typed tree of a filter dict; raises :class:`FilterError` naming the part at fault."""
    budget = [MAX_CONDITIONS]
    return _parse(value, path, 1, budget)


def validate_filter(value: Any, path: str = "filter") -> Filter:
    """Check a filter (as :func:`parse_filter` does) and hand it back unchanged, for callers that store it."""
    parse_filter(value, path)
    return value


def _spend(budget: list[int], path: str) -> None:
    budget[0] -= 1
    if budget[0] < 0:
        raise FilterError(f"{path}: the filter has more than {MAX_CONDITIONS} conditions and branches")


def _parse(value: Any, path: str, depth: int, budget: list[int]) -> Expr:
    if depth > MAX_DEPTH:
        raise FilterError(f"{path}: filters nest at most {MAX_DEPTH} levels deep")
    if not isinstance(value, dict) or not value:
        raise FilterError(f"{path} must be a non-empty JSON object")
    items: list[Expr] = []
    for key, item in value.items():
        if not isinstance(key, str):
            raise FilterError(f"{path}: keys must be strings")
        where = f"{path}.{key}"
        _spend(budget, where)
        if key in ("$and", "$or"):
            if not isinstance(item, list) or not item:
                raise FilterError(f"{where} must be a non-empty list of filters")
            subs = tuple(_parse(sub, f"{where}[{i}]", depth + 1, budget) for i, sub in enumerate(item))
            items.append(And(subs) if key == "$and" else Or(subs))
        elif key == "$not":
            items.append(Not(_parse(item, where, depth + 1, budget)))
        elif key.startswith("$"):
            raise FilterError(f"{where}: unknown operator (use {', '.join(LOGICAL)} or a field name)")
        else:
            _check_field(key, path)
            if isinstance(item, dict):
                if not item:
                    raise FilterError(f"{where} has no condition")
                for op, operand in item.items():
                    if op not in COMPARISONS:
                        raise FilterError(f"{where}.{op}: unknown comparison (use {', '.join(COMPARISONS)})")
                    if op != next(iter(item)):
                        _spend(budget, f"{where}.{op}")
                    items.append(Compare(key, op, _operand(op, operand, f"{where}.{op}")))
            else:
                items.append(Compare(key, "$eq", _scalar(item, where)))
    return items[0] if len(items) == 1 else And(tuple(items))


def _check_field(name: str, path: str) -> None:
    shown = repr(name) if len(name) <= 40 else repr(name[:40] + "...")
    if len(name) > MAX_FIELD_CHARS:
        raise FilterError(f"{path}: field name {shown} is longer than {MAX_FIELD_CHARS} characters")
    if not all(name.split(".")):
        raise FilterError(f"{path}: field name {shown}: use dot-separated names without empty parts")
    if '"' in name or any(ord(c) < 32 or c == "\x7f" for c in name):
        raise FilterError(f"{path}: field name {shown} holds a double quote or a control character")


def _operand(op: str, operand: Any, where: str) -> Any:
    if op in ("$in", "$nin"):
        if not isinstance(operand, list):
            raise FilterError(f"{where} needs a list")
        if len(operand) > MAX_LIST:
            raise FilterError(f"{where}: at most {MAX_LIST} values per list (got {len(operand)})")
        return tuple(_scalar(v, f"{where}[{i}]") for i, v in enumerate(operand))
    if op in RANGES:
        return _range_operand(operand, where)
    return _scalar(operand, where)


def _scalar(value: Any, where: str) -> Scalar:
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, int):
        if not INT64[0] <= value <= INT64[1]:
            raise FilterError(f"{where}: integer {value} is outside the 64-bit range")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise FilterError(f"{where}: {value} is not a finite number")
        return value
    raise FilterError(f"{where}: needs a string, number, boolean or null, got {type(value).__name__}")


def _range_operand(value: Any, where: str) -> int | float | datetime:
    if isinstance(value, int | float) and not isinstance(value, bool):
        scalar = _scalar(value, where)
        assert isinstance(scalar, int | float)
        return scalar
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    raise FilterError(f"{where}: a range needs a number or an ISO 8601 datetime string, got {value!r}")
