"""jina-colbert-v2's backbone: XLM-RoBERTa with rotary positions, written here because transformers lacks it.

Module names follow jina's checkpoint (``encoder.layers.N.mixer.Wqkv``, ``norm1``, ``mlp.fc1`` ...) so its
``model.safetensors`` loads with only the ``roberta.`` prefix stripped. Blocks are post-LayerNorm, the
token-type embedding (row 0) is still added, GELU is exact, attention goes through
``scaled_dot_product_attention`` (flash / memory-efficient kernels where torch has them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from polycolbert.models.backbones.rotary import RotaryEmbedding, apply_rotary


@dataclass
class JinaXLMRobertaConfig:
    vocab_size: int = 250004
    hidden_size: int = 1024
    num_hidden_layers: int = 24
    num_attention_heads: int = 16
    intermediate_size: int = 4096
    layer_norm_eps: float = 1e-5
    rotary_emb_base: float = 10000.0
    type_vocab_size: int = 1
    pad_token_id: int = 1
    hidden_act: str = "gelu"
    max_position_embeddings: int = 8194

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> JinaXLMRobertaConfig:
        kind = config.get("position_embedding_type", "rotary")
        if kind != "rotary":
            raise ValueError(f"jina XLM-R backbone needs position_embedding_type 'rotary', got {kind!r}")
        if config.get("hidden_act", "gelu") != "gelu":
            raise ValueError(
                f"only exact GELU is supported (hidden_act 'gelu'); got {config.get('hidden_act')!r}"
            )
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in config.items() if k in names})


class Attention(nn.Module):
    def __init__(self, config: JinaXLMRobertaConfig, rotary: RotaryEmbedding):
        super().__init__()
        self.heads = config.num_attention_heads
        self.head_dim = config.hidden_size // self.heads
        self.Wqkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.out_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.rotary = rotary

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        batch, length, hidden = x.shape
        qkv = self.Wqkv(x).view(batch, length, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        cos, sin = self.rotary.tables(length, x.device)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask)
        return self.out_proj(out.transpose(1, 2).reshape(batch, length, hidden))


class MLP(nn.Module):
    def __init__(self, config: JinaXLMRobertaConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, config: JinaXLMRobertaConfig, rotary: RotaryEmbedding):
        super().__init__()
        self.mixer = Attention(config, rotary)
        self.norm1 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = MLP(config)
        self.norm2 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        x = self.norm1(x + self.mixer(x, key_mask))
        return self.norm2(x + self.mlp(x))


class Encoder(nn.Module):
    def __init__(self, config: JinaXLMRobertaConfig, rotary: RotaryEmbedding):
        super().__init__()
        self.layers = nn.ModuleList(Block(config, rotary) for _ in range(config.num_hidden_layers))


class Embeddings(nn.Module):
    def __init__(self, config: JinaXLMRobertaConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)


class JinaXLMRobertaModel(nn.Module):
    """``forward(input_ids, attention_mask) -> [B, S, hidden]``; positions restart at 0 for each sequence."""

    max_positions: int | None = None  # rotary: no position table limits the length

    def __init__(self, config: JinaXLMRobertaConfig):
        super().__init__()
        self.config = config
        self.hidden_size = config.hidden_size
        self.rotary = RotaryEmbedding(
            config.hidden_size // config.num_attention_heads, config.rotary_emb_base
        )
        self.embeddings = Embeddings(config)
        self.emb_ln = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.encoder = Encoder(config, self.rotary)

    @property
    def num_layers(self) -> int:
        return len(self.encoder.layers)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.upper(
            self.lower(input_ids, attention_mask, self.num_layers), attention_mask, self.num_layers
        )

    def lower(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, upto: int) -> torch.Tensor:
        """Hidden states after the first ``upto`` layers (what top-layer training caches)."""
        x = self.embeddings.word_embeddings(input_ids) + self.embeddings.token_type_embeddings.weight[0]
        return self._layers(self.emb_ln(x), attention_mask, 0, upto)

    def upper(self, hidden: torch.Tensor, attention_mask: torch.Tensor, start: int) -> torch.Tensor:
        """Run layers ``start..`` on hidden states that :meth:`lower` produced; last hidden state out."""
        return self._layers(hidden, attention_mask, start, self.num_layers)

    def _layers(self, x: torch.Tensor, attention_mask: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        # No mask when nothing is padded: SDPA can then use its fused kernels.
        key_mask = None if bool(attention_mask.all()) else attention_mask.bool()[:, None, None, :]
        for layer in self.encoder.layers[start:stop]:
            x = layer(x, key_mask)
        return x


def load_jina_backbone(
    config: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor]
) -> JinaXLMRobertaModel:
    """jina's rotary XLM-R from its config.json and (``roberta.``-prefixed, often bf16) weights."""
    parsed = JinaXLMRobertaConfig.from_dict(config)
    state = {}
    for key, tensor in state_dict.items():
        name = key.removeprefix("roberta.")
        if name.startswith(("pooler.", "linear.")):
            continue
        state[name] = tensor.float() if tensor.is_floating_point() else tensor
    with torch.device("meta"):
        model = JinaXLMRobertaModel(parsed)
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise ValueError(
            f"jina XLM-R weights do not fit the config: missing {missing[:6]}, unexpected {unexpected[:6]}"
        )
    model.load_state_dict(state, assign=True, strict=True)
    model.rotary = RotaryEmbedding(parsed.hidden_size // parsed.num_attention_heads, parsed.rotary_emb_base)
    for layer in model.encoder.layers:
        layer.mixer.rotary = model.rotary  # type: ignore[union-attr]
    return model.eval()
