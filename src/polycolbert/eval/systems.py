"""The retrieval systems compared side by side, each turning a :class:`Dataset` into a TREC-style run.

* ``bm25``: :class:`polycolbert.lexical.BM25Index`;
* ``dense``: the e5 backbone's own embedding (``query: ``/``passage: `` prefixes, mean pooling over every
  token, L2-normalised), the reference a ColBERT built on it has to beat;
* ``colbert-raw``: MaxSim over the same pass's raw token states (384-d, L2-normalised, all tokens), i.e.
  what the backbone offers before any head is trained;
* ``colbert-<d>``: exhaustive MaxSim with the ColBERT model at ``d`` dims (one backbone pass gives every
  size, via ``ColBERT.encode_multi``);
* ``colbert-<d>+dense``, ``+bm25``, ``+dense+bm25``: ColBERT's candidates ranked again with the other
  signals' scores of the same run (:mod:`polycolbert.eval.fusion`).

``dense`` and ``colbert-raw`` come from one backbone pass, and all three ColBERT sizes from one more, so
a corpus is encoded at most twice; every encoding goes through :class:`EncodingCache`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from polycolbert.encoding.encoder import ColBERT, InputType
from polycolbert.encoding.recipe import length_sorted_batches
from polycolbert.eval.cache import EncodingCache, fingerprint_modules
from polycolbert.eval.datasets import Dataset
from polycolbert.eval.exhaustive import ranked_runs
from polycolbert.eval.fusion import FUSED_SYSTEMS
from polycolbert.lexical import BM25Index
from polycolbert.models.spec import MATRYOSHKA_DIMS
from polycolbert.scoring import maxsim_buckets

ALL_SYSTEMS = ("bm25", "dense", "colbert-raw", *(f"colbert-{d}" for d in MATRYOSHKA_DIMS), *FUSED_SYSTEMS)
E5_PREFIX = {"query": "query: ", "document": "passage: "}
E5_MAX_TOKENS = 512  # position table of multilingual-e5-small: longer texts are cut (as e5 itself does)
BATCH_TOKENS = 8192
CACHE_CHUNK = 1024  # texts encoded between two cache writes

Run = dict[str, dict[str, float]]


class MultiEncoder(Protocol):
    """Encodes texts into several named outputs in one pass (``{output: [n_rows, dims] per text}``)."""

    identity: str

    def outputs(self) -> dict[str, int]: ...

    def encode(self, texts: Sequence[str], side: str, progress: Progress) -> dict[str, list[np.ndarray]]: ...


def _progress(console: Console | None) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[unit]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=console is None,
    )


def _autocast(enabled: bool) -> Any:
    return torch.autocast("cpu", dtype=torch.bfloat16) if enabled else nullcontext()


class E5Encoder:
    """``dense`` and ``colbert-raw`` vectors from one pass of an e5-style backbone."""

    def __init__(self, backbone: torch.nn.Module, tokenizer: Any, bf16: bool = False, name: str = "e5"):
        self.backbone = backbone.eval()
        self.tokenizer = tokenizer
        self.bf16 = bf16
        self.cls_id = tokenizer.token_to_id("<s>")
        self.sep_id = tokenizer.token_to_id("</s>")
        self.pad_id = tokenizer.token_to_id("<pad>")
        if None in (self.cls_id, self.sep_id, self.pad_id):
            raise ValueError("the e5 tokenizer must define <s>, </s> and <pad>")
        hidden = next(p for p in backbone.parameters() if p.ndim == 2).shape[1]
        self.hidden = int(hidden)
        self.identity = f"{name}-{'bf16' if bf16 else 'fp32'}-{fingerprint_modules([backbone])}"

    def outputs(self) -> dict[str, int]:
        return {"dense": self.hidden, "colbert-raw": self.hidden}

    def _ids(self, texts: Sequence[str], side: str) -> list[list[int]]:
        prefix = E5_PREFIX[side]
        tokenizer = self.tokenizer
        if getattr(tokenizer, "padding", None) or getattr(tokenizer, "truncation", None):
            # A shared tokenizer set up to pad or truncate would change our ids; use a plain copy.
            tokenizer = type(tokenizer).from_str(tokenizer.to_str())
            tokenizer.no_padding()
            tokenizer.no_truncation()
        encoded = tokenizer.encode_batch([prefix + t for t in texts], add_special_tokens=False)
        return [[self.cls_id, *e.ids[: E5_MAX_TOKENS - 2], self.sep_id] for e in encoded]

    @torch.inference_mode()
    def encode(self, texts: Sequence[str], side: str, progress: Progress) -> dict[str, list[np.ndarray]]:
        ids = self._ids(texts, side)
        lengths = [len(i) for i in ids]
        dense: list[np.ndarray] = [np.empty(0)] * len(texts)
        raw: list[np.ndarray] = [np.empty(0)] * len(texts)
        task = progress.add_task(f"e5 {side}s", total=sum(lengths), unit="tokens")
        for batch in length_sorted_batches(lengths, 64, BATCH_TOKENS):
            width = max(lengths[i] for i in batch)
            input_ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                input_ids[row, : lengths[i]] = torch.tensor(ids[i])
                mask[row, : lengths[i]] = 1
            with _autocast(self.bf16):
                states = self.backbone(input_ids, mask)
            states = states.float()
            weights = mask.unsqueeze(-1).float()
            pooled = F.normalize((states * weights).sum(1) / weights.sum(1), dim=-1).numpy()
            tokens = F.normalize(states, dim=-1).numpy()
            for row, i in enumerate(batch):
                dense[i] = pooled[row : row + 1]
                raw[i] = tokens[row, : lengths[i]].copy()
            progress.advance(task, sum(lengths[i] for i in batch))
        progress.remove_task(task)
        return {"dense": dense, "colbert-raw": raw}


class ColBERTEncoder:
    """``colbert-<d>`` vectors for every Matryoshka size, from one pass of a :class:`polycolbert.ColBERT`."""

    def __init__(self, model: ColBERT, dims: Sequence[int] = MATRYOSHKA_DIMS):
        self.model = model
        self.dims = tuple(d for d in dims if d in model.dims)
        if not self.dims:
            raise ValueError(f"model {model.name} offers none of the dims {tuple(dims)}")
        modules = [getattr(model, "backbone", None), getattr(model, "heads", None)]
        # Everything the vectors depend on (weights, recipe, dtype), not where the checkpoint lies: a
        # clone elsewhere reads the same cache.
        settings = {key: value for key, value in model.info().items() if key != "source"}
        self.identity = f"{model.name}-{model.compute_dtype}-{fingerprint_modules(modules, repr(settings))}"

    def outputs(self) -> dict[str, int]:
        return {f"colbert-{d}": d for d in self.dims}

    def encode(self, texts: Sequence[str], side: str, progress: Progress) -> dict[str, list[np.ndarray]]:
        out: dict[str, list[np.ndarray]] = {f"colbert-{d}": [] for d in self.dims}
        task = progress.add_task(f"colbert {side}s", total=len(texts), unit="texts")
        # Chunks of length-sorted texts: the progress bar moves, and each chunk batches tightly inside.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        slots: dict[str, list[np.ndarray]] = {name: [np.empty(0)] * len(texts) for name in out}
        for start in range(0, len(order), 256):
            chunk = order[start : start + 256]
            # batch_size 128: encode_multi has a large fixed cost per batch (docs/benchmarks.md, "Where the
            # constants come from"); its token budget per batch still bounds memory.
            kind = cast(InputType, side)
            vectors = self.model.encode_multi([texts[i] for i in chunk], kind, self.dims, batch_size=128)
            for d in self.dims:
                for i, v in zip(chunk, vectors[d], strict=True):
                    slots[f"colbert-{d}"][i] = v
            progress.advance(task, len(chunk))
        progress.remove_task(task)
        return slots


def encode_cached(
    encoder: MultiEncoder,
    texts: Sequence[str],
    side: str,
    wanted: Sequence[str],
    cache_root: Path,
    progress: Progress,
) -> dict[str, list[np.ndarray]]:
    """Vectors for each wanted output; texts missing from any output's cache are encoded once for all."""
    sizes = encoder.outputs()
    caches = {
        name: EncodingCache(cache_root, encoder.identity, f"{side}-{name}", sizes[name]) for name in wanted
    }
    missing = {t for cache in caches.values() for t in cache.missing(texts)}
    todo = list(dict.fromkeys(t for t in texts if t in missing))
    # Stored chunk by chunk, so an interrupted run (a long corpus, a busy machine) keeps what it encoded.
    for start in range(0, len(todo), CACHE_CHUNK):
        chunk = todo[start : start + CACHE_CHUNK]
        fresh = encoder.encode(chunk, side, progress)
        for name, cache in caches.items():
            cache.put(chunk, fresh[name])
    return {name: cache.get(texts) for name, cache in caches.items()}


