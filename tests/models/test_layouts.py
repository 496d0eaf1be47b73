"""Each checkpoint layout, written tiny with its real file and tensor names, loaded and checked against
transformers' own model plus hand-applied recipe (markers, head, normalisation, skiplist)."""

from __future__ import annotations

import string

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from polycolbert import ColBERT
from polycolbert.models.checkpoint import load_checkpoint, save_polycolbert_checkpoint
from polycolbert.models.files import CheckpointError
from polycolbert.models.heads import ColBERTHeads
from tiny_checkpoints import write_pylate, write_stanford

TEXTS = ["Paris is the capital of France.", "hello world, late interaction!", "a b c"]
TOL = 1e-5


def first_id_skiplist(tokenizer) -> set[int]:
    return {tokenizer.encode(s, add_special_tokens=False).ids[0] for s in string.punctuation}


def reference_rows(model, linear, bias, ids, attention, keep=None) -> np.ndarray:
    with torch.no_grad():
        states = model(
            input_ids=torch.tensor([ids]), attention_mask=torch.tensor([attention])
        ).last_hidden_state[0]
        out = states @ linear.T + (0 if bias is None else bias)
        out = F.normalize(out, dim=-1).numpy()
    return out if keep is None else out[keep]


def check_docs(colbert, model, linear, tokenizer, cls, sep, marker, skip, bias=None):
    ours = colbert.encode_documents(TEXTS, dimensions=linear.shape[0])
    for text, got in zip(TEXTS, ours, strict=True):
        pieces = tokenizer.encode(text, add_special_tokens=False).ids
        ids = [cls, marker, *pieces, sep]
        keep = [i for i, t in enumerate(ids) if t not in skip]
        expected = reference_rows(model, linear, bias, ids, [1] * len(ids), keep)
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() <= TOL


def check_queries(colbert, model, linear, tokenizer, cls, sep, marker, mask, attend, bias=None):
    ours = colbert.encode_queries(TEXTS, dimensions=linear.shape[0])
    for text, got in zip(TEXTS, ours, strict=True):
        pieces = tokenizer.encode(text, add_special_tokens=False).ids[:29]
        real = [cls, marker, *pieces, sep]
        ids = real + [mask] * (32 - len(real))
        attention = [1] * 32 if attend else [1] * len(real) + [0] * (32 - len(real))
        expected = reference_rows(model, linear, bias, ids, attention)
        assert got.shape == (32, linear.shape[0])
        assert np.abs(got - expected).max() <= TOL


@pytest.mark.parametrize("kind", ["bert", "xlm-roberta"])
def test_stanford_layout_matches_transformers(tmp_path, kind):
    model, linear, tok = write_stanford(tmp_path / "ckpt", kind=kind)
    colbert = ColBERT.load(tmp_path / "ckpt", dtype="float32")
    assert colbert.spec.layout == "stanford" and colbert.spec.doc_maxlen == 180
    v = tok.get_vocab()
    if kind == "bert":
        cls, sep, mask, qm, dm = v["[CLS]"], v["[SEP]"], v["[MASK]"], v["[unused0]"], v["[unused1]"]
    else:
        cls, sep, mask, qm, dm = 0, 2, 250001, 250002, 250003
    check_docs(colbert, model, linear, tok, cls, sep, dm, first_id_skiplist(tok))
    check_queries(colbert, model, linear, tok, cls, sep, qm, mask, attend=False)


def test_pylate_layout_uses_dense_bias_and_pylate_skiplist(tmp_path):
    model, dense, tok = write_pylate(tmp_path / "pl")
    colbert = ColBERT.load(tmp_path / "pl", dtype="float32")
    v = tok.get_vocab()
    assert colbert.spec.layout == "pylate"
    assert colbert.spec.query_marker_id == v["[Q] "] and colbert.spec.doc_marker_id == v["[D] "]
    # PyLate converts each punctuation word to an id directly (not "first id of its encoding").
    skip = {v.get(s, v["[UNK]"]) for s in string.punctuation}
    linear, bias = dense["linear.weight"], dense["linear.bias"]
    check_docs(colbert, model, linear, tok, v["[CLS]"], v["[SEP]"], v["[D] "], skip, bias=bias)
    check_queries(
        colbert, model, linear, tok, v["[CLS]"], v["[SEP]"], v["[Q] "], v["[MASK]"], False, bias=bias
    )


