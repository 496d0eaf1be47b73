"""Regression: an index that starts with tiny batches must still encode later tokens well.

A codec fitted to a handful of tokens (about one centroid per token, residuals ~0) used to decode every
later token to its nearest centroid, i.e. to some *other* word, and ``compact`` could not undo it because it
re-clusters decoded vectors. The index now keeps exact vectors until ``MIN_CODEC_TOKENS`` and trains its
codec on all of them at once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from index_helpers import HashEncoder, clustered_docs

from polycolbert.index import Index
from polycolbert.index import params as P


def test_exact_word_query_finds_its_document_after_small_first_batch(tmp_path: Path) -> None:
    texts = [f"word{i} common shared" for i in range(20)]
    with Index.create(tmp_path / "ix", model=HashEncoder()) as index:
        for start in range(0, 20, 7):
            index.add(texts[start : start + 7], ids=[f"d{i}" for i in range(start, min(start + 7, 20))])
        wrong = [i for i in range(20) if index.search([f"word{i}"], k=1)[0][0].id != f"d{i}"]
        assert wrong == []


def test_tiny_batches_then_growth_past_the_codec_threshold(tmp_path: Path) -> None:
    small = clustered_docs(30, dims=32, seed=1)
    big = clustered_docs(900, dims=32, seed=2)
    with Index.create(tmp_path / "ix", dimensions=32, nbits=2) as index:
        for start in range(0, 30, 4):  # tiny batches: exact vectors, no codec yet
            part = small[start : start + 4]
            index.add([""] * len(part), ids=[f"s{start + j}" for j in range(len(part))], vectors=part)
        assert index.info()["centroids"] == 0
        index.delete(["s0"])
        index.add([""] * len(big), ids=[f"b{j}" for j in range(len(big))], vectors=big)
        info = index.info()
        assert info["tokens"] >= P.MIN_CODEC_TOKENS and info["centroids"] > 0 and index.check() == []
        assert info["documents"] == 29 + 900 and "s0" not in index.ids()
        # the early documents were compressed from their exact vectors: close to the originals
        for j in (1, 17, 29):
            decoded = index.get_vectors(f"s{j}")  # grouped by centroid, not in the given order
            similar = decoded @ small[j].T
            cosines = np.concatenate([similar.max(axis=0), similar.max(axis=1)])
            assert decoded.shape == small[j].shape and cosines.mean() > 0.9 and cosines.min() > 0.8
        hits = index.search(query_vectors=[small[j][:3] for j in range(1, 30)], k=1)
        assert [h[0].id for h in hits] == [f"s{j}" for j in range(1, 30)]
        assert np.isfinite([h[0].score for h in hits]).all()
