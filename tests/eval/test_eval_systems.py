"""Systems and the harness on a toy dataset, checked against independent computations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from eval_fixtures import ToyColBERT, tiny_e5_parts

from polycolbert.eval.datasets import load_beir
from polycolbert.eval.harness import evaluate, parse_systems
from polycolbert.eval.systems import ALL_SYSTEMS, E5Encoder, _progress


@pytest.fixture
def tiny_colbert() -> ToyColBERT:
    return ToyColBERT()


def test_e5_encoder_matches_unbatched_forward() -> None:
    backbone, tokenizer = tiny_e5_parts()
    encoder = E5Encoder(backbone, tokenizer)
    texts = ["the cat sat on the warm mat", "why", "stock markets fell sharply after the bank raised rates"]
    with _progress(None) as progress:
        out = encoder.encode(texts, "document", progress)
    for text, dense, raw in zip(texts, out["dense"], out["colbert-raw"], strict=True):
        ids = [0, *tokenizer.encode("passage: " + text, add_special_tokens=False).ids, 2]
        with torch.no_grad():
            states = backbone(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long))[0]
        np.testing.assert_allclose(raw, F.normalize(states, dim=-1).numpy(), atol=1e-5)
        np.testing.assert_allclose(dense[0], F.normalize(states.mean(0), dim=0).numpy(), atol=1e-5)


def test_e5_encoder_ignores_padding_and_truncation_settings_of_a_shared_tokenizer() -> None:
    backbone, tokenizer = tiny_e5_parts()
    plain = E5Encoder(backbone, tokenizer)
    tokenizer.enable_padding(pad_id=1, pad_token="<pad>", length=40)
    tokenizer.enable_truncation(max_length=3)
    configured = E5Encoder(backbone, tokenizer)
    assert tokenizer.padding is not None  # the caller's tokenizer is left as it was
    texts = ["the cat sat on the warm mat", "why"]
    with _progress(None) as progress:
        a = plain.encode(texts, "query", progress)["colbert-raw"]
        b = configured.encode(texts, "query", progress)["colbert-raw"]
    assert [len(v) for v in b] == [len(v) for v in a] == [11, 5]  # <s> query : words </s>
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, atol=1e-6)


def test_parse_systems() -> None:
    assert parse_systems("all") == list(ALL_SYSTEMS)
    assert parse_systems("colbert-64, bm25,bm25") == ["colbert-64", "bm25"]
    with pytest.raises(ValueError, match="unknown system"):
        parse_systems("bm25,colbert-32")


def naive_maxsim(q: np.ndarray, d: np.ndarray) -> float:
    return float((q @ d.T).max(axis=1).sum())


def test_harness_runs_every_system_and_matches_exhaustive_maxsim(
    toy_dataset: Path, tmp_path: Path, tiny_colbert: ToyColBERT, monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = load_beir(toy_dataset)
    backbone, tokenizer = tiny_e5_parts()
    e5 = E5Encoder(backbone, tokenizer)
    cache = tmp_path / "cache"
    results = evaluate([ds], ALL_SYSTEMS, cache, colbert=tiny_colbert, e5=e5, k=100)
    (result,) = results
    assert tiny_colbert.calls == 2  # one pass per side (documents, queries) gives all three sizes
    assert list(result.metrics) == list(ALL_SYSTEMS)
    # BM25 on this toy set finds each query's document first (they share distinctive words)
    assert result.metrics["bm25"]["MRR@10"] == 1.0
    # colbert-96: stored float16 vectors, scored by hand
    docs = [
        v.astype(np.float16).astype(np.float32) for v in tiny_colbert.encode_documents(ds.corpus_texts, 96)
    ]
    queries = [
        v.astype(np.float16).astype(np.float32) for v in tiny_colbert.encode_queries(ds.query_texts, 96)
    ]
    for qid, q in zip(ds.query_ids, queries, strict=True):
        expected = {did: naive_maxsim(q, d) for did, d in zip(ds.corpus_ids, docs, strict=True)}
        got = result.runs["colbert-96"][qid]
        assert list(got) == sorted(expected, key=lambda did: -expected[did])
        for did, score in got.items():
            assert score == pytest.approx(expected[did], abs=1e-3)
    # a rerun is served from the cache: no encoder is called, and the numbers are identical
    monkeypatch.setattr(tiny_colbert, "encode_multi", lambda *a, **k: pytest.fail("encoded again"))
    monkeypatch.setattr(e5, "encode", lambda *a, **k: pytest.fail("encoded again"))
    again = evaluate([ds], ALL_SYSTEMS, cache, colbert=tiny_colbert, e5=e5, k=100)[0]
    assert again.runs == result.runs


def test_interrupted_encoding_keeps_finished_chunks(
    toy_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from polycolbert.eval import systems

    ds = load_beir(toy_dataset)
    backbone, tokenizer = tiny_e5_parts()
    e5 = E5Encoder(backbone, tokenizer)
    monkeypatch.setattr(systems, "CACHE_CHUNK", 2)
    real = e5.encode
    calls: list[int] = []

    def flaky(texts, side, progress):
        calls.append(len(texts))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(texts, side, progress)

    monkeypatch.setattr(e5, "encode", flaky)
    with pytest.raises(KeyboardInterrupt), _progress(None) as progress:
        systems.encode_cached(e5, ds.corpus_texts, "document", ["dense"], tmp_path, progress)
    monkeypatch.setattr(
        e5, "encode", lambda texts, side, progress: calls.append(len(texts)) or real(texts, side, progress)
    )
    with _progress(None) as progress:
        out = systems.encode_cached(e5, ds.corpus_texts, "document", ["dense"], tmp_path, progress)
    assert calls == [2, 2, 2]  # first chunk kept; the rerun encoded only the chunk that was lost
    assert len(out["dense"]) == 4


def test_harness_refuses_missing_parts(toy_dataset: Path, tmp_path: Path) -> None:
    ds = load_beir(toy_dataset)
    with pytest.raises(ValueError, match="need a ColBERT model"):
        evaluate([ds], ["colbert-128"], tmp_path)
    with pytest.raises(ValueError, match="e5 backbone"):
        evaluate([ds], ["dense"], tmp_path)
