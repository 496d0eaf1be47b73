"""scifact encoded by the packaged default model at 128/96/64 dims, through the evaluation encoding cache.

Shared by ``benchmarks/qdrant_backend.py`` and the slow Qdrant agreement test: the first call encodes
(minutes on a CPU), every later call reads the cache in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SCIFACT = "/work/shared/data/scifact"
DIMS = (128, 96, 64)


@dataclass
class EncodedCorpus:
    dataset: object
    documents: dict[int, list[np.ndarray]]
    queries: dict[int, list[np.ndarray]]


def load_scifact_vectors(root: str = SCIFACT, dims: tuple[int, ...] = DIMS) -> EncodedCorpus:
    from rich.console import Console

    from polycolbert import ColBERT
    from polycolbert.eval.cache import default_cache_dir
    from polycolbert.eval.datasets import load_beir
    from polycolbert.eval.systems import ColBERTEncoder, _progress, encode_cached

    dataset = load_beir(root)
    encoder = ColBERTEncoder(ColBERT.load(), dims)
    wanted = [f"colbert-{d}" for d in dims]
    progress = _progress(Console(stderr=True))
    with progress:
        docs = encode_cached(encoder, dataset.corpus_texts, "document", wanted, default_cache_dir(), progress)
        queries = encode_cached(encoder, dataset.query_texts, "query", wanted, default_cache_dir(), progress)
    return EncodedCorpus(
        dataset,
        {d: [np.asarray(v, np.float32) for v in docs[f"colbert-{d}"]] for d in dims},
        {d: [np.asarray(v, np.float32) for v in queries[f"colbert-{d}"]] for d in dims},
    )


if __name__ == "__main__":
    import time

    t0 = time.perf_counter()
    corpus = load_scifact_vectors()
    print(
        len(corpus.documents[128]), "documents", len(corpus.queries[128]), "queries", time.perf_counter() - t0
    )
