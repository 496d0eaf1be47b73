"""scifact encoded by the packaged default model at 128/96/64 dims, through the evaluation encoding cache.

Shared by the slow scifact tests (``tests/backends/test_qdrant.py``, ``tests/index/test_index_scifact.py``)
and the benchmarks that measure on scifact (``benchmarks/qdrant_backend.py``, ``benchmarks/index.py``,
which put ``tests/`` on their path): the first call encodes (most of an hour on a 2-core CPU), every later
call reads the cache in seconds. ``python tests/scifact_vectors.py [SAMPLE]`` fills the cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

SCIFACT = "/work/shared/data/scifact"
DIMS = (128, 96, 64)


@dataclass
class EncodedCorpus:
    dataset: object
    documents: dict[int, list[np.ndarray]]
    queries: dict[int, list[np.ndarray]]


def sample_corpus(dataset: Any, size: int, seed: int = 0) -> Any:
    """Every judged-relevant document plus random others up to ``size``: a smaller corpus whose queries
    still have their answers (absolute nDCG rises, but exhaustive vs prefetch stay comparable)."""
    from polycolbert.eval.datasets import Dataset

    relevant = {d for judged in dataset.qrels.values() for d, g in judged.items() if g > 0}
    keep = [i for i, d in enumerate(dataset.corpus_ids) if d in relevant]
    others = [i for i, d in enumerate(dataset.corpus_ids) if d not in relevant]
    rng = np.random.default_rng(seed)
    extra = rng.choice(len(others), size=max(0, min(len(others), size - len(keep))), replace=False)
    chosen = sorted(keep + [others[j] for j in extra])
    return Dataset(
        name=f"{dataset.name}-sample{len(chosen)}",
        corpus_ids=[dataset.corpus_ids[i] for i in chosen],
        corpus_texts=[dataset.corpus_texts[i] for i in chosen],
        query_ids=dataset.query_ids,
        query_texts=dataset.query_texts,
        qrels=dataset.qrels,
    )


def subset(corpus: EncodedCorpus, size: int, seed: int = 0) -> EncodedCorpus:
    """The ``sample_corpus`` selection taken from an already encoded full corpus (no re-encoding)."""
    small: Any = sample_corpus(corpus.dataset, size, seed)
    position = {doc_id: i for i, doc_id in enumerate(corpus.dataset.corpus_ids)}  # type: ignore[attr-defined]
    keep = [position[doc_id] for doc_id in small.corpus_ids]
    return EncodedCorpus(
        small, {d: [vs[i] for i in keep] for d, vs in corpus.documents.items()}, dict(corpus.queries)
    )


def load_scifact_vectors(
    root: str = SCIFACT, dims: tuple[int, ...] = DIMS, sample: int | None = None
) -> EncodedCorpus:
    from rich.console import Console

    from polycolbert import ColBERT
    from polycolbert.eval.cache import default_cache_dir
    from polycolbert.eval.datasets import load_beir
    from polycolbert.eval.systems import ColBERTEncoder, _progress, encode_cached

    dataset = load_beir(root)
    if sample is not None:
        dataset = sample_corpus(dataset, sample)
    encoder = ColBERTEncoder(ColBERT.load(), dims)
    wanted = [f"colbert-{d}" for d in dims]
    progress = _progress(Console(stderr=True))
    with progress:
        # Chunks of 256: each is cached as soon as it is encoded, so an interrupted run resumes.
        docs: dict[str, list[np.ndarray]] = {name: [] for name in wanted}
        for start in range(0, len(dataset.corpus_texts), 256):
            chunk = dataset.corpus_texts[start : start + 256]
            for name, vectors in encode_cached(
                encoder, chunk, "document", wanted, default_cache_dir(), progress
            ).items():
                docs[name].extend(vectors)
        queries = encode_cached(encoder, dataset.query_texts, "query", wanted, default_cache_dir(), progress)
    return EncodedCorpus(
        dataset,
        {d: [np.asarray(v, np.float32) for v in docs[f"colbert-{d}"]] for d in dims},
        {d: [np.asarray(v, np.float32) for v in queries[f"colbert-{d}"]] for d in dims},
    )


if __name__ == "__main__":
    import sys
    import time

    t0 = time.perf_counter()
    corpus = load_scifact_vectors(sample=int(sys.argv[1]) if len(sys.argv) > 1 else None)
    print(
        len(corpus.documents[128]), "documents", len(corpus.queries[128]), "queries", time.perf_counter() - t0
    )
