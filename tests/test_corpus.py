"""The one reader of JSONL / BEIR files, the one title rule and the TREC writer (polycolbert.corpus)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import ir_measures
import pytest

from polycolbert.corpus import (
    CorpusError,
    find_file,
    iter_documents,
    join_title,
    read_documents,
    read_jsonl,
    read_qrels,
    read_records,
    scan_documents,
    write_trec,
)

ROWS = [
    {"_id": "d1", "title": "Cats", "text": "The cat sat."},
    {"_id": "d2", "title": "", "text": "No title here."},
    {"_id": "d3", "text": "Title absent."},
    {"_id": 4, "title": "  Padded ", "text": " body  "},
]
TEXTS = ["Cats The cat sat.", "No title here.", "Title absent.", "Padded   body"]


def write_lines(path: Path, lines: list[str]) -> Path:
    data = "".join(line + "\n" for line in lines)
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(data)
    else:
        path.write_text(data, encoding="utf-8")
    return path


@pytest.mark.parametrize("name", ["corpus.jsonl", "corpus.jsonl.gz"])
def test_plain_and_gzip_read_the_same(tmp_path: Path, name: str) -> None:
    write_lines(tmp_path / name, [json.dumps(r) for r in ROWS])
    path = find_file(tmp_path, "corpus.jsonl")
    assert path.name == name
    assert read_records(path, with_title=True) == (["d1", "d2", "d3", "4"], TEXTS)
    assert [d.text for d in iter_documents(path)] == TEXTS
    assert read_documents(path)[1] == TEXTS
    assert [n for n, _ in read_jsonl(path)] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("title", "text", "joined"),
    [
        ("T", "body", "T body"),
        ("", "body", "body"),
        (None, "body", "body"),
        (None, " kept as is ", " kept as is "),
        (" T ", " body ", "T   body"),
    ],
)
def test_title_join_is_beirs(title: str | None, text: str, joined: str) -> None:
    assert join_title(title, text) == joined


def test_eval_train_and_index_see_one_string(tmp_path: Path) -> None:
    from polycolbert.eval.datasets import load_beir
    from polycolbert.train.data import read_corpus

    folder = tmp_path / "set"
    (folder / "qrels").mkdir(parents=True)
    write_lines(folder / "corpus.jsonl", [json.dumps(r) for r in ROWS])
    write_lines(folder / "queries.jsonl", [json.dumps({"_id": "q1", "text": "cat?"})])
    write_lines(folder / "qrels" / "test.tsv", ["query-id\tcorpus-id\tscore", "q1\td1\t1"])
    evaluated = load_beir(folder).corpus_texts
    trained = list(read_corpus(folder).values())
    indexed = read_documents(folder / "corpus.jsonl")[1]
    assert evaluated == trained == indexed == TEXTS


def test_titles_the_index_cannot_join_stay_metadata(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "docs.jsonl",
        [
            json.dumps({"id": "a", "title": 7, "text": "x", "lang": "en"}),
            json.dumps({"_id": "b", "title": "T", "text": "y", "metadata": {"k": 1}}),
        ],
    )
    assert [tuple(d) for d in iter_documents(path)] == [
        ("a", "x", {"title": 7, "lang": "en"}),
        ("b", "T y", {"k": 1}),
    ]


def test_bad_json_line_names_file_and_line(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "c.jsonl.gz", [json.dumps(ROWS[0]), "{broken", "[1]"])
    with pytest.raises(CorpusError, match=r"c\.jsonl\.gz:2: not valid JSON"):
        list(read_jsonl(path))
    with pytest.raises(CorpusError, match=r"c\.jsonl\.gz:2: not valid JSON"):
        read_records(path, with_title=True)
    with pytest.raises(CorpusError) as refused:
        scan_documents(path)
    message = str(refused.value)
    assert message.startswith(f"{path}: 2 bad line(s)")
    assert "line 2: not valid JSON" in message and "line 3: expected a JSON object, got list" in message


def test_bad_records_name_file_and_line(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "corpus.jsonl", [json.dumps(ROWS[0]), json.dumps({"_id": "d9", "title": 3})]
    )
    with pytest.raises(CorpusError, match=r"corpus\.jsonl:2: 'text' must be a string"):
        read_records(path, with_title=True)
    path = write_lines(tmp_path / "corpus.jsonl", [json.dumps({"_id": "d1", "title": 3, "text": "x"})])
    with pytest.raises(CorpusError, match=r"corpus\.jsonl:1: 'title' must be a string"):
        read_records(path, with_title=True)
    path = write_lines(tmp_path / "corpus.jsonl", [json.dumps({"_id": "d1", "title": "", "text": " "})])
    assert read_records(path, with_title=True) == (["d1"], [" "])  # content, not a broken file


def test_unreadable_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "corpus.jsonl.gz").write_bytes(b"not gzip at all")
    with pytest.raises(CorpusError, match=r"corpus\.jsonl\.gz: cannot be read"):
        list(read_jsonl(tmp_path / "corpus.jsonl.gz"))
    with pytest.raises(CorpusError, match=r"queries\.jsonl: file not found"):
        find_file(tmp_path, "queries.jsonl")
    with pytest.raises(CorpusError, match="no such file"):
        scan_documents(tmp_path / "none.jsonl")
    with pytest.raises(CorpusError, match="no documents"):
        scan_documents(write_lines(tmp_path / "blank.jsonl", ["", "  "]))


def test_a_refused_file_lists_its_first_twenty_problems(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "d.jsonl", ['{"_id": "x"}'] * 25)
    with pytest.raises(CorpusError, match=r"25 bad line\(s\)") as refused:
        read_documents(path)
    assert "line 20: missing 'text'" in str(refused.value) and "line 21:" not in str(refused.value)
    assert str(refused.value).endswith("... and 5 more")


def test_qrels_with_header_in_file_order(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "test.tsv", ["query-id\tcorpus-id\tscore", "q2\td1\t1", "", "q1\td2\t0", "q2\td3\t2"]
    )
    qrels, lines = read_qrels(path)
    assert qrels == {"q2": {"d1": 1, "d3": 2}, "q1": {"d2": 0}}
    assert list(lines.items()) == [(("q2", "d1"), 2), (("q1", "d2"), 4), (("q2", "d3"), 5)]
    assert read_qrels(write_lines(tmp_path / "bare.tsv", ["q\td\t1"]))[0] == {"q": {"d": 1}}
    with pytest.raises(CorpusError, match=r"dup\.tsv:2: duplicate judgment for \(q, d\)"):
        read_qrels(write_lines(tmp_path / "dup.tsv", ["q\td\t1", "q\td\t1"]))


def test_trec_round_trip_through_ir_measures(tmp_path: Path) -> None:
    run = {"q2": {"a": 0.5, "b": 1.25, "c": 0.5}, "q1": {"z": -2.0}}
    path = tmp_path / "run.trec"
    write_trec(path, run, tag="sys")
    lines = path.read_text().splitlines()
    assert lines == [
        "q2 Q0 b 1 1.250000 sys",
        "q2 Q0 a 2 0.500000 sys",
        "q2 Q0 c 3 0.500000 sys",  # equal scores keep the run's order
        "q1 Q0 z 1 -2.000000 sys",
    ]
    back: dict[str, dict[str, float]] = {}
    for scored in ir_measures.read_trec_run(str(path)):
        back.setdefault(scored.query_id, {})[scored.doc_id] = scored.score
    assert back == run


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_not_json(tmp_path: Path, literal: str) -> None:
    path = tmp_path / "docs.jsonl"
    path.write_text('{"_id": "a", "text": "x", "metadata": {"score": ' + literal + "}}\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"docs.jsonl:1: not valid JSON"):
        list(read_jsonl(path))
