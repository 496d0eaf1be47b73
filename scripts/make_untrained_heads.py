"""Write untrained heads for e5-small: one fixed random orthogonal projection per size (the baseline).

``.venv/bin/python scripts/make_untrained_heads.py OUT.safetensors``. Seeded, so the file is reproducible.
The packaged default model shipped these before its heads were trained (docs/default-model.md).
"""

from __future__ import annotations

import sys

import torch

from polycolbert.models.heads import ColBERTHeads

HIDDEN = 384
SEED = 0


def orthogonal_rows(dim: int, generator: torch.Generator) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(HIDDEN, dim, generator=generator))
    return q.T.contiguous()  # [dim, hidden] with orthonormal rows


def main() -> None:
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(SEED)
    heads = ColBERTHeads.from_weights({d: orthogonal_rows(d, generator) for d in (128, 96, 64)})
    tensors = {f"heads.{d}.weight": layer.weight.detach().contiguous() for d, layer in heads.layers.items()}
    if len(sys.argv) != 2:
        raise SystemExit("usage: make_untrained_heads.py OUT.safetensors")
    save_file(tensors, sys.argv[1])


if __name__ == "__main__":
    main()
