"""The frozen lower layers of the backbone, computed once, so that training its top layers costs only them.

Training the top ``k`` of ``n`` layers leaves layers ``0..n-k`` unchanged, so their output for every
training text is the same at every step. Keeping it (fp16, one window per text) turns each step into
``k`` layers of forward and backward instead of ``n``: on a 2-core CPU, 2 of e5-small's 12 layers train at
about a sixth of the full model's cost, which is what makes backbone training possible there at all.
``upper(...)`` over a cached entry equals the whole backbone's output (tests check the split).

>>> import torch
>>> hidden, attention = torch.zeros(5, 4, dtype=torch.float16), torch.tensor([1, 1, 1, 1, 0])
>>> entry = LowerStates(hidden, attention, source_rows=torch.tensor([1, 2]))
>>> entry.hidden.shape[0], len(entry.source_rows)
(5, 2)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import torch

from polycolbert.encoding.encoder import ColBERT, DType, resolve_dtype
from polycolbert.encoding.recipe import length_sorted_batches
from polycolbert.models.backbones.layered import layered


@dataclass
class LowerStates:
    """One text's window after the lower layers: every position (the top layers attend to all of them)
    and which positions become the text's output rows."""

    hidden: torch.Tensor  # [length, hidden], fp16
    attention: torch.Tensor  # [length], long: the window's own mask (query padding may be unattended)
    source_rows: torch.Tensor  # [rows], long


class LowerStateCache:
    """Lower-layer states of every distinct training query and document."""

    def __init__(
        self,
        model: ColBERT,
        queries: Sequence[str],
        documents: Sequence[str],
        doc_maxlen: int,
        upto: int,
        batch_size: int = 32,
        progress: bool = True,
        dtype: DType = "auto",
    ):
        self.upto = upto
        encode = partial(
            encode_lower,
            model,
            doc_maxlen=doc_maxlen,
            upto=upto,
            batch_size=batch_size,
            progress=progress,
            dtype=dtype,
        )
        self.queries = encode(queries, "query")
        self.documents = encode(documents, "document")


def encode_lower(
    model: ColBERT,
    texts: Sequence[str],
    kind: str,
    doc_maxlen: int,
    upto: int,
    batch_size: int = 32,
    progress: bool = True,
    dtype: DType = "auto",
) -> dict[str, LowerStates]:
    """States after layer ``upto`` of each distinct text. Every text must fit one window: training sees
    what one forward pass sees, so ``doc_maxlen`` has to stay within the backbone's positions.

    ``dtype="auto"`` runs the frozen layers in bf16 where the hardware has it (as inference does by
    default): much faster on a CPU with AMX (docs/benchmarks.md), and the cache is fp16 anyway."""
    compute = resolve_dtype(dtype, model.device)
    autocast = torch.autocast(model.device.type, dtype=compute, enabled=compute != torch.float32)
    backbone = layered(model.backbone)
    layers = backbone.num_layers
    if not 0 <= upto <= layers:
        raise ValueError(f"cannot cache after layer {upto}: the backbone has {layers} layers")
    unique = list(dict.fromkeys(texts))
    if kind == "document":
        tokenized = model.recipe.tokenize_documents(unique, doc_maxlen=doc_maxlen)
    else:
        tokenized = model.recipe.tokenize_queries(unique)
    too_long = [text for text, t in zip(unique, tokenized, strict=True) if len(t.windows) > 1]
    if too_long:
        raise ValueError(
            f"{len(too_long)} {kind} texts need more than one window at doc_maxlen={doc_maxlen}; "
            f"caching lower layers needs one window per text (lower doc_maxlen), e.g. {too_long[0][:60]!r}"
        )
    windows = [t.windows[0] for t in tokenized]
    lengths = [len(w.ids) for w in windows]
    found: dict[str, LowerStates] = {}
    bar = None
    if progress:
        from rich.progress import Progress

        bar = Progress(transient=True)
        bar.start()
        task = bar.add_task(f"lower layers ({kind})", total=len(unique))
    try:
        with torch.no_grad(), autocast:  # not inference_mode: cached tensors feed autograd later
            for batch in length_sorted_batches(lengths, batch_size, 16_384):
                width = max(lengths[i] for i in batch)
                ids = torch.full((len(batch), width), model.spec.pad_id, dtype=torch.long)
                attention = torch.zeros((len(batch), width), dtype=torch.long)
                for row, i in enumerate(batch):
                    ids[row, : lengths[i]] = torch.tensor(windows[i].ids)
                    attention[row, : lengths[i]] = torch.tensor(windows[i].attention)
                hidden = backbone.lower(ids.to(model.device), attention.to(model.device), upto)
                for row, i in enumerate(batch):
                    found[unique[i]] = LowerStates(
                        hidden[row, : lengths[i]].half().cpu().clone(),
                        torch.tensor(windows[i].attention, dtype=torch.long),
                        torch.tensor(windows[i].source_rows, dtype=torch.long),
                    )
                if bar is not None:
                    bar.advance(task, len(batch))
    finally:
        if bar is not None:
            bar.stop()
    return found


def run_upper(model: ColBERT, entries: Sequence[LowerStates], start: int) -> list[torch.Tensor]:
    """The backbone's last-layer output rows of each entry (with gradients when enabled)."""
    device = model.device
    width = max(len(e.hidden) for e in entries)
    hidden = torch.zeros(len(entries), width, entries[0].hidden.shape[-1], device=device)
    attention = torch.zeros(len(entries), width, dtype=torch.long, device=device)
    for row, entry in enumerate(entries):
        hidden[row, : len(entry.hidden)] = entry.hidden.to(device).float()
        attention[row, : len(entry.hidden)] = entry.attention.to(device)
    states = layered(model.backbone).upper(hidden, attention, start)
    return [states[row, entry.source_rows.to(device)] for row, entry in enumerate(entries)]


def final_states(
    model: ColBERT, table: dict[str, LowerStates], start: int, batch_size: int = 64
) -> dict[str, torch.Tensor]:
    """fp16 last-layer rows of every cached text under the model's current top layers (no gradients)."""
    texts = list(table)
    lengths = [len(table[t].hidden) for t in texts]
    out: dict[str, torch.Tensor] = {}
    with torch.no_grad():  # not inference_mode: cached tensors feed autograd later
        for batch in length_sorted_batches(lengths, batch_size, 16_384):
            rows = run_upper(model, [table[texts[i]] for i in batch], start)
            for i, r in zip(batch, rows, strict=True):
                out[texts[i]] = r.half().cpu()
    return out
