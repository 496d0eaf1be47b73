"""Bad invocations of every ``polycolbert`` command: each exits non-zero with one ``error: ...`` line and
never a traceback (through typer's runner, and a few through the real entry point).

The cases are the ones a user hits: missing files, bad option values, a 300-character path, ``index
create`` on an existing file or index, a damaged index for ``index search`` / ``index check``, an
unknown model name, bad filter JSON. None of them needs a model: they fail before one is loaded, or the
index's model is the hash encoder of ``tests/index``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from polycolbert.cli import app
from polycolbert.index import Index

sys.path.insert(0, str(Path(__file__).parents[1] / "index"))
from index_helpers import HashEncoder

runner = CliRunner()
LONG = "x" * 300  # longer than any file name a file system takes (255 bytes)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A good index, a damaged one (its lengths file deleted), a corpus, a queries file and a plain file."""
    root = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    for name in ("good", "damaged"):
        with Index.create(root / name, model=HashEncoder(), dimensions=16) as index:
            index.add(["alpha beta", "gamma delta"], ids=["a", "b"], metadata=[{"n": 1}, {"n": 2}])
    next((root / "damaged" / "segments").glob("*.lengths.npy")).unlink()
    (root / "corpus.jsonl").write_text('{"_id": "c", "text": "epsilon"}\n')
    (root / "bad.jsonl").write_text("{not json\n")
    (root / "plain.txt").write_text("not an index\n")
    np.save(root / "vectors.npy", rng.normal(size=(2, 16)))
    return root


@pytest.fixture(autouse=True)
def hash_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Index, "encoder", lambda self: HashEncoder())


def cases(root: Path) -> dict[str, tuple[list[str], str]]:
    """name -> (arguments, a phrase the error line must hold)."""
    good, damaged, corpus = str(root / "good"), str(root / "damaged"), str(root / "corpus.jsonl")
    missing = str(root / "missing")
    return {
        "encode: bad input type": (["encode", "x", "--input-type", "passage"], "query or document"),
        "encode: unknown model": (["encode", "x", "--model", "no-such-model"], "no model 'no-such-model'"),
        "encode: bad embedding type": (["encode", "x", "--embedding-type", "int4"], "int4"),
        "rerank: no documents": (["rerank", "-q", "q"], "no documents"),
        "rerank: missing file": (["rerank", "-q", "q", "--file", missing + ".jsonl"], "missing"),
        "rerank: long path": (["rerank", "-q", "q", "--file", str(root / LONG)], "too long"),
        "rerank: top-n zero": (["rerank", "-q", "q", "d", "--top-n", "0"], "--top-n"),
        "rerank: unknown model": (["rerank", "-q", "q", "d", "--model", "nope"], "no model 'nope'"),
        "train: missing data": (["train", "--output", missing, "--data", missing], "no such file"),
        "train: bad backbone": (
            ["train", "--output", missing, "--data", corpus, "--train-backbone", "some"],
            "--train-backbone",
        ),
        "train: bad dims": (["train", "--output", missing, "--data", corpus, "--dims", "a,b"], "--dims"),
        "eval: missing dataset": (["eval", "--dataset", missing, "--systems", "bm25"], "missing"),
        "eval: k too small": (["eval", "--dataset", missing, "--k", "5"], "--k"),
        "serve: public without keys": (["serve", "--host", "0.0.0.0"], "without API keys"),
        "serve: missing keys file": (["serve", "--keys-file", missing], "missing"),
        "index create: on a file": (["index", "create", str(root / "plain.txt")], "not a folder"),
        "index create: on an index": (["index", "create", good], "already exists"),
        "index create: bad nbits": (["index", "create", missing, "--model", "x", "--nbits", "3"], "nbits"),
        "index create: unknown model": (["index", "create", missing, "--model", "no-such"], "no model"),
        "index create: long path": (["index", "create", str(root / LONG)], "too long"),
        "index add: missing file": (["index", "add", good, missing + ".jsonl"], "missing"),
        "index add: bad JSON": (["index", "add", good, str(root / "bad.jsonl")], "not valid JSON"),
        "index add: missing index": (["index", "add", missing, corpus], "no index"),
        "index add: long path": (["index", "add", good, str(root / LONG)], "too long"),
        "index add: damaged index": (["index", "add", damaged, corpus], "index damaged"),
        "index search: damaged index": (["index", "search", damaged, "--query", "x"], "index damaged"),
        "index search: bad filter JSON": (
            ["index", "search", good, "--query", "x", "--filter", "{n:"],
            "JSON",
        ),
        "index search: bad filter": (
            ["index", "search", good, "--query", "x", "--filter", '{"n": {"$near": 1}}'],
            "$near",
        ),
        "index search: NaN filter": (
            ["index", "search", good, "--query", "x", "--filter", '{"n": NaN}'],
            "NaN",
        ),
        "index search: k zero": (["index", "search", good, "--query", "x", "--k", "0"], "--k"),
        "index search: two query kinds": (
            ["index", "search", good, "--query", "x", "--queries", corpus],
            "exactly one",
        ),
        "index search: long path": (["index", "search", str(root / LONG), "--query", "x"], "too long"),
        "index info: missing index": (["index", "info", missing], "no index"),
        "index info: damaged index": (["index", "info", damaged], "index damaged"),
        "index delete: missing index": (["index", "delete", missing, "a"], "no index"),
        "index compact: damaged index": (["index", "compact", damaged], "index damaged"),
        "index check: missing index": (["index", "check", missing], "no index"),
        "index check: qdrant": (["index", "check", "qdrant://localhost:1/x"], "embedded"),
    }


def test_every_bad_invocation_is_one_error_line(folder: Path) -> None:
    failures = []
    for name, (args, phrase) in cases(folder).items():
        result = runner.invoke(app, args)
        errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
        clean = result.exception is None or isinstance(result.exception, SystemExit)
        fine = result.exit_code == 2 and clean and len(errors) == 1 and "Traceback" not in result.output
        if not fine or phrase.lower() not in result.output.lower():
            got = f"exit {result.exit_code}, {result.exception!r}, {result.output[-300:]!r}"
            failures.append(f"{name}: {got}")
    assert not failures, "\n".join(failures)


def test_check_lists_the_damage_and_exits_1(folder: Path) -> None:
    result = runner.invoke(app, ["index", "check", str(folder / "damaged")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    report = json.loads(result.stdout)
    assert not report["healthy"] and any("lengths.npy: missing" in p for p in report["problems"])
    healthy = runner.invoke(app, ["index", "check", str(folder / "good")])
    assert healthy.exit_code == 0 and json.loads(healthy.stdout)["healthy"] is True


def test_usage_errors_never_trace(folder: Path) -> None:
    """typer's own refusals (a value that is not a number, an unknown option) exit 2 without a traceback."""
    for args in (["index", "search", str(folder / "good"), "--k", "abc"], ["encode", "--no-such-option"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and "Traceback" not in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        (["index", "search", "{damaged}", "--query", "x"], "index damaged"),
        (["index", "create", "{long}"], "File name too long"),
    ],
)
def test_the_real_entry_point_prints_one_line(folder: Path, args: list[str], phrase: str) -> None:
    args = [a.format(damaged=folder / "damaged", long=folder / LONG) for a in args]
    # the damaged index's model is the hash encoder; the command fails on opening, before any encoding
    done = subprocess.run(
        [sys.executable, "-c", "from polycolbert.cli import app; app()", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and phrase in lines[0], done.stderr
