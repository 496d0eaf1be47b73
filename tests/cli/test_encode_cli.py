"""``polycolbert encode``: blank lines of a file never stop it; a single-vector model gives one vector."""

from __future__ import annotations

import base64
import json

import numpy as np
from typer.testing import CliRunner

from polycolbert.cli import app


def test_a_symbol_only_line_is_encoded_and_named_in_a_warning():
    result = CliRunner().invoke(app, ["encode", "--dimensions", "64"], input='hello world\n"\n\n— …\nbye\n')
    assert result.exit_code == 0, result.output
    assert "2 text(s) empty or only punctuation" in result.stderr and "input[1], input[2]" in result.stderr
    body = json.loads(result.stdout)
    shapes = [np.array(d["embeddings"]).shape for d in body["data"]]
    assert shapes[1] == shapes[2] == (3, 64) and len(shapes) == 4  # the blank line is skipped


def test_single_vector_model_gives_one_vector_per_text():
    args = [
        "encode",
        "--model",
        "multilingual-e5-small",
        "--input-type",
        "query",
        "--embedding-type",
        "base64",
    ]
    result = CliRunner().invoke(app, [*args, "hello", "world"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["model"] == "multilingual-e5-small" and body["usage"]["prompt_tokens"] > 0
    vectors = [np.frombuffer(base64.b64decode(d["embedding"]), "<f4") for d in body["data"]]
    assert [v.shape for v in vectors] == [(384,), (384,)]
    assert np.allclose([np.linalg.norm(v) for v in vectors], 1, atol=1e-5)
