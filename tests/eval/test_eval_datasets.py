from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from eval_fixtures import write_beir

from polycolbert.corpus import CorpusError
from polycolbert.eval.datasets import guess_language, load_beir


def test_reads_judged_queries_only_and_prepends_titles(toy_dataset: Path) -> None:
    lines = (toy_dataset / "corpus.jsonl").read_text().splitlines()
    lines[0] = json.dumps({"_id": "d1", "title": "Cats", "text": "The cat sat."})
    (toy_dataset / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    ds = load_beir(toy_dataset)
    assert ds.name == "toy-en"
    assert ds.corpus_ids == ["d1", "d2", "d3", "d4"]
    assert ds.corpus_texts[0] == "Cats The cat sat."
    assert ds.query_ids == ["q1", "q2", "q3"]  # q4 has no judgment in test.tsv
    assert ds.qrels == {"q1": {"d1": 1}, "q2": {"d2": 1}, "q3": {"d3": 1}}
    assert ds.doc_languages == ["en"] * 4 and ds.query_languages == ["en"] * 3


def test_reads_gzipped_corpus(toy_dataset: Path) -> None:
    raw = (toy_dataset / "corpus.jsonl").read_bytes()
    (toy_dataset / "corpus.jsonl").unlink()
    with gzip.open(toy_dataset / "corpus.jsonl.gz", "wb") as f:
        f.write(raw)
    assert len(load_beir(toy_dataset).corpus_ids) == 4


def test_language_from_sources_or_folder_name(tmp_path: Path) -> None:
    folder = write_beir(tmp_path / "set-de", {"d": "x"}, {"q": "y"}, [("q", "d", 1)], language=None)
    assert guess_language(folder) == "de"
    (folder / "SOURCES.md").write_text("- Language(s): fr\n")
    assert guess_language(folder) == "fr"


@pytest.mark.parametrize("missing", ["corpus.jsonl", "queries.jsonl", "qrels/test.tsv"])
def test_missing_file_is_named(toy_dataset: Path, missing: str) -> None:
    (toy_dataset / missing).unlink()
    with pytest.raises(CorpusError, match=missing.replace("/", r"[/\\]")):
        load_beir(toy_dataset)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="dataset folder not found"):
        load_beir(tmp_path / "nope")


def test_bad_json_line_names_file_and_line(toy_dataset: Path) -> None:
    path = toy_dataset / "queries.jsonl"
    lines = path.read_text().splitlines()
    lines[2] = '{"_id": "q3", "text": "broken'
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(CorpusError, match=r"queries\.jsonl:3: not valid JSON"):
        load_beir(toy_dataset)


def test_record_without_text_names_line(toy_dataset: Path) -> None:
    path = toy_dataset / "corpus.jsonl"
    lines = path.read_text().splitlines()
    lines[1] = json.dumps({"_id": "d2", "title": "x"})
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(CorpusError, match=r"corpus\.jsonl:2: 'text' must be a string"):
        load_beir(toy_dataset)


def test_duplicate_id(toy_dataset: Path) -> None:
    path = toy_dataset / "corpus.jsonl"
    path.write_text(path.read_text() + json.dumps({"_id": "d1", "text": "again"}) + "\n")
    with pytest.raises(CorpusError, match=r"corpus\.jsonl:5: duplicate _id 'd1' \(first on line 1\)"):
        load_beir(toy_dataset)


def test_qrels_naming_unknown_document(toy_dataset: Path) -> None:
    path = toy_dataset / "qrels" / "test.tsv"
    path.write_text(path.read_text() + "q1\td99\t1\n")
    with pytest.raises(CorpusError, match=r"test\.tsv:5: corpus-id 'd99' is not in corpus\.jsonl"):
        load_beir(toy_dataset)


def test_qrels_naming_unknown_query(toy_dataset: Path) -> None:
    path = toy_dataset / "qrels" / "test.tsv"
    path.write_text(path.read_text() + "q77\td1\t1\n")
    with pytest.raises(CorpusError, match=r"test\.tsv:5: query-id 'q77' is not in queries\.jsonl"):
        load_beir(toy_dataset)


@pytest.mark.parametrize(
    ("line", "message"),
    [("q1\td1", "expected 3 tab-separated columns"), ("q1\td2\thigh", "score 'high' is not an integer")],
)
def test_malformed_qrels_line(toy_dataset: Path, line: str, message: str) -> None:
    path = toy_dataset / "qrels" / "test.tsv"
    path.write_text(path.read_text() + line + "\n")
    with pytest.raises(CorpusError, match=rf"test\.tsv:5: {message}"):
        load_beir(toy_dataset)


def test_real_scifact_if_present() -> None:
    root = Path(__file__).resolve().parents[3] / "shared" / "data" / "scifact"
    if not root.is_dir():
        pytest.skip("shared data not present")
    ds = load_beir(root)
    assert (len(ds.corpus_ids), len(ds.query_ids)) == (5183, 300)  # counts from its SOURCES.md
    assert sum(len(v) for v in ds.qrels.values()) == 339
