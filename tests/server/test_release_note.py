"""The release note's curl commands, run by the real curl against a live server, changed only in host.

Three things in the note are not valid as printed, and we say what we do about each:
- its JSON bodies carry ``# ...`` remarks after values; the server accepts ``#`` comments outside strings
  (``server/body.py``), so the bodies go through byte for byte;
- its line continuations are printed as a doubled backslash (a rendering artefact of the web page);
- the rerank body sits in single quotes yet contains apostrophes ("Berlin's"), so no shell can run that
  command as pasted.
So the test does not hand the text to a shell: it reads the URL, each ``-H`` header and the ``-d`` body
(everything between ``-d '`` and the last ``'``) and gives them to curl as its arguments, exactly as printed.
The note's placeholder key ``<YOUR JINA API KEY>`` is the server's configured key, so even the
``Authorization`` header is sent unchanged.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from live import live_server

from polycolbert.scoring import maxsim
from polycolbert.server.app import create_app

COMMANDS = [
    block.strip()
    for block in (Path(__file__).parent / "data" / "release_note_curl.txt")
    .read_text(encoding="utf-8")
    .split("\n----\n")
]
COMMANDS[0] = "\n".join(line for line in COMMANDS[0].splitlines() if not line.startswith("# "))
KEY = "<YOUR JINA API KEY>"


def body_of(command: str) -> str:
    return command[command.index("-d '") + 4 : command.rindex("'")]


def curl_arguments(command: str, base_url: str) -> list[str]:
    head = command[: command.index("-d '")]
    url = head.split()[1].replace("https://api.jina.ai", base_url)
    headers = [line.split('"')[1] for line in head.splitlines() if line.startswith("-H ")]
    arguments = ["curl", "--silent", "--show-error", url]
    for header in headers:
        arguments += ["-H", header]
    return [*arguments, "-d", body_of(command)]


@pytest.fixture(scope="module")
def outputs(registry):
    if shutil.which("curl") is None:
        pytest.fail("curl is not installed; the release-note test runs the note's commands with it")
    results = []
    with live_server(create_app(registry, keys=[KEY])) as url:
        for command in COMMANDS:
            done = subprocess.run(
                curl_arguments(command, url),
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0, done.stderr
            results.append(json.loads(done.stdout))
    return results


def test_note_has_three_commands_with_comment_bodies():
    assert len(COMMANDS) == 3
    assert [curl_arguments(c, "http://h")[3] for c in COMMANDS] == [
        "http://h/v1/multi-vector",
        "http://h/v1/multi-vector",
        "http://h/v1/rerank",
    ]
    assert curl_arguments(COMMANDS[2], "http://h")[4:8] == [
        "-H",
        "Content-Type: application/json",
        "-H",
        f"Authorization: Bearer {KEY}",
    ]
    assert "# " in body_of(COMMANDS[0]) and "# " in body_of(COMMANDS[1])
    with pytest.raises(json.JSONDecodeError):
        json.loads(body_of(COMMANDS[0]))  # strict JSON refuses them: the leniency is needed


def test_document_embeddings(outputs, registry):
    body = outputs[0]
    texts = [
        "Your document text string goes here",
        "You can send multiple texts",
        "Each text can be up to 8192 tokens long",
    ]
    model = registry.get("jina-colbert-v2").model
    expected = model.encode_documents(texts, dimensions=128)
    assert [d["index"] for d in body["data"]] == [0, 1, 2]
    for item, reference in zip(body["data"], expected, strict=True):
        got = np.array(item["embeddings"], np.float32)
        assert got.shape == reference.shape and np.abs(got - reference).max() < 1e-5
    assert body["usage"]["total_tokens"] == sum(model.count_tokens(texts, "document"))


def test_query_embeddings_are_32_vectors_each(outputs):
    body = outputs[1]
    assert [np.array(d["embeddings"]).shape for d in body["data"]] == [(32, 128)] * 3
    assert body["usage"]["total_tokens"] == 3 * 32


def test_rerank_top3_by_independent_maxsim(outputs, registry):
    body = outputs[2]
    request = json.loads(body_of(COMMANDS[2]))
    model = registry.get("jina-colbert-v2").model
    query = model.encode_queries([request["query"]])[0]
    scores = [maxsim(query, d) for d in model.encode_documents(request["documents"])]
    best = sorted(range(len(scores)), key=lambda i: -scores[i])[:3]
    assert [r["index"] for r in body["results"]] == best
    for result in body["results"]:
        assert result["relevance_score"] == pytest.approx(scores[result["index"]], abs=1e-3)
        assert result["document"] == {"text": request["documents"][result["index"]]}
    assert body["usage"]["total_tokens"] == 32 + sum(model.count_tokens(request["documents"], "document"))
