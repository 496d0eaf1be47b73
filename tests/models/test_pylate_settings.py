"""PyLate settings that the golden checkpoints do not vary: honoured as PyLate reads them, or refused by name.

Each test starts from a folder PyLate itself wrote (``tests/fixtures/golden/pylate-default``) and changes one
setting the way a checkpoint on the hub could have it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

from polycolbert import ColBERT
from polycolbert.models.files import CheckpointError

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "golden"
TEXTS = ["late interaction", "Paris is the capital of France."]


def _copy(tmp_path: Path, variant: str = "pylate-default") -> Path:
    folder = tmp_path / variant
    shutil.copytree(GOLDEN / variant, folder)
    return folder


def _edit_json(path: Path, **changes: object) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    data.update(changes)
    path.write_text(json.dumps(data), encoding="utf-8")


def _load(folder: Path) -> ColBERT:
    return ColBERT.load(folder, dtype="float32", device="cpu")


def test_default_prompt_is_put_before_every_text_and_whitespace_is_stripped(tmp_path):
    folder = _copy(tmp_path)
    _edit_json(
        folder / "config_sentence_transformers.json",
        prompts={"query": "search: ", "document": ""},
        default_prompt_name="query",
    )
    prompted, plain = _load(folder), _load(GOLDEN / "pylate-default")
    assert prompted.spec.strip_text
    for ours, theirs in zip(
        prompted.encode_documents(["  Paris  "]), plain.encode_documents(["search: Paris"]), strict=True
    ):
        assert np.allclose(ours, theirs, atol=1e-6)
    # Offsets still point into the caller's text, past the prompt and the stripped spaces.
    spans = prompted.tokenize(["  Paris  "], "document")[0].spans
    assert (2, 7) in spans


def test_default_prompt_name_must_name_a_prompt(tmp_path):
    folder = _copy(tmp_path)
    _edit_json(folder / "config_sentence_transformers.json", prompts={}, default_prompt_name="query")
    with pytest.raises(CheckpointError, match="default_prompt_name"):
        _load(folder)


def test_prefix_missing_from_the_tokenizer_is_refused(tmp_path):
    folder = _copy(tmp_path)
    _edit_json(folder / "config_sentence_transformers.json", query_prefix="[Q]")
    with pytest.raises(CheckpointError, match=r"query_prefix '\[Q\]' is not a token"):
        _load(folder)


def test_empty_prefix_means_no_marker_row(tmp_path):
    folder = _copy(tmp_path)
    _edit_json(folder / "config_sentence_transformers.json", document_prefix="")
    model = _load(folder)
    assert model.spec.doc_marker_id is None
    assert len(model.encode_documents(["paris"])[0]) == 3  # [CLS] paris [SEP]


def test_lower_casing_transformer_is_refused(tmp_path):
    folder = _copy(tmp_path)
    _edit_json(folder / "sentence_bert_config.json", do_lower_case=True)
    with pytest.raises(CheckpointError, match="do_lower_case"):
        _load(folder)


def test_activation_outside_torch_nn_is_refused(tmp_path):
    folder = _copy(tmp_path)
    _edit_json(folder / "1_Dense" / "config.json", activation_function="mypackage.CustomActivation")
    with pytest.raises(CheckpointError, match=r"activation_function mypackage\.CustomActivation"):
        _load(folder)


def test_dense_weights_that_disagree_with_the_config_are_refused(tmp_path):
    folder = _copy(tmp_path)
    _edit_json(folder / "1_Dense" / "config.json", bias=True)
    with pytest.raises(CheckpointError, match="Dense weights"):
        _load(folder)


def test_unsupported_backbone_is_refused_by_model_type(tmp_path):
    folder = _copy(tmp_path)
    _edit_json(folder / "config.json", model_type="modernbert")
    with pytest.raises(CheckpointError, match="model_type 'modernbert'"):
        _load(folder)


def test_modules_pylate_drops_are_dropped_and_said(tmp_path):
    folder = _copy(tmp_path)
    modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
    modules.append(
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}
    )
    (folder / "modules.json").write_text(json.dumps(modules), encoding="utf-8")
    model, plain = _load(folder), _load(GOLDEN / "pylate-default")
    assert any("Normalize" in note for note in model.info()["notes"])
    for ours, theirs in zip(model.encode_documents(TEXTS), plain.encode_documents(TEXTS), strict=True):
        assert np.array_equal(ours, theirs)


def test_legacy_layernorm_names_read_like_modern_ones(tmp_path):
    """PyLate's files name LayerNorms gamma/beta; renaming them to weight/bias changes nothing."""
    folder = _copy(tmp_path)
    state = load_file(str(folder / "model.safetensors"))
    assert any(k.endswith("LayerNorm.gamma") for k in state)
    renamed = {
        k.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias"): v
        for k, v in state.items()
    }
    save_file(renamed, str(folder / "model.safetensors"))
    for ours, theirs in zip(
        _load(folder).encode_queries(TEXTS),
        _load(GOLDEN / "pylate-default").encode_queries(TEXTS),
        strict=True,
    ):
        assert np.array_equal(ours, theirs)


def test_non_linear_heads_cannot_be_saved_in_polycolbert_layout(tmp_path):
    from polycolbert.models.checkpoint import save_polycolbert_checkpoint

    model = _load(GOLDEN / "pylate-dense-chain")
    assert not model.heads.is_linear
    with pytest.raises(CheckpointError, match="activations"):
        save_polycolbert_checkpoint(tmp_path / "own", {"name": "x", "backbone": {}}, model.heads)


def test_affine_dense_chain_is_folded_into_one_linear_head(tmp_path):
    import torch

    from polycolbert.models.pylate import _read_dense

    folder = _copy(tmp_path, "pylate-dense-chain")
    _edit_json(folder / "2_Dense" / "config.json", activation_function="torch.nn.modules.linear.Identity")
    model = _load(folder)
    assert model.heads.is_linear  # bias, a residual projection and two maps folded into one
    chain = torch.nn.Sequential(_read_dense(folder / "1_Dense"), _read_dense(folder / "2_Dense"))
    states = torch.randn(7, model.spec.hidden_size)
    with torch.no_grad():
        assert torch.allclose(model.heads(states, 16), chain(states), atol=1e-5)
