"""Standard BERT / XLM-R encoders, taken from ``transformers`` rather than written again.

Built on the meta device and filled with ``assign=True``, so memory-mapped safetensors stay memory-mapped
and weights are never held twice (a 250k-row XLM-R embedding is 384 MB even for a small model).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
from torch import nn

HFKind = Literal["bert", "xlm-roberta"]
PREFIXES = {"bert": "bert.", "xlm-roberta": "roberta."}


class HFBackbone(nn.Module):
    """``forward(input_ids, attention_mask) -> last hidden state``, whatever transformers model is inside."""

    def __init__(self, model: nn.Module, hidden_size: int, max_positions: int | None):
        super().__init__()
        self.model = model
        self.hidden_size = hidden_size
        self.max_positions = max_positions

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def state_dict_for_checkpoint(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.model.state_dict().items()}


def _config(kind: HFKind, config: Mapping[str, Any]):
    from transformers import BertConfig, XLMRobertaConfig

    known = {
        k: v for k, v in config.items() if k not in ("architectures", "auto_map", "transformers_version")
    }
    cls = BertConfig if kind == "bert" else XLMRobertaConfig
    built = cls(**known)
    built._attn_implementation = "sdpa"
    return built


def _clean_state(kind: HFKind, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    prefix = PREFIXES[kind]
    cleaned = {}
    for key, tensor in state.items():
        name = key.removeprefix("model.").removeprefix(prefix)
        if name.startswith(("pooler.", "linear.")) or name.endswith("position_ids"):
            continue
        cleaned[name] = tensor.float() if tensor.is_floating_point() else tensor
    return cleaned


def build_hf_backbone(
    kind: HFKind, config: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor]
) -> HFBackbone:
    """A transformers BERT / XLM-R encoder (no pooler) holding ``state_dict``'s weights in float32."""
    from transformers import BertModel, XLMRobertaModel

    hf_config = _config(kind, config)
    model_cls = BertModel if kind == "bert" else XLMRobertaModel
    with torch.device("meta"):
        model = model_cls(hf_config, add_pooling_layer=False)
    state = _clean_state(kind, state_dict)
    expected = set(model.state_dict())
    missing = sorted(expected - set(state))
    unexpected = sorted(set(state) - expected)
    if missing or unexpected:
        raise ValueError(
            f"{kind} weights do not fit the config: missing {missing[:6]} ({len(missing)} in all), "
            f"unexpected {unexpected[:6]} ({len(unexpected)} in all)"
        )
    model.load_state_dict(state, assign=True, strict=True)
    # Buffers that are not in checkpoints (token_type_ids, position_ids) are still on the meta device.
    for module in model.modules():
        for name, buffer in list(module.named_buffers(recurse=False)):
            if buffer.is_meta:
                module.register_buffer(name, torch.zeros(buffer.shape, dtype=buffer.dtype), persistent=False)
    _reset_position_buffers(model, hf_config)
    model.eval()
    rows = int(hf_config.max_position_embeddings)
    usable = rows - (int(hf_config.pad_token_id) + 1 if kind == "xlm-roberta" else 0)
    return HFBackbone(model, int(hf_config.hidden_size), usable)


def _reset_position_buffers(model: nn.Module, config: Any) -> None:
    embeddings = getattr(model, "embeddings", None)
    if embeddings is None:
        return
    if hasattr(embeddings, "position_ids"):
        embeddings.position_ids = torch.arange(config.max_position_embeddings).expand((1, -1))
    if hasattr(embeddings, "token_type_ids"):
        embeddings.token_type_ids = torch.zeros((1, config.max_position_embeddings), dtype=torch.long)
