"""``index.store``: the one module that speaks SQL, through named functions."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from polycolbert.index import store
from polycolbert.index.store import DocumentRow

INDEX = Path(store.__file__).parent


def fresh(tmp_path: Path):
    db = store.connect(tmp_path)
    store.create(db, version=0, codec=None)
    return db


def test_no_other_index_module_runs_sql() -> None:
    """Every statement lives in store.py; filters.py only compiles a WHERE fragment for it."""
    for module in INDEX.glob("*.py"):
        if module.name != "store.py":
            text = module.read_text()
            assert not re.search(r"\.execute(many|script)?\(", text), module.name


def test_documents_round_trip_in_batches_past_the_parameter_limit(tmp_path: Path) -> None:
    db = fresh(tmp_path)
    n = store.IN_BATCH * 2 + 7
    rows = [DocumentRow(d, f"id{d}", f"text {d}", {"n": d}, "seg-a", 3) for d in range(n)]
    store.insert_documents(db, rows)
    ids = [r.id for r in rows]
    assert sorted(store.existing_ids(db, [*ids, "missing"])) == sorted(ids)
    assert store.count_documents(db) == n and store.document_totals(db) == (n, 3 * n)
    assert store.documents(db, [5, n + 1]) == {5: ("id5", "text 5", {"n": 5})}
    assert store.doc_number(db, "id9") == 9 and store.doc_number(db, "nope") is None
    assert store.delete_documents(db, [*ids[1:], "missing"]) == n - 1
    assert store.ids(db) == ["id0"] and store.count_full_text(db) == 1
    assert store.live_tokens(db) == 3


def test_keyword_ranking_quotes_words_and_filters_compile(tmp_path: Path) -> None:
    db = fresh(tmp_path)
    texts = ['say "hello" world', "world only", "nothing"]
    store.insert_documents(db, [DocumentRow(d, f"d{d}", t, {"k": d}, "s", 1) for d, t in enumerate(texts)])
    assert store.keyword_ranked(db, ['"hello"'], 10) == [0]  # a quote in a word is data, not syntax
    assert set(store.keyword_ranked(db, ["world", "OR", "nothing"], 10)) == {0, 1, 2}
    assert store.matching(db, {"k": {"$gte": 1}}).tolist() == [1, 2]


def test_segments_and_meta(tmp_path: Path) -> None:
    db = fresh(tmp_path)
    store.insert_segment(db, "seg-b", store.RAW, 2, 10)
    store.insert_segment(db, "seg-a", "codec-x", 1, 5)
    assert store.segments(db) == [("seg-b", store.RAW), ("seg-a", "codec-x")]
    assert store.segment_names(db) == {"seg-a", "seg-b"} and store.stored_tokens(db) == 15
    store.set_meta(db, version=3)
    assert store.get_meta_value(db, "version") == 3 and store.get_meta_value(db, "absent") is None
    store.delete_segments(db)
    assert store.segments(db) == []


def test_token_positions_follow_the_packed_layout() -> None:
    lengths = np.array([2, 3, 1])
    offsets = np.array([0, 2, 5])
    assert store.token_positions(offsets, lengths, np.array([2, 0])).tolist() == [5, 0, 1]
    assert store.token_positions(offsets, lengths, np.array([], np.int64)).tolist() == []


def test_staging_folders_of_dead_writers_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    import subprocess
    import sys

    live = store.Staging(tmp_path)
    live.add_rows([("a", "text", {"k": 1}, "seg-x", 3)])
    assert live.staged(["a", "b"]) == ["a"]
    killed = subprocess.run(  # a writer killed mid-way: its folder and lock file stay, unlocked
        [
            sys.executable,
            "-c",
            "import os, sys; from pathlib import Path; from polycolbert.index import store; "
            "s = store.Staging(Path(sys.argv[1])); print(s.name, flush=True); os._exit(9)",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    dead = tmp_path / store.STAGING / killed.stdout.strip()
    assert killed.returncode == 9 and dead.is_dir()
    store.remove_dead_staging(tmp_path)
    assert not dead.exists() and not dead.with_name(dead.name + ".lock").exists()
    assert live.folder.is_dir() and live.staged(["a"]) == ["a"]  # still claimed: kept
    live.close()
    assert not list((tmp_path / store.STAGING).iterdir())
