"""LoRA adapters on the backbone's attention projections (through ``peft``), and merging them back.

Checkpoints never store adapters: the adapted weights are merged into plain tensors with their original
names, so a fine-tuned model loads like any other polycolbert checkpoint, with no peft at inference.
"""

from __future__ import annotations

import torch
from torch import nn

# Attention projections of transformers' BERT/XLM-R (query, value) and of jina's XLM-R (Wqkv).
LORA_TARGETS = ("query", "value", "Wqkv")


def add_lora(backbone: nn.Module, rank: int, alpha: int | None = None) -> list[nn.Parameter]:
    """Inject LoRA adapters in place; returns the adapter parameters (the only trainable ones)."""
    from peft import LoraConfig, inject_adapter_in_model

    names = {name.rsplit(".", 1)[-1] for name, _ in backbone.named_modules()}
    targets = [t for t in LORA_TARGETS if t in names]
    if not targets:
        raise ValueError(f"no attention projections named {LORA_TARGETS} in this backbone for LoRA")
    config = LoraConfig(r=rank, lora_alpha=alpha or 2 * rank, target_modules=targets, lora_dropout=0.0)
    inject_adapter_in_model(config, backbone)
    return [p for n, p in backbone.named_parameters() if "lora_" in n]


def _lora_layers(backbone: nn.Module) -> list[nn.Module]:
    from peft.tuners.lora import LoraLayer

    return [m for m in backbone.modules() if isinstance(m, LoraLayer)]


def merged_state_dict(backbone: nn.Module) -> dict[str, torch.Tensor]:
    """The backbone's weights with any adapters folded in, under the original (pre-LoRA) names."""
    layers = _lora_layers(backbone)
    for layer in layers:
        layer.merge()  # type: ignore[operator]
    try:
        state = {}
        for name, tensor in backbone.state_dict().items():
            if "lora_" in name:
                continue
            state[name.replace(".base_layer.", ".")] = tensor.detach().cpu().clone()
        return state
    finally:
        for layer in layers:
            layer.unmerge()  # type: ignore[operator]


def base_names_of_trainable(backbone: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """Original names of the tensors training changes (LoRA targets count as their base weights)."""
    found = []
    for name, param in backbone.named_parameters():
        if not param.requires_grad:
            continue
        if "lora_" in name:
            base = name.split(".lora_")[0] + ".weight"
            found.append((base, param))
        else:
            found.append((name.replace(".base_layer.", "."), param))
    return found
