"""The portable filter language: JSON-able dicts, the same for every backend.

The embedded index compiles them to SQL over the metadata JSON, the Qdrant backend to
``qdrant_client.models.Filter``; both rely on :func:`validate_filter` having checked the shape first.

* ``{"lang": "de"}``: equality; ``{"year": {"$gte": 2020, "$lt": 2024}}``: ranges (``$gt $gte $lt $lte``);
* ``{"lang": {"$in": ["de", "en"]}}``, ``{"lang": {"$ne": "fr"}}``, ``{"lang": {"$nin": [...]}}``;
* ``{"$and": [f1, f2]}``, ``{"$or": [f1, f2]}``, ``{"$not": f}``; several keys in one dict mean AND.

Field names are metadata keys (dots reach into nested objects).

>>> validate_filter({"lang": {"$in": ["de", "en"]}})
{'lang': {'$in': ['de', 'en']}}
"""

from __future__ import annotations

from typing import Any

Filter = dict[str, Any]
COMPARISONS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin")
LOGICAL = ("$and", "$or", "$not")


def validate_filter(value: Any, path: str = "filter") -> Filter:
    """Check a filter's shape so every backend can rely on it; errors name the offending part."""
    if not isinstance(value, dict) or not value:
        raise ValueError(f"{path} must be a non-empty JSON object")
    for key, item in value.items():
        where = f"{path}.{key}"
        if key in ("$and", "$or"):
            if not isinstance(item, list) or not item:
                raise ValueError(f"{where} must be a non-empty list of filters")
            for i, sub in enumerate(item):
                validate_filter(sub, f"{where}[{i}]")
        elif key == "$not":
            validate_filter(item, where)
        elif key.startswith("$"):
            raise ValueError(f"{where}: unknown operator (use {', '.join(LOGICAL)} or a field name)")
        elif isinstance(item, dict):
            if not item:
                raise ValueError(f"{where} has no condition")
            for op, operand in item.items():
                if op not in COMPARISONS:
                    raise ValueError(f"{where}.{op}: unknown comparison (use {', '.join(COMPARISONS)})")
                if op in ("$in", "$nin") and not isinstance(operand, list):
                    raise ValueError(f"{where}.{op} needs a list")
                if op in ("$gt", "$gte", "$lt", "$lte") and not isinstance(operand, int | float | str):
                    raise ValueError(f"{where}.{op} needs a number or a string")
        elif not isinstance(item, str | int | float | bool) and item is not None:
            raise ValueError(f"{where}: equality needs a string, number, boolean or null")
    return value