def test_polycolbert_layout_keeps_one_head_per_size(tmp_path):
    model, _, tok = write_stanford(tmp_path / "src", kind="bert")
    torch.manual_seed(3)
    weights = {d: torch.randn(d, 32) for d in (128, 96, 64)}
    config = dict(model.config.to_dict())
    v = tok.get_vocab()
    save_polycolbert_checkpoint(
        tmp_path / "own",
        {
            "name": "tiny-own",
            "backbone": {"source": "files", "kind": "bert", "config": config},
            "recipe": {"query_marker": "[unused0]", "doc_marker": "[unused1]", "doc_maxlen": 64},
            "license": "MIT",
        },
        ColBERTHeads.from_weights(weights),
        backbone_state=model.state_dict(),
        tokenizer=tok,
    )
    colbert = ColBERT.load(tmp_path / "own", dtype="float32")
    assert colbert.dims == (128, 96, 64) and colbert.spec.head_dims == (128, 96, 64)
    assert colbert.info()["notes"] == []
    for dim in (128, 96, 64):
        ours = colbert.encode_documents(TEXTS[:1], dimensions=dim)[0]
        pieces = tok.encode(TEXTS[0], add_special_tokens=False).ids
        ids = [v["[CLS]"], v["[unused1]"], *pieces, v["[SEP]"]]
        keep = [i for i, t in enumerate(ids) if t not in first_id_skiplist(tok)]
        expected = reference_rows(model, weights[dim], None, ids, [1] * len(ids), keep)
        assert np.abs(ours - expected).max() <= TOL


def test_single_head_gives_smaller_sizes_by_truncation_and_says_so(tmp_path):
    write_stanford(tmp_path / "c", kind="bert", dim=128)
    colbert = ColBERT.load(tmp_path / "c", dtype="float32")
    assert colbert.dims == (128, 96, 64)
    assert any("truncated" in note for note in colbert.info()["notes"])
    full = colbert.encode_documents(TEXTS, dimensions=128)
    small = colbert.encode_documents(TEXTS, dimensions=64)
    for f, s in zip(full, small, strict=True):
        expected = f[:, :64] / np.linalg.norm(f[:, :64], axis=1, keepdims=True)
        assert np.abs(s - expected).max() <= TOL
        assert np.allclose(np.linalg.norm(s, axis=1), 1.0, atol=1e-5)


def test_sibling_checkpoint_with_a_64_head_offers_only_64(tmp_path):
    write_stanford(tmp_path / "c64", kind="bert", dim=64)
    colbert = ColBERT.load(tmp_path / "c64", dtype="float32")
    assert colbert.dims == (64,)
    with pytest.raises(ValueError, match="dimensions must be one of 64"):
        colbert.encode_queries(["x"], dimensions=128)


def test_overrides_change_recipe_defaults(tmp_path):
    write_stanford(tmp_path / "c", kind="bert")
    colbert = ColBERT.load(tmp_path / "c", dtype="float32", doc_maxlen=8, query_maxlen=16)
    assert colbert.encode_queries(["hello world"])[0].shape[0] == 16
    assert colbert.encode_documents(["a b c d e f g h i j k l"])[0].shape[0] <= 8
    with pytest.raises(ValueError, match="unknown model options"):
        ColBERT.load(tmp_path / "c", not_an_option=3)


def test_missing_pieces_are_clear_errors(tmp_path, monkeypatch):
    write_stanford(tmp_path / "c", kind="bert")
    (tmp_path / "c" / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no weights"):
        load_checkpoint(tmp_path / "c")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        load_checkpoint(tmp_path / "empty")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(CheckpointError, match="huggingface-cli download jinaai/jina-colbert-v2"):
        ColBERT.load("jina-colbert-v2")
    with pytest.raises(CheckpointError, match="no model 'nonsense'"):
        ColBERT.load("nonsense")
