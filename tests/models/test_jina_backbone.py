"""jina's rotary XLM-R: RoPE against transformers' helpers, a relative-position property, a naive
independent forward pass, padding invariance, and loading jina's real tensor names."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from polycolbert.models.backbones.jina_xlmr import JinaXLMRobertaModel, load_jina_backbone
from polycolbert.models.backbones.rotary import RotaryEmbedding, apply_rotary

CONFIG = {
    "architectures": ["HF_ColBERT"],
    "position_embedding_type": "rotary",
    "rotary_emb_base": 10000.0,
    "vocab_size": 300,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 64,
    "layer_norm_eps": 1e-5,
    "type_vocab_size": 1,
    "pad_token_id": 1,
    "hidden_act": "gelu",
    "max_position_embeddings": 8194,
}


def jina_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights under jina's real names (roberta. prefix, Wqkv, norm1, mlp.fc1, pooler, linear)."""
    g = torch.Generator().manual_seed(seed)
    h, f = CONFIG["hidden_size"], CONFIG["intermediate_size"]

    def r(*shape, scale=0.1):
        return torch.randn(*shape, generator=g) * scale

    state = {
        "roberta.embeddings.word_embeddings.weight": r(CONFIG["vocab_size"], h, scale=1.0),
        "roberta.embeddings.token_type_embeddings.weight": r(1, h, scale=1.0),
        "roberta.emb_ln.weight": 1 + r(h),
        "roberta.emb_ln.bias": r(h),
        "roberta.pooler.dense.weight": r(h, h),
        "roberta.pooler.dense.bias": r(h),
        "linear.weight": r(16, h),
    }
    for i in range(CONFIG["num_hidden_layers"]):
        p = f"roberta.encoder.layers.{i}."
        state.update(
            {
                p + "mixer.Wqkv.weight": r(3 * h, h, scale=0.3),
                p + "mixer.Wqkv.bias": r(3 * h),
                p + "mixer.out_proj.weight": r(h, h, scale=0.3),
                p + "mixer.out_proj.bias": r(h),
                p + "norm1.weight": 1 + r(h),
                p + "norm1.bias": r(h),
                p + "norm2.weight": 1 + r(h),
                p + "norm2.bias": r(h),
                p + "mlp.fc1.weight": r(f, h, scale=0.3),
                p + "mlp.fc1.bias": r(f),
                p + "mlp.fc2.weight": r(h, f, scale=0.3),
                p + "mlp.fc2.bias": r(h),
            }
        )
    return state


