"""RAGatouille's README flow, rewritten: index with ids and metadata, search, add, delete, rerank, encode."""

from __future__ import annotations

import pytest

from polycolbert.compat.ragatouille import RAGPretrainedModel

DOCS = [
    "Hayao Miyazaki co-founded Studio Ghibli, the Japanese animation studio, in 1985.",
    "Spirited Away won the Academy Award for Best Animated Feature in 2003.",
    "The Eiffel Tower was finished in 1889 for the World's Fair in Paris.",
]
IDS = ["miyazaki", "spirited", "eiffel"]
METAS = [{"entity": "person"}, {"entity": "film"}, {"entity": "place"}]
KEYS = {"content", "score", "rank", "document_id", "passage_id", "document_metadata"}


@pytest.fixture(scope="module")
def rag(tmp_path_factory):
    root = tmp_path_factory.mktemp("rag")
    rag = RAGPretrainedModel.from_pretrained("polycolbert-e5-small", index_root=str(root))
    path = rag.index(
        DOCS, document_ids=IDS, document_metadatas=METAS, index_name="ghibli", max_document_length=64
    )
    assert path.endswith("colbert/indexes/ghibli")
    return rag


def test_search_result_dicts(rag):
    results = rag.search("Who founded Studio Ghibli?", k=2)
    assert len(results) == 2 and set(results[0]) == KEYS
    assert [r["rank"] for r in results] == [1, 2]
    assert results[0]["document_id"] == "miyazaki" and results[0]["document_metadata"] == {"entity": "person"}
    assert results[0]["score"] >= results[1]["score"]
    batch = rag.search(["Eiffel Tower year", "animated film award"], k=1)
    assert [r[0]["document_id"] for r in batch] == ["eiffel", "spirited"]


def test_long_documents_are_split_into_passages(rag):
    long_text = " ".join(["Totoro lives in a camphor tree in the forest near the house."] * 30)
    rag.add_to_index([long_text], new_document_ids=["totoro"], max_document_length=64)
    passages = [p for p in rag._require_index().ids() if p.startswith("totoro#")]
    assert len(passages) >= 5  # ~420 tokens in passages of at most 64
    hits = [h for h in rag.search("camphor tree forest", k=10) if h["document_id"] == "totoro"]
    assert len({h["passage_id"] for h in hits}) >= 3


def test_delete_from_index(rag):
    rag.add_to_index(["A temporary note about Kiki's Delivery Service."], new_document_ids=["kiki"])
    assert "kiki" in {h["document_id"] for h in rag.search("Kiki's Delivery Service", k=5)}
    assert rag.delete_from_index(["kiki"]) == 1
    assert all(h["document_id"] != "kiki" for h in rag.search("Kiki's Delivery Service", k=10))


def test_from_index_reopens(rag):
    again = RAGPretrainedModel.from_index(rag.index_path)
    assert again.search("Eiffel Tower", k=1)[0]["document_id"] == "eiffel"


def test_rerank_and_encoded_docs_without_index(rag):
    ranked = rag.rerank("When was the Eiffel Tower finished?", DOCS, k=2)
    assert [r["rank"] for r in ranked] == [1, 2] and ranked[0]["content"] == DOCS[2]
    rag.clear_encoded_docs()
    rag.encode(DOCS, document_metadatas=METAS)
    found = rag.search_encoded_docs("Academy Award animated film", k=1)[0]
    assert found["content"] == DOCS[1] and found["document_metadata"] == {"entity": "film"}


def test_bad_input(rag):
    with pytest.raises(ValueError, match="unique"):
        rag.add_to_index(["a", "b"], new_document_ids=["x", "x"])
    fresh = RAGPretrainedModel(rag.model)
    with pytest.raises(ValueError, match="no index yet"):
        fresh.search("anything")
