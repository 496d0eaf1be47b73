"""``polycolbert rerank`` with the packaged default model: a multilingual top-1, the JSON shape, files."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from polycolbert.cli import app

QUERY = "Wann wurde der Eiffelturm fertiggestellt?"  # German; the answer is in English
ANSWER = "The Eiffel Tower was finished in 1889 for the World's Fair in Paris."
DISTRACTORS = [
    "Spirited Away won the Academy Award for Best Animated Feature in 2003.",
    "Berlin is the capital and largest city of Germany.",
    "Hayao Miyazaki co-founded Studio Ghibli in 1985.",
]


def run(*arguments: str) -> str:
    result = CliRunner().invoke(app, ["rerank", *arguments])
    assert result.exit_code == 0, result.output
    return result.output


def test_json_ranks_the_english_answer_to_a_german_query_first():
    body = json.loads(run("--query", QUERY, *DISTRACTORS[:2], ANSWER, DISTRACTORS[2], "--json"))
    assert body["model"] == "polycolbert-e5-small"
    results = body["results"]
    assert [set(r) for r in results] == [{"index", "relevance_score", "document"}] * 4
    assert results[0]["index"] == 2 and results[0]["document"] == {"text": ANSWER}
    scores = [r["relevance_score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    assert sorted(r["index"] for r in results) == [0, 1, 2, 3]


def test_top_n_dimensions_and_explain():
    body = json.loads(
        run("-q", QUERY, ANSWER, *DISTRACTORS, "--top-n", "2", "--dimensions", "64", "--explain", "--json")
    )
    assert body["results"][0]["index"] == 0 and len(body["results"]) == 2
    matches = body["results"][0]["matches"]
    assert set(matches[0]) == {
        "query_index",
        "query_token",
        "document_start",
        "document_end",
        "document_token",
        "score",
    }
    assert sum(m["score"] for m in matches) == pytest.approx(body["results"][0]["relevance_score"], abs=1e-4)


def test_documents_from_text_and_jsonl_files(tmp_path):
    text_file = tmp_path / "docs.txt"
    text_file.write_text("\n".join([*DISTRACTORS, "", ANSWER]) + "\n", encoding="utf-8")
    body = json.loads(run("-q", QUERY, "--file", str(text_file), "--json", "--top-n", "1"))
    assert body["results"][0]["index"] == 3 and body["results"][0]["document"] == {"text": ANSWER}
    jsonl = tmp_path / "docs.jsonl"
    rows = [{"id": f"d{i}", "text": t} for i, t in enumerate([ANSWER, *DISTRACTORS])]
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    body = json.loads(run("-q", QUERY, "an argument comes first", "--file", str(jsonl), "--json"))
    top = body["results"][0]
    assert top["index"] == 1 and top["document"] == {"id": "d0", "text": ANSWER}


def test_table_shows_the_ranking():
    output = run("-q", QUERY, DISTRACTORS[0], ANSWER)
    assert output.index("1889") < output.index("Spirited")  # the answer's row comes first


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["-q", "x"], "no documents given"),
        (["-q", "x", "a", "--top-n", "0"], "--top-n must be a positive integer"),
        (["-q", "x", "a", "--dimensions", "100"], "dimensions must be one of"),
        (["-q", "x", "--file", "/no/such/docs.txt"], "no such file"),
    ],
)
def test_errors_are_messages(arguments, message):
    result = CliRunner().invoke(app, ["rerank", *arguments])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
