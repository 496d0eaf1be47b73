"""Metadata that covers every JSON type the filter semantics name (strings, integers, non-integer floats,
booleans, null, missing fields, arrays, nested objects, datetimes and a string that is not one): the
documents the backend contract's filter table and the filter property test search.
"""

from __future__ import annotations

from typing import Any

METADATA: list[dict[str, Any]] = [
    {"lang": "de", "year": 2020, "score": 0.5, "ok": True, "tags": ["a", "b"], "at": "2024-01-02T03:04:05"},
    {"lang": "en", "year": 2021, "score": 1.5, "ok": False, "tags": [], "nested": {"tag": "x"}},
    {"lang": "fr", "year": 1999, "score": -2.25, "tags": ["b"], "at": "2023-12-31"},
    {"lang": None, "year": 5, "ok": True, "tags": [1, 2], "nested": {"tag": "y"}, "at": "not a date"},
    {"lang": "5", "score": 7.75, "tags": "a", "at": "2024-06-01T00:00:00+02:00"},
    {"year": -3, "ok": False, "nested": {"tag": None}},
    {"lang": "", "year": 2021, "score": 0.25, "tags": ["c", 3]},
    {},
]
