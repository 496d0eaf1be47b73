"""``ColBERT``: the one object the rest of polycolbert uses to turn text into token vectors.

>>> from polycolbert import ColBERT
>>> model = ColBERT.load()                                  # the packaged default model
>>> [q.shape for q in model.encode_queries(["what is late interaction?"])]
[(32, 128)]
>>> docs = model.encode_documents(["Late interaction keeps one vector per token."], dimensions=64)
>>> docs[0].shape[1]
64
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from polycolbert.encoding.int8 import calibration_texts, input_maxima, linear_layers, smooth_int8_layers
from polycolbert.encoding.precision import (
    DType,
    Precision,
    autocast_dtype,
    choose_precision,
    onednn_linear_layers,
)
from polycolbert.encoding.recipe import Recipe, TokenizedText, length_sorted_batches
from polycolbert.models.catalog import DEFAULT_MODEL, resolve
from polycolbert.models.checkpoint import LoadedCheckpoint, load_checkpoint
from polycolbert.models.spec import ModelSpec

InputType = Literal["query", "document"]
# Pseudo-dimensions ``encode_multi`` accepts besides the sizes a model offers:
NORMALISED_STATES = 0  # the backbone's own token states, L2-normalised, before any head
STATES = -1  # the backbone's token states as they are (what heads are trained on)
# Padded tokens per forward pass: larger batches of long windows run slower on the CPU (attention
# scores outgrow the cache; docs/benchmarks.md, "Batch size for long windows").
MAX_BATCH_TOKENS = 4096


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """The autocast dtype ``dtype`` comes to (int8 layers compute around float32 activations)."""
    return autocast_dtype(choose_precision(dtype, device))


class ColBERT:
    """A ColBERT-family model ready to encode: backbone, heads, tokenizer and recipe."""

    def __init__(self, loaded: LoadedCheckpoint, dtype: DType = "auto", device: str | None = None):
        self.spec: ModelSpec = loaded.spec
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.backbone = loaded.backbone.to(self.device).eval()
        self.heads = loaded.heads.to(self.device).eval()
        self.tokenizer = loaded.tokenizer
        self.checkpoint_extra = loaded.extra  # what the trainer needs to save a derived checkpoint
        self.recipe = Recipe(self.spec, self.tokenizer, loaded.skiplist)
        self.precision: Precision = choose_precision(dtype, self.device)
        self.compute_dtype = autocast_dtype(self.precision)
        if self.precision == "int8":
            self._smooth_int8()
        elif self.device.type == "cpu":
            onednn_linear_layers(self.backbone)

    @classmethod
    def load(
        cls,
        name_or_path: str | os.PathLike[str] = DEFAULT_MODEL,
        *,
        dtype: DType = "auto",
        device: str | None = None,
        **overrides: Any,
    ) -> ColBERT:
        """Load a model by catalogue name, hub id or folder; ``overrides`` change recipe defaults."""
        folder = resolve(name_or_path)
        name = None if Path(os.fspath(name_or_path)).is_dir() else os.fspath(name_or_path)
        return cls(load_checkpoint(folder, name=name, **overrides), dtype=dtype, device=device)

    def _smooth_int8(self) -> None:
        """Swap the backbone's linear layers for smoothed int8 ones, calibrated on the shipped texts in
        float32 (``encoding/int8.py``); a second or two at load, nothing per call."""
        names = list(linear_layers(self.backbone))
        calibration = self.tokenize(calibration_texts(), "document")
        maxima = input_maxima(self.backbone, lambda: self._run(calibration, (STATES,), 32, False), names)
        smooth_int8_layers(self.backbone, maxima)

    # -- description ------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def dims(self) -> tuple[int, ...]:
        return self.spec.dims

    def info(self) -> dict[str, Any]:
        spec = self.spec
        return {
            "name": spec.name,
            "layout": spec.layout,
            "backbone": spec.backbone,
            "hidden_size": spec.hidden_size,
            "dimensions": list(spec.dims),
            "trained_head_dimensions": list(spec.head_dims),
            "default_dimensions": spec.default_dim,
            "query_maxlen": spec.query_maxlen,
            "doc_maxlen": spec.doc_maxlen,
            "max_positions_per_window": spec.max_positions,
            "attend_to_mask_tokens": spec.attend_to_mask_tokens,
            "query_padding": spec.query_padding,
            "compute_dtype": self.precision,
            "license": spec.license,
            "source": spec.source,
            "notes": list(spec.notes),
        }

    def check_dimensions(self, dimensions: int | None) -> int:
        if dimensions is None:
            return self.spec.default_dim
        if isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions not in self.dims:
            offered = ", ".join(str(d) for d in self.dims)
            raise ValueError(f"dimensions must be one of {offered} for model {self.name}; got {dimensions!r}")
        return dimensions

    # -- encoding ---------------------------------------------------------------------------------
    def tokenize(self, texts: Sequence[str], input_type: InputType) -> list[TokenizedText]:
        if input_type == "query":
            return self.recipe.tokenize_queries(texts)
        if input_type == "document":
            return self.recipe.tokenize_documents(texts)
        raise ValueError(f"input_type must be 'query' or 'document'; got {input_type!r}")

    def encode_queries(
        self,
        texts: Sequence[str],
        dimensions: int | None = None,
        batch_size: int = 32,
        progress: bool = False,
    ) -> list[np.ndarray]:
        """One float32 ``[query_maxlen, dimensions]`` array per query: unit vectors, except that a model
        with ``query_padding="zero"`` (the default model) leaves the rows after the real tokens zero, and
        one with ``query_padding="none"`` (PyLate without query expansion) returns only the real rows."""
        dim = self.check_dimensions(dimensions)
        return self.encode_multi(texts, "query", (dim,), batch_size, progress)[dim]

    def encode_documents(
        self,
        texts: Sequence[str],
        dimensions: int | None = None,
        batch_size: int = 32,
        progress: bool = False,
    ) -> list[np.ndarray]:
        """One float32 ``[kept_tokens, dimensions]`` array of unit vectors per document."""
        dim = self.check_dimensions(dimensions)
        return self.encode_multi(texts, "document", (dim,), batch_size, progress)[dim]

    def encode_multi(
        self,
        texts: Sequence[str],
        input_type: InputType,
        dims: Iterable[int],
        batch_size: int = 32,
        progress: bool = False,
    ) -> dict[int, list[np.ndarray]]:
        """Several output sizes from one backbone pass.

        ``NORMALISED_STATES`` (0) gives the normalised backbone states, ``STATES`` (-1) the unnormalised
        ones.
        """
        wanted = self._checked_dims(dims)
        return self._run(self.tokenize(texts, input_type), wanted, batch_size, progress)

    def encode_tokenized(
        self, tokenized: list[TokenizedText], dims: Iterable[int], batch_size: int = 32
    ) -> dict[int, list[np.ndarray]]:
        """Encode texts already prepared by :meth:`tokenize` (the server validates before it queues)."""
        return self._run(tokenized, self._checked_dims(dims), batch_size, False)

    def _checked_dims(self, dims: Iterable[int]) -> tuple[int, ...]:
        """Requested sizes, deduplicated in order; the pseudo-dimensions pass, others must be offered."""
        wanted = tuple(dict.fromkeys(dims))
        for dim in wanted:
            if dim not in (NORMALISED_STATES, STATES):
                self.check_dimensions(dim)
        return wanted

    def count_tokens(self, texts: Sequence[str], input_type: InputType) -> list[int]:
        """Tokens each input costs, as Jina's ``usage`` counts them (a query costs query_maxlen, or its
        real tokens for ``query_padding="none"``)."""
        return [t.n_tokens for t in self.tokenize(texts, input_type)]

    def forward_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Backbone token states with gradients (training); callers apply heads and normalise."""
        return self.backbone(input_ids, attention_mask)

    def _autocast(self) -> Any:
        if self.compute_dtype == torch.float32:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.compute_dtype)

    @torch.inference_mode()
    def _run(
        self, tokenized: list[TokenizedText], dims: tuple[int, ...], batch_size: int, progress: bool
    ) -> dict[int, list[np.ndarray]]:
        outputs = {
            d: [np.zeros((t.n_rows, d if d > 0 else self.spec.hidden_size), np.float32) for t in tokenized]
            for d in dims
        }
        windows = [(i, w) for i, t in enumerate(tokenized) for w in t.windows]
        lengths = [len(w.ids) for _, w in windows]
        batches = list(length_sorted_batches(lengths, batch_size, MAX_BATCH_TOKENS))
        bar = _progress(progress, sum(lengths))
        with bar or nullcontext():
            task = bar.add_task("encoding", total=sum(lengths)) if bar else None
            for batch in batches:
                self._run_batch([windows[j] for j in batch], dims, outputs)
                if bar is not None and task is not None:
                    bar.advance(task, sum(lengths[j] for j in batch))
        return outputs

    def _run_batch(self, items: list, dims: tuple[int, ...], outputs: dict[int, list[np.ndarray]]) -> None:
        width = max(len(w.ids) for _, w in items)
        ids = torch.full((len(items), width), self.spec.pad_id, dtype=torch.long)
        attention = torch.zeros((len(items), width), dtype=torch.long)
        rows_b: list[int] = []
        rows_s: list[int] = []
        targets = []  # (text index, output rows, slice of the gathered rows)
        for b, (text_index, window) in enumerate(items):
            ids[b, : len(window.ids)] = torch.tensor(window.ids)
            attention[b, : len(window.attention)] = torch.tensor(window.attention)
            start = len(rows_s)
            rows_b += [b] * len(window.source_rows)
            rows_s += window.source_rows
            targets.append((text_index, np.asarray(window.target_rows), slice(start, len(rows_s))))
        with self._autocast():
            states = self.backbone(ids.to(self.device), attention.to(self.device))
            rows = states[torch.tensor(rows_b), torch.tensor(rows_s)]
            for dim in dims:
                if dim == STATES:
                    vectors = rows.float().cpu().numpy()
                else:
                    projected = rows if dim == NORMALISED_STATES else self.heads(rows, dim)
                    vectors = F.normalize(projected.float(), p=2, dim=-1).cpu().numpy()
                for text_index, target_rows, taken in targets:
                    outputs[dim][text_index][target_rows] = vectors[taken]


def _progress(enabled: bool, total: int) -> Any:
    if not enabled or total == 0:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("tokens"),
        TimeRemainingColumn(),
        transient=True,
    )
