"""The library rerank: MaxSim order with the one tie rule, alignments, and labelled matches from a model."""

from __future__ import annotations

import numpy as np
import pytest

from polycolbert import ColBERT
from polycolbert.fusion import fuse_bm25
from polycolbert.rerank import Ranked, bm25_over, rerank, rerank_texts
from polycolbert.scoring import explain_matches, maxsim


@pytest.fixture(scope="module")
def model():
    return ColBERT.load(dtype="float32")


def test_rerank_orders_by_maxsim_with_ties_in_input_order():
    rng = np.random.default_rng(0)
    query = rng.standard_normal((4, 8)).astype(np.float32)
    docs = [rng.standard_normal((n, 8)).astype(np.float32) for n in (3, 5, 1, 6)]
    docs.insert(2, docs[1].copy())  # an exact tie: the earlier copy ranks first
    docs.append(np.zeros((0, 8), np.float32))  # an empty document scores 0
    ranked = rerank(query, docs)
    expected = [maxsim(query, d) for d in docs]
    assert [r.score for r in ranked] == pytest.approx(sorted(expected, reverse=True), abs=1e-5)
    assert [r.index for r in ranked].index(1) < [r.index for r in ranked].index(2)
    assert {r.index for r in ranked} == set(range(len(docs)))
    assert all(r.alignments is None for r in ranked)
    top = rerank(query, docs, top_n=2, explain=True)
    assert [r.index for r in top] == [r.index for r in ranked[:2]]
    assert all(r.alignments == explain_matches(query, docs[r.index]) for r in top)
    assert rerank(query, []) == []


def test_rerank_result_carries_index_and_score():
    q = np.eye(2, dtype=np.float32)
    assert rerank(q, [q[:1], q]) == [Ranked(1, pytest.approx(2.0)), Ranked(0, pytest.approx(1.0))]


def test_rerank_texts_finds_the_answer_across_languages_and_explains_it(model):
    documents = [
        "Spirited Away won the Academy Award for Best Animated Feature in 2003.",
        "The Eiffel Tower was finished in 1889 for the World's Fair in Paris.",
        "Berlin is the capital and largest city of Germany.",
    ]
    ranked = rerank_texts(model, "Wann wurde der Eiffelturm fertiggestellt?", documents, explain=True)
    assert ranked[0].index == 1 and ranked[0].text == documents[1]
    query_vectors = model.encode_queries(["Wann wurde der Eiffelturm fertiggestellt?"])[0]
    document_vectors = model.encode_documents(documents)
    for r in ranked:
        assert r.score == pytest.approx(maxsim(query_vectors, document_vectors[r.index]), abs=1e-4)
    matches = ranked[0].matches
    assert matches is not None and len(matches) == len(query_vectors)
    assert sum(m.score for m in matches) == pytest.approx(ranked[0].score, abs=1e-4)
    for m in matches:  # a text span labels itself; a special token has the empty span
        span = documents[1][m.document_start : m.document_end]
        assert span.strip() == m.document_token if m.document_end > m.document_start else m.document_token
    assert any(m.query_token == "Eiffel" and "Eiffel" in m.document_token for m in matches)
    assert [r.index for r in rerank_texts(model, "Eiffel", documents, top_n=1, dimensions=64)] == [1]
    with pytest.raises(ValueError, match="dimensions must be one of"):
        rerank_texts(model, "Eiffel", documents, dimensions=100)


def test_blank_documents_rank_last_with_the_lowest_score_and_a_blank_query_is_refused(model):
    documents = ['"', "The Eiffel Tower was finished in 1889.", "", "— …", "Berlin is in Germany."]
    ranked = rerank_texts(model, "Eiffel Tower", documents, explain=True)
    assert [r.index for r in ranked] == [1, 4, 0, 2, 3]
    assert [r.score for r in ranked[2:]] == [-32.0] * 3 and all(r.matches == [] for r in ranked[2:])
    for query in ("", "  ", "?!"):
        with pytest.raises(ValueError, match=r"^query is"):
            rerank_texts(model, query, documents)
    q = np.eye(2, dtype=np.float32)
    assert [r.index for r in rerank(q, [q, q[:1]], blank=[True, False])] == [1, 0]
    with pytest.raises(ValueError, match="flags"):
        rerank(q, [q], blank=[True, False])


def test_bm25_fusion_reranks_by_the_rule_and_keeps_blank_documents_last():
    rng = np.random.default_rng(1)
    query = rng.standard_normal((3, 8)).astype(np.float32)
    docs = [rng.standard_normal((n, 8)).astype(np.float32) for n in (4, 2, 5, 3)]
    lexical = np.array([0.0, 2.0, 0.0, 7.0])
    blank = [False, False, True, False]
    ranked = rerank(query, docs, blank=blank, bm25=(lexical, True))
    keep = [0, 1, 3]
    expected = fuse_bm25(np.array([maxsim(query, docs[i]) for i in keep]), lexical[keep], gate_open=True)
    assert [r.index for r in ranked] == [keep[i] for i in np.argsort(-expected, kind="stable")] + [2]
    assert [r.score for r in ranked[:3]] == pytest.approx(sorted(expected, reverse=True), abs=1e-5)
    assert ranked[3].score < ranked[2].score
    closed = rerank(query, docs, bm25=(lexical, False))  # gate closed: MaxSim's order, z-scored
    assert [r.index for r in closed] == [r.index for r in rerank(query, docs)]


def test_bm25_over_the_given_documents_and_its_gate():
    documents = ["apple pie recipe", "stock market news", "apple stock rose"]
    scores, gate_open = bm25_over("apple stock", documents)
    assert gate_open and scores[2] > max(scores[0], scores[1]) > 0
    assert bm25_over("яблоко", documents)[1] is False  # another script
    assert bm25_over("apple", [*documents, "яблочный пирог", "рынок акций"])[1] is False  # mixed scripts


def test_rerank_texts_refuses_an_unknown_fusion(model):
    with pytest.raises(ValueError, match="fusion must be one of none, bm25"):
        rerank_texts(model, "q", ["d"], fusion="dense")
