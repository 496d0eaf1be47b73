"""Rotary position embeddings, rotate-half form (GPT-NeoX / flash-attn ``interleaved=False``).

jina-colbert-v2 rotates the full head dimension of q and k with ``inv_freq_i = base^(-2i/dim)``; the
score of a query-key pair then depends only on their distance, which is what lets it reach 8192 tokens.
"""

from __future__ import annotations

import torch
from torch import nn


class RotaryEmbedding(nn.Module):
    """cos/sin tables for positions ``0..L-1``, grown on demand and kept in float32."""

    def __init__(self, dim: int, base: float = 10000.0):
        super().__init__()
        if dim % 2:
            raise ValueError(f"rotary dimension must be even; got {dim}")
        self.dim = dim
        self.base = float(base)
        self.inv_freq = 1.0 / (self.base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
        self._cos = torch.empty(0)
        self._sin = torch.empty(0)

    def tables(self, length: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if self._cos.shape[0] < length or self._cos.device != device:
            size = max(length, 2 * self._cos.shape[0])
            positions = torch.arange(size, dtype=torch.float32, device=device)
            freqs = torch.outer(positions, self.inv_freq.to(device))
            angles = torch.cat([freqs, freqs], dim=-1)  # [f, f]: the rotate-half layout
            self._cos, self._sin = angles.cos(), angles.sin()
        return self._cos[:length], self._sin[:length]


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat([-second, first], dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x [B, heads, S, head_dim]`` by position; tables are ``[S, head_dim]``."""
    dtype = x.dtype
    rotated = x.float() * cos + rotate_half(x.float()) * sin
    return rotated.to(dtype)
