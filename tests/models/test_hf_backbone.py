"""transformers BERT / XLM-R built on the meta device equal transformers' own models."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import BertConfig, BertModel, XLMRobertaConfig, XLMRobertaModel

from polycolbert.models.backbones.hf import build_hf_backbone
from polycolbert.models.backbones.layered import layered

SIZES = dict(
    vocab_size=120,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=64,
    hidden_act="gelu",
    layer_norm_eps=1e-12,
)


def saved_model(kind, folder):
    """A random model saved the way the hub has them (config.json + model.safetensors, with pooler)."""
    torch.manual_seed(0 if kind == "bert" else 1)
    if kind == "bert":
        model = BertModel(BertConfig(**SIZES, max_position_embeddings=40, type_vocab_size=2))
    else:
        model = XLMRobertaModel(
            XLMRobertaConfig(**SIZES, max_position_embeddings=42, type_vocab_size=1, pad_token_id=1)
        )
    with torch.no_grad():  # make LayerNorms and biases non-trivial, so a wrong mapping shows
        for name, parameter in model.named_parameters():
            if "LayerNorm" in name or name.endswith("bias"):
                parameter.add_(torch.randn_like(parameter) * 0.1)
    model.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    return model.eval(), config, load_file(str(folder / "model.safetensors"))


def batch(pad_id):
    ids = torch.tensor([[0, 5, 17, 33, 99, 2], [0, 8, 2, pad_id, pad_id, pad_id]])
    mask = (torch.arange(6) < torch.tensor([[6], [3]])).long()
    return ids, mask


@pytest.mark.parametrize("kind", ["bert", "xlm-roberta"])
def test_outputs_equal_transformers(kind, tmp_path):
    reference, config, state = saved_model(kind, tmp_path)
    assert any(k.startswith("pooler.") for k in state)  # real files carry the pooler; it is dropped
    backbone = build_hf_backbone(kind, config, state)
    ids, mask = batch(pad_id=0 if kind == "bert" else 1)
    with torch.no_grad():
        expected = reference(input_ids=ids, attention_mask=mask).last_hidden_state
        got = backbone(ids, mask)
    assert got.shape == (2, 6, 32)
    assert (got - expected)[mask.bool()].abs().max() <= 1e-5
    assert not backbone.training and not backbone.model.training
    assert backbone.model.config._attn_implementation == "sdpa"
    assert backbone.hidden_size == 32
    # BERT: 40 rows, 40 positions; XLM-R: 42 rows, of which 2 go to the padding offset.
    assert backbone.max_positions == 40
    full = torch.full((1, 40), 7)
    with torch.no_grad():
        full_expected = reference(input_ids=full, attention_mask=torch.ones_like(full)).last_hidden_state
        assert (backbone(full, torch.ones_like(full)) - full_expected).abs().max() <= 1e-5


@pytest.mark.parametrize("kind", ["bert", "xlm-roberta"])
def test_weights_are_the_given_tensors_not_copies(kind, tmp_path):
    _, config, state = saved_model(kind, tmp_path)  # load_file: memory-mapped
    backbone = build_hf_backbone(kind, config, state)
    words = backbone.model.embeddings.word_embeddings.weight
    assert words.data_ptr() == state["embeddings.word_embeddings.weight"].data_ptr()
    assert all(p.dtype == torch.float32 and not p.is_meta for p in backbone.parameters())
    assert all(not b.is_meta for b in backbone.buffers())


@pytest.mark.parametrize(("kind", "prefix"), [("bert", "bert."), ("xlm-roberta", "roberta.")])
def test_prefixed_and_half_precision_state_dicts(kind, prefix, tmp_path):
    _, config, state = saved_model(kind, tmp_path)
    prefixed = {prefix + k: v for k, v in state.items()}
    prefixed["cls.predictions.bias" if kind == "bert" else "lm_head.bias"] = torch.zeros(3)
    ids, mask = batch(pad_id=0 if kind == "bert" else 1)
    with pytest.raises(ValueError, match="unexpected"):  # an LM head is not silently accepted
        build_hf_backbone(kind, config, prefixed)
    prefixed.pop("cls.predictions.bias" if kind == "bert" else "lm_head.bias")
    plain = build_hf_backbone(kind, config, state)
    with torch.no_grad():
        assert torch.equal(build_hf_backbone(kind, config, prefixed)(ids, mask), plain(ids, mask))
        half = build_hf_backbone(kind, config, {k: v.half() for k, v in state.items()})
        assert half.model.embeddings.word_embeddings.weight.dtype == torch.float32
        assert (half(ids, mask) - plain(ids, mask)).abs().max() < 0.05


def test_missing_key_error_names_it(tmp_path):
    _, config, state = saved_model("bert", tmp_path)
    del state["encoder.layer.1.output.dense.weight"]
    with pytest.raises(ValueError, match=r"missing \['encoder\.layer\.1\.output\.dense\.weight'\]"):
        build_hf_backbone("bert", config, state)


def test_wrong_config_and_duplicates_are_refused(tmp_path):
    _, config, state = saved_model("bert", tmp_path)
    with pytest.raises(ValueError, match="shapes"):
        build_hf_backbone("bert", {**config, "vocab_size": 121}, state)
    with pytest.raises(ValueError, match="missing"):  # 3 layers asked for, 2 stored
        build_hf_backbone("bert", {**config, "num_hidden_layers": 3}, state)
    doubled = {**state, "bert.embeddings.LayerNorm.bias": state["embeddings.LayerNorm.bias"]}
    with pytest.raises(ValueError, match="twice"):
        build_hf_backbone("bert", config, doubled)
    with pytest.raises(ValueError, match="unknown backbone kind"):
        build_hf_backbone("gpt2", config, state)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["bert", "xlm-roberta"])
@pytest.mark.parametrize("split", [0, 1, 2])
def test_split_forward_equals_transformers(kind, split, tmp_path):
    """Top-layer training runs ``upper`` on cached ``lower`` states: together they must be the model."""
    reference, config, state = saved_model(kind, tmp_path)
    backbone = build_hf_backbone(kind, config, state)
    ids, mask = batch(pad_id=0 if kind == "bert" else 1)
    with torch.no_grad():
        expected = reference(input_ids=ids, attention_mask=mask).last_hidden_state
        halves = layered(backbone)
        got = halves.upper(halves.lower(ids, mask, split), mask, split)
    assert halves.num_layers == 2
    assert (got - expected)[mask.bool()].abs().max() <= 1e-5


def test_a_backbone_without_halves_is_refused_with_the_way_out():
    """Top-layer training on cached states needs ``lower``/``upper``; other backbones get a clear error."""
    with pytest.raises(ValueError, match=r"cannot run its layers in two halves.*cache-lower-states"):
        layered(torch.nn.Linear(2, 2))
