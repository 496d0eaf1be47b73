"""Stanford ColBERT's ``Checkpoint`` API over polycolbert's encoder.

Code written for ``colbert.modeling.checkpoint.Checkpoint`` keeps working:

>>> from polycolbert.compat.colbert import Checkpoint, ColBERTConfig
>>> checkpoint = Checkpoint("polycolbert-e5-small", colbert_config=ColBERTConfig(doc_maxlen=180))
>>> checkpoint.queryFromText(["what is late interaction?"]).shape
torch.Size([1, 32, 128])
>>> docs, lengths = checkpoint.docFromText(["one vector per token", "late interaction"], keep_dims="flatten")
>>> docs.shape[0] == sum(lengths)
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from polycolbert.encoding.encoder import ColBERT


@dataclass
class ColBERTConfig:
    """The subset of Stanford's ``ColBERTConfig`` that changes encoding (None: the checkpoint's value)."""

    query_maxlen: int | None = None
    doc_maxlen: int | None = None
    dim: int | None = None
    attend_to_mask_tokens: bool | None = None


class Checkpoint:
    """``Checkpoint(name, colbert_config)`` with ``queryFromText`` / ``docFromText`` and Stanford's shapes."""

    def __init__(self, name: str, colbert_config: ColBERTConfig | None = None, verbose: int = 0, **_: Any):
        config = colbert_config or ColBERTConfig()
        overrides: dict[str, Any] = {
            "query_maxlen": config.query_maxlen,
            "doc_maxlen": config.doc_maxlen,
            "attend_to_mask_tokens": config.attend_to_mask_tokens,
        }
        self.model = ColBERT.load(name, **{k: v for k, v in overrides.items() if v is not None})
        self.dim = self.model.check_dimensions(config.dim)
        self.colbert_config = config

    def queryFromText(  # Stanford's name
        self, queries: Sequence[str], bsize: int | None = None, to_cpu: bool = False, **_: Any
    ) -> torch.Tensor:
        """``[n, rows, dim]`` float tensor, one row per query token (masks included); queries of a model
        without query expansion have their own lengths, zero-padded to the longest (MaxSim ignores zeros)."""
        vectors = self.model.encode_queries(list(queries), dimensions=self.dim, batch_size=bsize or 32)
        rows = max((len(v) for v in vectors), default=0)
        padded = np.zeros((len(vectors), rows, self.dim), dtype=np.float32)
        for i, v in enumerate(vectors):
            padded[i, : len(v)] = v
        return torch.from_numpy(padded)

    def docFromText(  # Stanford's name
        self,
        docs: Sequence[str],
        bsize: int | None = None,
        keep_dims: bool | str = True,
        to_cpu: bool = False,
        showprogress: bool = False,
        return_tokens: bool = False,
        **_: Any,
    ) -> Any:
        """Stanford's three shapes: ``keep_dims=True`` a zero-padded ``[n, max_len, dim]`` tensor,
        ``False`` a list of ``[len_i, dim]`` tensors, ``"flatten"`` ``(tokens x dim tensor, lengths)``."""
        vectors = self.model.encode_documents(
            list(docs), dimensions=self.dim, batch_size=bsize or 32, progress=showprogress
        )
        tensors = [torch.from_numpy(v) for v in vectors]
        if keep_dims == "flatten":
            return torch.cat(tensors), [len(t) for t in tensors]
        if keep_dims is False:
            return tensors
        width = max(len(t) for t in tensors)
        padded = torch.zeros(len(tensors), width, self.dim)
        for i, t in enumerate(tensors):
            padded[i, : len(t)] = t
        return padded
