"""ColBERT projection heads, one per Matryoshka size.

jina-colbert-v2 trains an independent linear head per output size (weight-tied Matryoshka heads hurt late
interaction, per its paper), so a checkpoint may hold several. When it holds only one, smaller sizes are
made by truncating the largest head's output and re-normalising; :attr:`ColBERTHeads.notes` says so,
because those vectors are an approximation the checkpoint's authors never trained.

A head is usually one linear map. PyLate checkpoints may chain several Dense modules with activations and
residual connections (:class:`DenseLayer`); a chain whose activations are all the identity is folded into one
linear map when it is read, so only a truly non-linear chain is kept as modules.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn


class DenseLayer(nn.Module):
    """One PyLate ``Dense`` module: ``activation(linear(x))``, plus ``x`` (or ``projection(x)`` when the sizes
    differ) if it has a residual connection."""

    def __init__(
        self, linear: nn.Linear, activation: nn.Module, residual: bool, projection: nn.Linear | None = None
    ):
        super().__init__()
        self.linear = linear
        self.activation = activation
        self.residual = residual
        self.projection = projection

    @property
    def is_affine(self) -> bool:
        return isinstance(self.activation, nn.Identity)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        out = self.activation(self.linear(states))
        if self.residual:
            out = out + (states if self.projection is None else self.projection(states))
        return out


class ColBERTHeads(nn.Module):
    """Maps ``hidden -> d`` keyed by output size ``d``: linear (no activation) or a non-linear Dense chain."""

    def __init__(self, hidden_size: int, dims: tuple[int, ...], bias: bool = False):
        super().__init__()
        if not dims:
            raise ValueError("a ColBERT model needs at least one projection head")
        self.hidden_size = hidden_size
        self.layers = nn.ModuleDict({str(d): nn.Linear(hidden_size, d, bias=bias) for d in dims})

    @property
    def is_linear(self) -> bool:
        """True when every head is one ``nn.Linear`` (what training and polycolbert's own layout store)."""
        return all(isinstance(layer, nn.Linear) for layer in self.layers.values())

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

    @classmethod
    def from_modules(cls, modules: Mapping[int, nn.Module], hidden_size: int) -> ColBERTHeads:
        """Heads that are arbitrary modules ``hidden -> d`` (a non-linear PyLate Dense chain)."""
        heads = cls(hidden_size, tuple(modules))
        heads.layers = nn.ModuleDict({str(d): module for d, module in modules.items()})
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