def naive_forward(state: dict[str, torch.Tensor], ids: list[int]) -> torch.Tensor:
    """Written independently: complex-number RoPE, explicit softmax, erf GELU, per-token loops where easy."""
    h, heads = CONFIG["hidden_size"], CONFIG["num_attention_heads"]
    d = h // heads
    s = {k.removeprefix("roberta."): v.double() for k, v in state.items()}

    def layer_norm(x, w, b):
        mu = x.mean(-1, keepdim=True)
        var = ((x - mu) ** 2).mean(-1, keepdim=True)
        return (x - mu) / torch.sqrt(var + CONFIG["layer_norm_eps"]) * w + b

    def rope(x):  # x [L, d]: pair dims (i, i + d/2) as a complex number rotated by pos * theta_i
        out = x.clone()
        for pos in range(x.shape[0]):
            for i in range(d // 2):
                theta = pos * CONFIG["rotary_emb_base"] ** (-2 * i / d)
                z = complex(x[pos, i], x[pos, i + d // 2]) * complex(math.cos(theta), math.sin(theta))
                out[pos, i], out[pos, i + d // 2] = z.real, z.imag
        return out

    x = s["embeddings.word_embeddings.weight"][ids] + s["embeddings.token_type_embeddings.weight"][0]
    x = layer_norm(x, s["emb_ln.weight"], s["emb_ln.bias"])
    for i in range(CONFIG["num_hidden_layers"]):
        p = f"encoder.layers.{i}."
        qkv = x @ s[p + "mixer.Wqkv.weight"].T + s[p + "mixer.Wqkv.bias"]
        q, k, v = qkv[:, :h], qkv[:, h : 2 * h], qkv[:, 2 * h :]
        outs = []
        for head in range(heads):
            sl = slice(head * d, (head + 1) * d)
            qh, kh = rope(q[:, sl]), rope(k[:, sl])
            logits = qh @ kh.T / math.sqrt(d)
            weights = torch.exp(logits - logits.max(-1, keepdim=True).values)
            weights = weights / weights.sum(-1, keepdim=True)
            outs.append(weights @ v[:, sl])
        attn = torch.cat(outs, -1) @ s[p + "mixer.out_proj.weight"].T + s[p + "mixer.out_proj.bias"]
        x = layer_norm(x + attn, s[p + "norm1.weight"], s[p + "norm1.bias"])
        hidden = x @ s[p + "mlp.fc1.weight"].T + s[p + "mlp.fc1.bias"]
        hidden = 0.5 * hidden * (1 + torch.erf(hidden / math.sqrt(2)))
        x = layer_norm(
            x + hidden @ s[p + "mlp.fc2.weight"].T + s[p + "mlp.fc2.bias"],
            s[p + "norm2.weight"],
            s[p + "norm2.bias"],
        )
    return x.float()


@pytest.fixture(scope="module")
def model() -> JinaXLMRobertaModel:
    return load_jina_backbone(CONFIG, jina_state())


def test_rotary_matches_transformers_rotate_half():
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    rotary = RotaryEmbedding(16, base=10000.0)
    q, k = torch.randn(2, 3, 40, 16), torch.randn(2, 3, 40, 16)
    cos, sin = rotary.tables(40, torch.device("cpu"))
    inv_freq = 1.0 / (10000.0 ** (torch.arange(0, 16, 2).float() / 16))
    freqs = torch.outer(torch.arange(40).float(), inv_freq)
    emb = torch.cat([freqs, freqs], -1)
    ref_q, ref_k = apply_rotary_pos_emb(q, k, emb.cos()[None], emb.sin()[None])
    assert torch.allclose(apply_rotary(q, cos, sin), ref_q, atol=1e-6)
    assert torch.allclose(apply_rotary(k, cos, sin), ref_k, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(m=st.integers(0, 500), n=st.integers(0, 500), shift=st.integers(0, 3000), seed=st.integers(0, 10_000))
def test_rotated_dot_product_depends_only_on_distance(m, n, shift, seed):
    g = torch.Generator().manual_seed(seed)
    q, k = (
        torch.randn(16, generator=g, dtype=torch.float64),
        torch.randn(16, generator=g, dtype=torch.float64),
    )
    rotary = RotaryEmbedding(16)
    cos, sin = rotary.tables(max(m, n) + shift + 1, torch.device("cpu"))
    cos, sin = cos.double(), sin.double()

    def at(x, pos):
        return apply_rotary(x[None, None, None], cos[pos : pos + 1], sin[pos : pos + 1])[0, 0, 0]

    # Tables are float32 as in flash-attn, so angles at position p carry ~p * 6e-8 rad of rounding.
    assert float(at(q, m) @ at(k, n)) == pytest.approx(float(at(q, m + shift) @ at(k, n + shift)), abs=5e-3)


def test_forward_matches_naive_reference(model):
    ids = [0, 250 % 300, 17, 99, 5, 42, 2]
    with torch.no_grad():
        ours = model(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long))[0]
    assert (ours - naive_forward(jina_state(), ids)).abs().max() <= 1e-5


def test_split_forward_matches_naive_reference(model):
    """``upper(lower(x, k), k)`` is the whole model for every split (top-layer training relies on it)."""
    ids = [0, 17, 99, 5, 42, 2]
    reference = naive_forward(jina_state(), ids)
    tensor, mask = torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long)
    for split in range(model.num_layers + 1):
        with torch.no_grad():
            got = model.upper(model.lower(tensor, mask, split), mask, split)[0]
        assert (got - reference).abs().max() <= 1e-5


def test_right_padding_does_not_change_real_tokens(model):
    short, long = [0, 5, 6, 2], [0, 7, 8, 9, 10, 11, 2]
    ids = torch.tensor([short + [1] * 3, long])
    mask = torch.tensor([[1] * 4 + [0] * 3, [1] * 7])
    with torch.no_grad():
        batched = model(ids, mask)
        alone = model(torch.tensor([short]), torch.ones(1, 4, dtype=torch.long))
    assert (batched[0, :4] - alone[0]).abs().max() <= 1e-5


def test_jina_layout_loads_through_colbert(tmp_path, xlmr_tok):
    folder = tmp_path / "jina"
    folder.mkdir()
    config = dict(CONFIG, vocab_size=250004)
    state = jina_state()
    g = torch.Generator().manual_seed(5)
    state["roberta.embeddings.word_embeddings.weight"] = torch.randn(250004, 32, generator=g)
    save_file({k: v.to(torch.bfloat16) for k, v in state.items()}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "artifact.metadata").write_text(
        json.dumps(
            {
                "query_token_id": "[QueryMarker]",
                "doc_token_id": "[DocumentMarker]",
                "query_maxlen": 32,
                "doc_maxlen": 300,
                "attend_to_mask_tokens": True,
                "mask_punctuation": True,
            }
        )
    )
    xlmr_tok.save(str(folder / "tokenizer.json"))
    from polycolbert import ColBERT

    colbert = ColBERT.load(folder, dtype="float32")
    assert colbert.spec.layout == "jina" and colbert.spec.doc_maxlen == 8192 and colbert.dims == (16,)
    assert any("artifact.metadata says 300" in n for n in colbert.info()["notes"])
    text = "Hello World"
    [doc] = colbert.encode_documents([text])
    ids = [0, 250003, *xlmr_tok.encode(text, add_special_tokens=False).ids, 2]
    bf16_state = {k: v.to(torch.bfloat16).float() for k, v in state.items()}
    expected = naive_forward(bf16_state, ids) @ bf16_state["linear.weight"].T
    expected = torch.nn.functional.normalize(expected, dim=-1).numpy()
    assert doc.shape == expected.shape and np.abs(doc - expected).max() <= 1e-4
    [query] = colbert.encode_queries([text])
    assert query.shape == (32, 16)


def test_bad_configs_and_weights_are_clear_errors():
    with pytest.raises(ValueError, match="rotary"):
        load_jina_backbone(dict(CONFIG, position_embedding_type="absolute"), jina_state())
    with pytest.raises(ValueError, match="exact GELU"):
        load_jina_backbone(dict(CONFIG, hidden_act="gelu_new"), jina_state())
    state = jina_state()
    del state["roberta.encoder.layers.1.norm2.bias"]
    with pytest.raises(ValueError, match=r"missing \['encoder.layers.1.norm2.bias'\]"):
        load_jina_backbone(CONFIG, state)
