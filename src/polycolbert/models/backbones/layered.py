"""Backbones that can be run in two halves, for top-layer training on cached lower-layer states."""

from __future__ import annotations

from typing import Protocol, cast, runtime_checkable

import torch
from torch import nn


@runtime_checkable
class LayeredBackbone(Protocol):
    """``upper(lower(ids, mask, k), mask, k)`` equals ``forward(ids, mask)`` for every ``k``."""

    @property
    def num_layers(self) -> int: ...

    def lower(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, upto: int) -> torch.Tensor: ...

    def upper(self, hidden: torch.Tensor, attention_mask: torch.Tensor, start: int) -> torch.Tensor: ...


def layered(backbone: nn.Module) -> LayeredBackbone:
    """The backbone as a :class:`LayeredBackbone`, or a clear error for one that cannot be split.

    Why a check, not a cast alone: a backbone without ``lower``/``upper`` would otherwise fail deep
    inside the lower-layer cache with an ``AttributeError``.
    """
    if not isinstance(backbone, LayeredBackbone):
        raise ValueError(
            f"{type(backbone).__name__} cannot run its layers in two halves: train with "
            "cache_lower_states=False (--no-cache-lower-states) or train only the heads"
        )
    return cast(LayeredBackbone, backbone)
