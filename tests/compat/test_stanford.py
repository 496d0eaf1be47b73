"""Stanford ColBERT's Checkpoint API: the shapes its README promises, and the same vectors as ours."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from polycolbert import ColBERT
from polycolbert.compat.colbert import Checkpoint, ColBERTConfig

DOCS = ["ColBERT is a fast and accurate retrieval model.", "It encodes every token of a passage.", "Short."]


@pytest.fixture(scope="module")
def checkpoint():
    return Checkpoint("polycolbert-e5-small", colbert_config=ColBERTConfig(doc_maxlen=180, dim=96))


def test_query_shape_and_values(checkpoint):
    queries = checkpoint.queryFromText(["what does ColBERT encode?", "speed"])
    assert queries.shape == (2, 32, 96) and queries.dtype == torch.float32
    ours = ColBERT.load(doc_maxlen=180).encode_queries(["speed"], dimensions=96)[0]
    assert np.abs(queries[1].numpy() - ours).max() < 1e-5


def test_doc_shapes(checkpoint):
    padded = checkpoint.docFromText(DOCS)
    listed = checkpoint.docFromText(DOCS, keep_dims=False)
    flat, lengths = checkpoint.docFromText(DOCS, keep_dims="flatten")
    assert [len(t) for t in listed] == lengths and flat.shape == (sum(lengths), 96)
    assert padded.shape == (3, max(lengths), 96)
    for i, n in enumerate(lengths):
        assert torch.equal(padded[i, :n], listed[i])
        assert torch.count_nonzero(padded[i, n:]) == 0
    assert torch.equal(flat[lengths[0] : lengths[0] + lengths[1]], listed[1])


def test_ranking_like_the_readme_example(checkpoint):
    query = checkpoint.queryFromText(["which model encodes every token?"])[0]
    docs = checkpoint.docFromText(DOCS, keep_dims=False)
    scores = [float((query @ d.T).max(dim=1).values.sum()) for d in docs]
    assert int(np.argmax(scores)) in (0, 1) and scores[2] < max(scores)


def test_queries_without_expansion_are_zero_padded_to_the_longest() -> None:
    """A PyLate checkpoint with ``do_query_expansion: false`` gives each query its own rows."""
    folder = Path(__file__).parents[1] / "fixtures" / "golden" / "pylate-no-expansion"
    model = ColBERT.load(str(folder))
    texts = ["short", "a somewhat longer query with several more words"]
    own = model.encode_queries(texts)
    checkpoint = Checkpoint(str(folder))
    batch = checkpoint.queryFromText(texts)
    assert len(own[0]) < len(own[1]) and batch.shape[1] == len(own[1])
    assert np.allclose(batch[0, : len(own[0])].numpy(), own[0], atol=1e-6)
    assert torch.count_nonzero(batch[0, len(own[0]) :]) == 0
