"""Checkpoints written by PyLate and by colbert-ai encode in polycolbert as in the library that wrote them.

The oracle is the libraries' own code, not a fixture of ours: ``scripts/make_golden_checkpoints.py`` had
PyLate and colbert-ai (versions in ``tests/fixtures/golden/manifest.json``) save tiny random checkpoints
and encode fixed texts with their own ``encode()`` / ``queryFromText`` / ``docFromText``. The folders and
those vectors are committed; neither library is installed to run this test.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file
from tokenizers import Tokenizer

from polycolbert import ColBERT

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "golden"
MANIFEST = json.loads((GOLDEN / "manifest.json").read_text(encoding="utf-8"))
VARIANTS = sorted(MANIFEST["variants"])
MIN_COSINE = 0.999


@cache
def _model(variant: str) -> ColBERT:
    return ColBERT.load(GOLDEN / variant, dtype="float32", device="cpu")


@pytest.mark.parametrize("kind", ["query", "document"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_vectors_match_the_library_row_for_row(variant: str, kind: str) -> None:
    model = _model(variant)
    texts = MANIFEST["queries"] if kind == "query" else MANIFEST["documents"]
    ours = model.encode_queries(texts) if kind == "query" else model.encode_documents(texts)
    golden = load_file(str(GOLDEN / f"{variant}.safetensors"))
    for i, text in enumerate(texts):
        expected, got = golden[f"{kind}.{i}"], ours[i]
        assert got.shape == expected.shape, (
            f"{variant} {kind} {i} {text!r}: rows {got.shape} vs {expected.shape}"
        )
        norms = np.linalg.norm(got, axis=1) * np.linalg.norm(expected, axis=1)
        cosine = (got * expected).sum(axis=1) / np.maximum(norms, 1e-12)
        worst = int(cosine.argmin())
        assert cosine[worst] >= MIN_COSINE, (
            f"{variant} {kind} {i} {text!r}: row {worst} cosine {cosine[worst]:.5f}"
        )


def test_the_goldens_cover_what_the_issue_names() -> None:
    """Short, long (> query length), punctuation and unknown-token inputs; cut documents; both libraries."""
    variants = MANIFEST["variants"]
    assert {v["library"] for v in variants.values()} == {"pylate", "colbert-ai"}
    query_length = 32
    no_expansion = variants["pylate-no-expansion"]
    assert no_expansion["query_rows"][0] < query_length  # PyLate returns only the real rows
    tokenizer = Tokenizer.from_file(str(GOLDEN / "stanford-default" / "tokenizer.json"))
    queries = [tokenizer.encode(q).ids for q in MANIFEST["queries"]]
    assert max(len(q) for q in queries) > query_length
    assert any(c in MANIFEST["queries"][2] for c in ",!?")
    assert tokenizer.token_to_id("[UNK]") in queries[3]
    assert variants["stanford-default"]["document_rows"][1] < 48 < len(MANIFEST["documents"][1].split()) + 2
    settings = [v["settings"] for v in variants.values() if v["library"] == "colbert-ai"]
    assert {s["mask_punctuation"] for s in settings} == {True, False}
    assert {s["attend_to_mask_tokens"] for s in settings} == {True, False}
    assert variants["pylate-attend-expansion"]["attend_to_expansion_tokens"] is True