@dataclass
class SystemRun:
    """One system's top-k per query and where its time went (seconds); ``scores`` holds the full
    ``[queries, documents]`` matrix when a fused system needs it."""

    run: Run
    timings: dict[str, float] = field(default_factory=dict)
    scores: np.ndarray | None = None


def run_bm25(dataset: Dataset, k: int, keep_scores: bool = False) -> SystemRun:
    t0 = time.perf_counter()
    index = BM25Index(dataset.corpus_texts, dataset.doc_languages)
    t1 = time.perf_counter()
    scores = np.stack(
        [index.scores(q, lang) for q, lang in zip(dataset.query_texts, dataset.query_languages, strict=True)]
    )
    run = _keep_scored(scores, dataset, k)
    timings = {"index": t1 - t0, "search": time.perf_counter() - t1}
    return SystemRun(run, timings, scores if keep_scores else None)


def _keep_scored(scores: np.ndarray, dataset: Dataset, k: int) -> Run:
    """Top-k per query, dropping BM25's zero scores (documents sharing no term were not retrieved)."""
    ranked = ranked_runs(scores, dataset.corpus_ids, k)
    return {
        qid: {did: s for did, s in docs.items() if s > 0}
        for qid, docs in zip(dataset.query_ids, ranked, strict=True)
    }


