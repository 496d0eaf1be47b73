"""Known problem (reported, not yet fixed): a tiny first batch trains a codec that cannot encode later tokens.

With about one centroid per training token the training residuals are ~0, so the residual buckets learn
~0 values; tokens of later batches then decode to their nearest centroid, i.e. to some *other* word,
and since ``compact`` re-clusters decompressed vectors the loss is permanent. Exact-word queries then
miss their document. Marked ``xfail(strict=True)``: when the codec is fixed this starts passing and
pytest reports it, so the marker gets removed rather than forgotten.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from index_helpers import HashEncoder

from polycolbert.index import Index


@pytest.mark.xfail(strict=True, reason="codec trained on a tiny first batch loses later tokens' residuals")
def test_exact_word_query_finds_its_document_after_small_first_batch(tmp_path: Path) -> None:
    texts = [f"word{i} common shared" for i in range(20)]
    with Index.create(tmp_path / "ix", model=HashEncoder()) as index:
        for start in range(0, 20, 7):
            index.add(texts[start : start + 7], ids=[f"d{i}" for i in range(start, min(start + 7, 20))])
        wrong = [i for i in range(20) if index.search([f"word{i}"], k=1)[0][0].id != f"d{i}"]
        assert wrong == []
