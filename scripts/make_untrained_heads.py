"""Write the packaged default model's untrained heads: one fixed random orthogonal projection per size.

Run once: ``.venv/bin/python scripts/make_untrained_heads.py``. Seeded, so the file is reproducible;
the quality issue's training replaces these heads with trained ones.
"""

from __future__ import annotations

import torch

from polycolbert.models.catalog import packaged_folder
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
    save_file(tensors, str(packaged_folder("polycolbert-e5-small") / "heads.safetensors"))


if __name__ == "__main__":
    main()