def run_vector_systems(
    dataset: Dataset,
    encoder: MultiEncoder,
    wanted: Sequence[str],
    cache_root: Path,
    k: int,
    console: Console | None = None,
    on_system: Callable[[str], None] | None = None,
    keep_scores: Collection[str] = (),
) -> dict[str, SystemRun]:
    """Encode (through the cache) and score every wanted output of ``encoder`` exhaustively (the
    outputs named in ``keep_scores`` keep their score matrices)."""
    results: dict[str, SystemRun] = {}
    with _progress(console) as progress:
        t0 = time.perf_counter()
        docs = encode_cached(encoder, dataset.corpus_texts, "document", wanted, cache_root, progress)
        t1 = time.perf_counter()
        queries = encode_cached(encoder, dataset.query_texts, "query", wanted, cache_root, progress)
        t2 = time.perf_counter()
        for name in wanted:
            task = progress.add_task(f"MaxSim {name}", total=len(dataset.corpus_ids), unit="docs")
            start = time.perf_counter()
            scores = maxsim_buckets(queries[name], docs[name], on_bucket=partial(progress.advance, task))
            ranked = ranked_runs(scores, dataset.corpus_ids, k)
            progress.remove_task(task)
            run = dict(zip(dataset.query_ids, ranked, strict=True))
            results[name] = SystemRun(
                run,
                {
                    "encode_documents": t1 - t0,
                    "encode_queries": t2 - t1,
                    "search": time.perf_counter() - start,
                },
                scores if name in keep_scores else None,
            )
            if on_system is not None:
                on_system(name)
    return results
