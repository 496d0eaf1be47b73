"""Small BEIR folders written on the fly, so every test sees real files and can break them."""

from __future__ import annotations

import json
from pathlib import Path


def write_beir(
    root: Path,
    corpus: dict[str, str],
    queries: dict[str, str],
    qrels: list[tuple[str, str, int]],
    language: str | None = "en",
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    with (root / "corpus.jsonl").open("w", encoding="utf-8") as f:
        for doc_id, text in corpus.items():
            f.write(json.dumps({"_id": doc_id, "title": "", "text": text}, ensure_ascii=False) + "\n")
    with (root / "queries.jsonl").open("w", encoding="utf-8") as f:
        for qid, text in queries.items():
            f.write(json.dumps({"_id": qid, "text": text}, ensure_ascii=False) + "\n")
    (root / "qrels").mkdir(exist_ok=True)
    lines = ["query-id\tcorpus-id\tscore", *(f"{q}\t{d}\t{s}" for q, d, s in qrels)]
    (root / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    if language:
        (root / "SOURCES.md").write_text(f"# toy\n\n- Language(s): {language}\n", encoding="utf-8")
    return root


TOY_CORPUS = {
    "d1": "The cat sat on the warm mat in the kitchen.",
    "d2": "Stock markets fell sharply after the bank raised interest rates.",
    "d3": "Volcanoes erupt when magma rises through the crust.",
    "d4": "A recipe for bread needs flour, water, salt and yeast.",
}
TOY_QUERIES = {
    "q1": "where did the cat sit",
    "q2": "why did stock markets fall",
    "q3": "how do volcanoes erupt",
    "q4": "an unjudged query",
}
TOY_QRELS = [("q1", "d1", 1), ("q2", "d2", 1), ("q3", "d3", 1)]
