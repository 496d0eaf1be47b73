"""``polycolbert models``: every known model, and no name ever cut, at 80 columns or wide."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from polycolbert.cli import app
from polycolbert.cli.tables import column_groups, table_width
from polycolbert.encoding.dense import DENSE_MODELS
from polycolbert.models.catalog import CATALOG

NAMES = [e.name for e in CATALOG] + list(DENSE_MODELS)
SOURCES = [e.source for e in CATALOG]


@pytest.mark.parametrize("columns", [60, 80, 120, 250])
def test_no_name_is_cut(columns):
    result = CliRunner().invoke(app, ["models"], env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    assert "…" not in result.stdout
    for name in [*NAMES, *SOURCES]:
        assert name in result.stdout
    if columns >= 80:
        assert all(len(line) <= columns for line in result.stdout.splitlines())
    if columns == 250:  # wide enough: one row per model
        assert sum("multi-vector" in line for line in result.stdout.splitlines()) == len(CATALOG)


def test_json_lists_both_kinds():
    rows = json.loads(CliRunner().invoke(app, ["models", "--json"]).stdout)
    kinds = {row["name"]: row["kind"] for row in rows}
    assert kinds["polycolbert-e5-small"] == "multi-vector"
    assert kinds["multilingual-e5-small"] == "single-vector"
    e5 = next(row for row in rows if row["name"] == "multilingual-e5-small")
    assert e5["dimensions"] == [384] and e5["prefixes"] == {"query": "query: ", "document": "passage: "}


def test_column_groups_fill_in_order():
    widths = [11, 11, 11, 11, 11, 11]
    groups = column_groups(20, widths, 80)
    assert [i for g in groups for i in g] == list(range(6))
    assert all(table_width([20] + [widths[i] for i in g]) <= 80 for g in groups)
    assert column_groups(20, [200], 80) == [[0]]  # one column wider than the terminal still shows


@pytest.mark.parametrize(
    ("flags", "expected"), [("avx2 avx512_bf16", "bfloat16"), ("avx512_vnni", "int8"), ("avx2", "float32")]
)
def test_says_which_precision_auto_picks_here(flags, expected):
    result = CliRunner().invoke(app, ["models"], env={"COLUMNS": "250", "POLYCOLBERT_CPU_FLAGS": flags})
    assert result.exit_code == 0, result.output
    assert f"dtype auto on this machine: encoding precision {expected}" in result.stdout
