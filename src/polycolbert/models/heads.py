"""ColBERT projection heads, one per Matryoshka size.

jina-colbert-v2 trains an independent linear head per output size (weight-tied Matryoshka heads hurt late
interaction, per its paper), so a checkpoint may hold several. When it holds only one, smaller sizes are
made by truncating the largest head's output and re-normalising; :attr:`ColBERTHeads.notes` says so,
because those vectors are an approximation the checkpoint's authors never trained.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn


class ColBERTHeads(nn.Module):
    """Linear maps ``hidden -> d`` (no activation), keyed by output size ``d``."""

    def __init__(self, hidden_size: int, dims: tuple[int, ...], bias: bool = False):
        super().__init__()
        if not dims:
            raise ValueError("a ColBERT model needs at least one projection head")
        self.hidden_size = hidden_size
        self.layers = nn.ModuleDict({str(d): nn.Linear(hidden_size, d, bias=bias) for d in dims})

    @property
    def trained_dims(self) -> tuple[int, ...]:
        return tuple(sorted((int(k) for k in self.layers), reverse=True))

    @classmethod
    def from_weights(
        cls, weights: Mapping[int, torch.Tensor], biases: Mapping[int, torch.Tensor] | None = None
    ):
        """Build heads from ``{dim: weight [dim, hidden]}`` (and optional biases)."""
        hidden = {w.shape[1] for w in weights.values()}
        if len(hidden) != 1:
            raise ValueError(f"projection heads disagree on the input size: {sorted(hidden)}")
        for dim, weight in weights.items():
            if weight.shape[0] != dim:
                raise ValueError(f"head for {dim} dims has weight of shape {tuple(weight.shape)}")
        heads = cls(hidden.pop(), tuple(weights), bias=bool(biases))
        with torch.no_grad():
            for dim, weight in weights.items():
                layer = heads.layers[str(dim)]
                assert isinstance(layer, nn.Linear)
                layer.weight.copy_(weight.float())
                if biases:
                    layer.bias.copy_(biases[dim].float())
        return heads

    def forward(self, states: torch.Tensor, dim: int) -> torch.Tensor:
        """Project ``[..., hidden]`` states to ``[..., dim]`` (not yet normalised)."""
        key = str(dim)
        if key in self.layers:
            return self.layers[key](states)
        larger = [d for d in self.trained_dims if d > dim]
        if not larger:
            raise ValueError(f"no head can produce {dim} dimensions (trained: {self.trained_dims})")
        return self.layers[str(min(larger))](states)[..., :dim]

    def notes(self) -> list[str]:
        top = max(self.trained_dims)
        if len(self.trained_dims) == 1:
            return [f"one trained head ({top} dims); smaller sizes are truncated and re-normalised"]
        return []
