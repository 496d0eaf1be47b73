"""The portable filter (``polycolbert.filters``) as a Qdrant payload filter.

Documents' metadata sits under the payload key ``metadata``, so a filter on ``lang`` becomes a
condition on ``metadata.lang``. The compiler walks the tree ``parse_filter`` returns, as the embedded
index's SQL compiler does, and keeps the semantics that module states (a missing field makes a
comparison false; ``null`` equality matches a missing or null field; string ranges are ISO datetimes).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from polycolbert.filters import And, Compare, Expr, Filter, Not, Or, parse_filter


def _equals(key: str, value: Any) -> Any:
    from qdrant_client import models

    if value is None:
        return models.IsEmptyCondition(is_empty=models.PayloadField(key=key))
    if isinstance(value, float) and not value.is_integer():
        return models.FieldCondition(key=key, range=models.Range(gte=value, lte=value))
    if isinstance(value, float):
        value = int(value)
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))


def _payload_key(field: str) -> str:
    """Qdrant's JSON path to a metadata field; parts that are not letters, digits, ``_``, ``-`` are quoted."""
    parts = (p if all(c.isalnum() or c in "_-" for c in p) else f'"{p}"' for p in field.split("."))
    return "metadata." + ".".join(parts)


def _any_of(key: str, values: tuple[Any, ...]) -> Any:
    """One condition true when the field equals any of ``values`` (false for an empty list)."""
    from qdrant_client import models

    if not values:
        return models.HasIdCondition(has_id=[])
    same_type = all(isinstance(v, str) for v in values) or all(
        isinstance(v, int) and not isinstance(v, bool) for v in values
    )
    if same_type:
        return models.FieldCondition(key=key, match=models.MatchAny(any=list(values)))
    return models.Filter(should=[_equals(key, v) for v in values])


def _condition(expr: Compare) -> Any:
    """The positive condition of one comparison (``$ne``/``$nin`` are negated by the caller)."""
    from qdrant_client import models

    key = _payload_key(expr.field)
    if expr.op in ("$eq", "$ne"):
        return _equals(key, expr.operand)
    if expr.op in ("$in", "$nin"):
        return _any_of(key, expr.operand)
    bound = {"$gt": "gt", "$gte": "gte", "$lt": "lt", "$lte": "lte"}[expr.op]
    if isinstance(expr.operand, datetime):
        return models.FieldCondition(key=key, range=models.DatetimeRange(**{bound: expr.operand}))
    return models.FieldCondition(key=key, range=models.Range(**{bound: expr.operand}))


def compile_filter(expr: Expr) -> Any:
    """A ``qdrant_client.models.Filter`` for a parsed filter tree."""
    from qdrant_client import models

    if isinstance(expr, And):
        return models.Filter(must=[compile_filter(sub) for sub in expr.items])
    if isinstance(expr, Or):
        return models.Filter(should=[compile_filter(sub) for sub in expr.items])
    if isinstance(expr, Not):
        return models.Filter(must_not=[compile_filter(expr.item)])
    if expr.op in ("$ne", "$nin"):
        return models.Filter(must_not=[_condition(expr)])
    return models.Filter(must=[_condition(expr)])


def to_qdrant_filter(filter: Filter) -> Any:
    """The portable filter (``polycolbert.filters``) as a ``qdrant_client.models.Filter`` over the payload.

    >>> f = to_qdrant_filter({"lang": "de", "year": {"$gte": 2020}})
    >>> [c.must[0].key for c in f.must]
    ['metadata.lang', 'metadata.year']
    """
    return compile_filter(parse_filter(filter))
