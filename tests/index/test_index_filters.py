"""Filter language compiled to SQLite: checked against a Python evaluation of the same filter."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pytest

from polycolbert.index.filters import compile_filter

ROWS = [
    {"lang": "de", "year": 2019, "meta": {"tag": "a"}, "ok": True},
    {"lang": "en", "year": 2021, "meta": {"tag": "b"}, "ok": False},
    {"lang": "fr", "year": 2023},
    {"lang": "en", "year": 2024, "meta": {"tag": "a"}},
]


def run(filter: dict[str, Any]) -> list[int]:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE docs (doc INTEGER PRIMARY KEY, metadata TEXT)")
    db.executemany("INSERT INTO docs VALUES (?, ?)", [(i, json.dumps(r)) for i, r in enumerate(ROWS)])
    where, args = compile_filter(filter)
    return sorted(r[0] for r in db.execute(f"SELECT doc FROM docs WHERE {where}", args))


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        ({"lang": "en"}, [1, 3]),
        ({"year": {"$gte": 2021, "$lt": 2024}}, [1, 2]),
        ({"lang": {"$in": ["de", "fr"]}}, [0, 2]),
        ({"lang": {"$nin": ["de", "fr"]}}, [1, 3]),
        ({"lang": {"$ne": "en"}}, [0, 2]),
        ({"meta.tag": "a"}, [0, 3]),
        ({"meta.tag": {"$ne": "a"}}, [1, 2]),
        ({"$or": [{"lang": "de"}, {"year": 2024}]}, [0, 3]),
        ({"$not": {"lang": "en"}}, [0, 2]),
        ({"lang": "en", "meta.tag": "a"}, [3]),
        ({"ok": True}, [0]),
        ({"$and": [{"year": {"$gt": 2019}}, {"$not": {"meta.tag": "b"}}]}, [2, 3]),
    ],
)
def test_filters_select_the_right_rows(filter: dict[str, Any], expected: list[int]) -> None:
    assert run(filter) == expected


def test_injection_and_bad_filters_are_refused() -> None:
    assert run({"lang": "en' OR 1=1 --"}) == []
    with pytest.raises(ValueError, match="unknown comparison"):
        compile_filter({"year": {"$like": 3}})
    with pytest.raises(ValueError):
        compile_filter({'a"b': 1})
