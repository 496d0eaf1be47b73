"""Standard BERT / XLM-R encoders, taken from ``transformers`` rather than written again.

Built on the meta device and filled with ``load_state_dict(assign=True)``, so the module's parameters
*are* the given tensors: memory-mapped safetensors stay memory-mapped and weights are never held twice
(a 250k-row XLM-R embedding is 384 MB even for a small model). float32 tensors are taken as they are;
others are cast to float32 (that one copy is unavoidable).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
from torch import nn

HFKind = Literal["bert", "xlm-roberta"]
# Prefixes that wrapper models (BertForMaskedLM, ColBERT checkpoints, sentence-transformers) put in front.
PREFIXES = {"bert": "bert.", "xlm-roberta": "roberta."}
# Tensors that belong to something else in the same checkpoint: the pooler, ColBERT's linear head.
IGNORED_PREFIXES = ("pooler.", "linear.")
CONFIG_KEYS_IGNORED = ("architectures", "auto_map", "transformers_version")
# LayerNorm names of TensorFlow-era checkpoints, which transformers' save_pretrained still writes for BERT
# (5.3, as used by PyLate 1.6); transformers reads both, so do we.
LEGACY_SUFFIXES = {"LayerNorm.gamma": "LayerNorm.weight", "LayerNorm.beta": "LayerNorm.bias"}


class HFBackbone(nn.Module):
    """``forward(input_ids, attention_mask) -> last hidden state [B, S, hidden]``.

    ``max_positions`` is how many tokens one forward pass can take (XLM-R spends two of its position
    rows on the padding offset, so 514 rows give 512 positions).
    """

    def __init__(self, model: nn.Module, hidden_size: int, max_positions: int | None):
        super().__init__()
        self.model: Any = model  # a transformers BertModel / XLMRobertaModel
        self.hidden_size = hidden_size
        self.max_positions = max_positions

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    @property
    def num_layers(self) -> int:
        return len(self.model.encoder.layer)

    def lower(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, upto: int) -> torch.Tensor:
        """Hidden states after the first ``upto`` layers: top-layer training caches these once and
        runs only :meth:`upper` every step."""
        hidden = self.model.embeddings(input_ids=input_ids)
        return self._layers(hidden, attention_mask, 0, upto)

    def upper(self, hidden: torch.Tensor, attention_mask: torch.Tensor, start: int) -> torch.Tensor:
        """Layers ``start..`` over states from :meth:`lower`; equals ``forward`` (a test checks it)."""
        return self._layers(hidden, attention_mask, start, self.num_layers)

    def _layers(
        self, hidden: torch.Tensor, attention_mask: torch.Tensor, start: int, stop: int
    ) -> torch.Tensor:
        # An additive key mask [B, 1, 1, S]: what both the eager and the SDPA attention of BERT/XLM-R take.
        keep = attention_mask[:, None, None, :].to(hidden.dtype)
        additive = (1.0 - keep) * torch.finfo(hidden.dtype).min
        for layer in self.model.encoder.layer[start:stop]:
            out = layer(hidden, attention_mask=additive)
            hidden = out[0] if isinstance(out, tuple) else out  # transformers 4 returns a tuple
        return hidden


def _config(kind: HFKind, config: Mapping[str, Any]) -> Any:
    from transformers import BertConfig, XLMRobertaConfig

    known = {k: v for k, v in config.items() if k not in CONFIG_KEYS_IGNORED}
    cls = BertConfig if kind == "bert" else XLMRobertaConfig
    built = cls(**known)
    built._attn_implementation = "sdpa"  # the fused kernel; same numbers as eager to ~1e-6
    return built


def _clean_state(kind: HFKind, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    prefix = PREFIXES[kind]
    cleaned: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    for key, tensor in state.items():
        name = _modern_name(key.removeprefix("model.").removeprefix(prefix))
        if name.startswith(IGNORED_PREFIXES) or name.endswith("position_ids"):
            continue
        if name in cleaned:
            raise ValueError(f"{kind} weights name {name} twice (as {origin[name]} and {key}); keep one")
        origin[name] = key
        cleaned[name] = tensor.float() if tensor.is_floating_point() else tensor
    return cleaned


def _modern_name(name: str) -> str:
    for old, new in LEGACY_SUFFIXES.items():
        if name.endswith(old):
            return name.removesuffix(old) + new
    return name


def build_hf_backbone(
    kind: HFKind, config: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor]
) -> HFBackbone:
    """A transformers BERT / XLM-R encoder (no pooler, SDPA attention, eval mode) holding ``state_dict``.

    ``config`` is a ``config.json`` as a dict; ``state_dict`` may carry the ``bert.`` / ``roberta.``
    prefix or not, may name LayerNorm tensors ``gamma`` / ``beta``, and may include ``pooler.*`` (ignored).

    >>> from transformers import BertConfig, BertModel
    >>> config = dict(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
    ...               intermediate_size=32, max_position_embeddings=24)
    >>> reference = BertModel(BertConfig(**config))
    >>> backbone = build_hf_backbone("bert", config, reference.state_dict())
    >>> backbone(torch.tensor([[2, 7, 3]]), torch.ones(1, 3, dtype=torch.long)).shape
    torch.Size([1, 3, 16])
    """
    if kind not in PREFIXES:
        raise ValueError(f"unknown backbone kind {kind!r}; expected one of {sorted(PREFIXES)}")
    from transformers import BertModel, XLMRobertaModel

    hf_config = _config(kind, config)
    model_cls = BertModel if kind == "bert" else XLMRobertaModel
    with torch.device("meta"):
        model = model_cls(hf_config, add_pooling_layer=False)
    state = _clean_state(kind, state_dict)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"{kind} weights do not fit the config: missing {missing[:6]} ({len(missing)} in all), "
            f"unexpected {unexpected[:6]} ({len(unexpected)} in all)"
        )
    wrong = [
        f"{k}: {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if v.shape != state[k].shape
    ]
    if wrong:
        raise ValueError(f"{kind} weights have shapes the config does not (weights vs config): {wrong[:4]}")
    model.load_state_dict(state, assign=True, strict=True)
    # Buffers that are not in checkpoints (token_type_ids, position_ids) are still on the meta device.
    for module in model.modules():
        for name, buffer in list(module.named_buffers(recurse=False)):
            if buffer.is_meta:
                module.register_buffer(name, torch.zeros(buffer.shape, dtype=buffer.dtype), persistent=False)
    _reset_position_buffers(model, hf_config)
    rows = int(hf_config.max_position_embeddings)
    usable = rows - (int(hf_config.pad_token_id) + 1 if kind == "xlm-roberta" else 0)
    return HFBackbone(model, int(hf_config.hidden_size), usable).eval()


def _reset_position_buffers(model: nn.Module, config: Any) -> None:
    embeddings = getattr(model, "embeddings", None)
    if embeddings is None:
        return
    if hasattr(embeddings, "position_ids"):
        embeddings.position_ids = torch.arange(config.max_position_embeddings).expand((1, -1))
    if hasattr(embeddings, "token_type_ids"):
        embeddings.token_type_ids = torch.zeros((1, config.max_position_embeddings), dtype=torch.long)
