"""``polycolbert index`` sub-commands through typer's runner (the model replaced by the hash encoder)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from index_helpers import HashEncoder
from typer.testing import CliRunner

from polycolbert.cli.index import app
from polycolbert.index import Index

runner = CliRunner()


@pytest.fixture
def ix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(Index, "encoder", lambda self: HashEncoder())
    Index.create(tmp_path / "ix", model=HashEncoder(), dimensions=16).close()
    return tmp_path / "ix"


def write(path: Path, lines: list[str]) -> Path:
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as h:
            h.write("\n".join(lines) + "\n")
    else:
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_add_search_trec_delete_info_compact(ix: Path, tmp_path: Path) -> None:
    corpus = write(
        tmp_path / "corpus.jsonl.gz",
        [
            json.dumps({"_id": "a", "title": "Fish", "text": "zebrafish regenerate hearts", "lang": "en"}),
            json.dumps({"_id": "b", "text": "apple pie recipe", "metadata": {"lang": "de"}}),
            json.dumps({"id": 3, "text": "stock market news"}),
        ],
    )
    result = runner.invoke(app, ["add", str(ix), str(corpus)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"added": 3, "documents": 3}
    out = runner.invoke(app, ["search", str(ix), "--query", "zebrafish", "--k", "2"])
    row = json.loads(out.stdout)
    assert row["hits"][0]["id"] == "a" and row["hits"][0]["metadata"] == {"title": "Fish", "lang": "en"}
    assert row["hits"][0]["text"] == "Fish zebrafish regenerate hearts"
    out = runner.invoke(app, ["search", str(ix), "--query", "pie", "--filter", '{"lang": "en"}'])
    assert [h["id"] for h in json.loads(out.stdout)["hits"]] == ["a"]
    queries = write(
        tmp_path / "q.jsonl", [json.dumps({"_id": "q1", "text": "apple"}), '{"_id": "q2", "text": "stock"}']
    )
    run = tmp_path / "run.trec"
    assert (
        runner.invoke(
            app, ["search", str(ix), "--queries", str(queries), "--k", "3", "--output", str(run)]
        ).exit_code
        == 0
    )
    lines = [line.split() for line in run.read_text().splitlines()]
    assert (
        len(lines) == 6 and lines[0][:4] == ["q1", "Q0", "b", "1"] and lines[3][:4] == ["q2", "Q0", "3", "1"]
    )
    assert json.loads(runner.invoke(app, ["delete", str(ix), "b", "nope"]).stdout)["deleted"] == 1
    info = json.loads(runner.invoke(app, ["info", str(ix), "--json"]).stdout)
    assert info["documents"] == 2 and info["dimensions"] == 16
    # a tiny index: brute force, and no compressed segments (raw vectors until a codec is trained)
    assert info["details"]["search"]["path"] == "exhaustive"
    assert info["details"]["layout"] == {"clustered_segments": 0, "document_order_segments": 0}
    assert runner.invoke(app, ["compact", str(ix)]).exit_code == 0


def test_bad_input_exits_with_messages(ix: Path, tmp_path: Path) -> None:
    bad = write(
        tmp_path / "bad.jsonl",
        ['{"_id": "x", "text": "ok"}', "{not json", '{"_id": "y"}', '{"_id": "x", "text": "dup"}'],
    )
    result = runner.invoke(app, ["add", str(ix), str(bad)])
    assert result.exit_code == 2
    assert "line 2: not valid JSON" in result.output and "line 3: missing 'text'" in result.output
    assert "line 4: duplicate id 'x' (first on line 1)" in result.output
    assert Index.open(ix).ids() == []  # the good line was not added either
    missing = runner.invoke(app, ["search", str(tmp_path / "none"), "--query", "x"])
    assert missing.exit_code == 2 and "no index" in missing.output
    assert "positive" in runner.invoke(app, ["search", str(ix), "--query", "x", "--k", "0"]).output
    assert runner.invoke(app, ["search", str(ix)]).exit_code == 2
    good = write(tmp_path / "good.jsonl", ['{"_id": "x", "text": "ok"}'])
    assert runner.invoke(app, ["add", str(ix), str(good)]).exit_code == 0
    again = runner.invoke(app, ["add", str(ix), str(good)])
    assert again.exit_code == 2 and "already in the index" in again.output


@pytest.mark.parametrize(
    "args",
    [
        ["create", "{long}", "--model", "none", "--dimensions", "16"],
        ["info", "{long}"],
        ["search", "{long}", "--query", "x"],
        ["add", "{ix}", "{long}.jsonl"],
        ["create", "{file}", "--model", "none", "--dimensions", "16"],
        ["info", "{file}"],
    ],
)
def test_paths_the_system_refuses_are_messages_not_tracebacks(
    ix: Path, tmp_path: Path, args: list[str]
) -> None:
    """A 300-character file name (longer than the file system allows) and a file where an index folder
    should be: ``error: ...`` and exit code 2, as for every other user error."""
    plain = tmp_path / "plain.txt"
    plain.write_text("not an index\n", encoding="utf-8")
    values = {"long": str(tmp_path / ("x" * 300)), "ix": str(ix), "file": str(plain)}
    result = runner.invoke(app, [a.format(**values) for a in args])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)
    assert plain.read_text(encoding="utf-8") == "not an index\n"


def test_create_on_an_existing_file_says_so(tmp_path: Path) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("x", encoding="utf-8")
    result = runner.invoke(app, ["create", str(plain), "--model", "none", "--dimensions", "16"])
    assert result.exit_code == 2 and f"error: {plain} is a file, not a folder" in result.output


def test_add_keeps_going_past_documents_with_nothing_to_match(tmp_path: Path) -> None:
    """A lone quote (XQuAD-R Hindi's sentence 13_0_11) or an empty text is stored and named, not fatal."""
    location = str(tmp_path / "real")
    assert runner.invoke(app, ["create", location, "--dimensions", "64"]).exit_code == 0
    corpus = write(
        tmp_path / "corpus.jsonl",
        [
            json.dumps({"_id": "13_0_11", "text": '"'}),
            json.dumps({"_id": "empty", "text": ""}),
            json.dumps({"_id": "paris", "text": "The Eiffel Tower stands in Paris."}),
        ],
    )
    result = runner.invoke(app, ["add", location, str(corpus)])
    assert result.exit_code == 0, result.output
    assert "warning: 2 document(s) have nothing to match" in result.output and "'13_0_11'" in result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["documents"] == 3
    found = runner.invoke(app, ["search", location, "--query", "Where is the Eiffel Tower?", "--k", "1"])
    assert found.exit_code == 0 and "paris" in found.output
