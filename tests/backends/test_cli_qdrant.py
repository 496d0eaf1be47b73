"""Every ``polycolbert index`` command on a Qdrant URL (qdrant-client's local mode) and its errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "index"))
from index_helpers import HashEncoder

from polycolbert.backends.qdrant import QdrantBackend
from polycolbert.cli.index import app
from polycolbert.scoring import maxsim

runner = CliRunner()
DOCS = [
    {"_id": "a", "title": "Fish", "text": "zebrafish regenerate hearts", "lang": "en"},
    {"_id": "b", "text": "apple pie recipe", "metadata": {"lang": "de"}},
    {"_id": "c", "text": "stock market news today", "metadata": {"lang": "en"}},
]


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(QdrantBackend, "model", property(lambda self: HashEncoder()))
    return f"qdrant+local://{tmp_path}/qdrant/docs"


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_every_command_on_a_qdrant_url(url: str, tmp_path: Path) -> None:
    code, out = invoke(
        "create", url, "--model", "hash-test-encoder", "--dimensions", "16", "--prefetch", "none"
    )
    assert code == 0, out
    assert json.loads(out) == {"location": url, "model": "hash-test-encoder", "dimensions": 16}
    code, out = invoke("add", url, str(jsonl(tmp_path / "c.jsonl", DOCS)))
    assert code == 0, out
    assert json.loads(out.strip().splitlines()[-1]) == {"added": 3, "documents": 3}

    code, out = invoke("search", url, "--query", "zebrafish hearts", "--k", "3")
    hits = json.loads(out)["hits"]
    assert code == 0 and hits[0]["id"] == "a" and len(hits) == 3
    assert hits[0]["text"] == "Fish zebrafish regenerate hearts" and hits[0]["metadata"]["lang"] == "en"
    # the score is exact MaxSim of the hash encoder's vectors (an independent computation)
    q = HashEncoder().encode_queries(["zebrafish hearts"], 16)[0]
    d = HashEncoder().encode_documents(["Fish zebrafish regenerate hearts"], 16)[0]
    assert hits[0]["score"] == pytest.approx(float(maxsim(q, d)), abs=1e-4)

    code, out = invoke("search", url, "--query", "pie", "--filter", '{"lang": "en"}', "--exhaustive")
    assert code == 0 and {h["id"] for h in json.loads(out)["hits"]} == {"a", "c"}
    queries = jsonl(tmp_path / "q.jsonl", [{"_id": "q1", "text": "apple"}, {"_id": "q2", "text": "stock"}])
    run = tmp_path / "run.trec"
    assert invoke("search", url, "--queries", str(queries), "--k", "2", "--output", str(run))[0] == 0
    lines = [line.split() for line in run.read_text().splitlines()]
    assert [(r[0], r[2], r[3]) for r in lines if r[3] == "1"] == [("q1", "b", "1"), ("q2", "c", "1")]

    code, out = invoke("info", url, "--json")
    info = json.loads(out)
    assert code == 0 and info["backend"] == "qdrant" and info["documents"] == 3 and info["tokens"] > 0
    code, out = invoke("delete", url, "b", "nope")
    assert code == 0 and json.loads(out) == {"deleted": 1, "documents": 2}
    code, out = invoke("compact", url)
    assert code == 0 and json.loads(out)["compacted"] is False and json.loads(out)["documents"] == 2


def test_qdrant_url_errors_are_messages_not_tracebacks(url: str, tmp_path: Path) -> None:
    assert invoke("create", url, "--model", "hash-test-encoder", "--dimensions", "16")[0] == 0
    code, out = invoke("create", url, "--model", "hash-test-encoder", "--dimensions", "16")
    assert code != 0 and "already exists" in out and "Traceback" not in out
    corpus = jsonl(tmp_path / "c.jsonl", DOCS)
    assert invoke("add", url, str(corpus))[0] == 0
    code, out = invoke("add", url, str(jsonl(tmp_path / "d.jsonl", [{"_id": "new", "text": "x"}, DOCS[0]])))
    assert code != 0 and "already in the index" in out
    assert json.loads(invoke("info", url, "--json")[1])["documents"] == 3  # nothing of that file was added
    code, out = invoke("search", url, "--query", "x", "--hybrid")
    assert code != 0 and "embedded index" in out
    code, out = invoke("search", url, "--query", "x", "--filter", '{"lang": {"$near": 1}}')
    assert code != 0 and "unknown comparison" in out
    missing = url.rsplit("/", 1)[0] + "/missing"
    code, out = invoke("info", missing)
    assert code != 0 and "no such collection" in out
    code, out = invoke("info", "qdrant://")
    assert code != 0 and "qdrant://<host>" in out
    code, out = invoke(
        "create", str(tmp_path / "folder"), "--model", "hash-test-encoder", "--shard-number", "2"
    )
    assert code != 0 and "shard_number: Qdrant settings" in out and not (tmp_path / "folder").exists()


def test_reopen_in_one_process_shares_the_local_client(url: str) -> None:
    """qdrant-client's local mode locks its folder; two handles in one process must still both work."""
    first = QdrantBackend.create(url, model="hash-test-encoder", dimensions=16)
    second = QdrantBackend.open(url)
    vectors = [np.eye(16, dtype=np.float32)[:3]]
    first.add(texts=["t"], ids=["x"], vectors=vectors)
    first.close()
    assert second.search(query_vectors=[vectors[0][:1]], k=1)[0][0].id == "x"
    second.close()
    third = QdrantBackend.open(url)  # after every handle closed, the folder opens afresh
    assert len(third) == 1
    third.close()
