"""One evaluation run: every requested system on every dataset, scored with the same metrics.

The CLI (``polycolbert eval``) only parses options and calls :func:`evaluate`; tests call it directly with
small models.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rich.console import Console

from polycolbert.encoding.encoder import ColBERT
from polycolbert.eval.datasets import Dataset
from polycolbert.eval.fusion import bm25_gate, components, fused_run, fusion_of, parse_fused
from polycolbert.eval.metrics import evaluate as score_run
from polycolbert.eval.report import DatasetResult
from polycolbert.eval.systems import (
    ALL_SYSTEMS,
    ColBERTEncoder,
    E5Encoder,
    SystemRun,
    run_bm25,
    run_vector_systems,
)
from polycolbert.models.spec import MATRYOSHKA_DIMS

E5_SYSTEMS = ("dense", "colbert-raw")


def parse_systems(text: str) -> list[str]:
    """``"bm25,colbert-128"`` -> ``["bm25", "colbert-128"]``; ``"all"`` -> every system."""
    if text.strip() == "all":
        return list(ALL_SYSTEMS)
    chosen = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in ALL_SYSTEMS]
    if unknown or not chosen:
        raise ValueError(
            f"unknown system(s) {unknown or text!r}; choose from {', '.join(ALL_SYSTEMS)} or 'all'"
        )
    return list(dict.fromkeys(chosen))


def required(systems: Sequence[str]) -> list[str]:
    """``systems`` plus the ones their fused systems are computed from."""
    return list(dict.fromkeys([*systems, *components(systems)]))


def colbert_dims(systems: Sequence[str]) -> list[int]:
    """ColBERT sizes to encode for ``systems`` (fused ones included)."""
    return [d for d in MATRYOSHKA_DIMS if f"colbert-{d}" in required(systems)]


def needs_e5(systems: Sequence[str]) -> bool:
    return any(s in E5_SYSTEMS for s in required(systems))


def evaluate(
    datasets: Sequence[Dataset],
    systems: Sequence[str],
    cache_root: Path,
    colbert: ColBERT | None = None,
    e5: E5Encoder | None = None,
    k: int = 100,
    console: Console | None = None,
) -> list[DatasetResult]:
    """Run ``systems`` on each dataset; ``colbert``/``e5`` must be given when their systems are asked for.

    A fused system runs the systems it is computed from too, but only the asked-for ones are reported.
    """
    dims = colbert_dims(systems)
    e5_wanted = [s for s in E5_SYSTEMS if s in required(systems)]
    fused = [s for s in systems if parse_fused(s) is not None]
    keep = set(components(fused))
    if dims and colbert is None:
        raise ValueError("colbert-* systems need a ColBERT model")
    if e5_wanted and e5 is None:
        raise ValueError("dense / colbert-raw need the e5 backbone")
    colbert_encoder = ColBERTEncoder(colbert, dims) if colbert is not None and dims else None
    if colbert is not None and colbert_encoder is not None and len(colbert_encoder.dims) != len(dims):
        missing = sorted(set(dims) - set(colbert_encoder.dims))
        raise ValueError(f"model {colbert.name} does not offer dims {missing}; it offers {colbert.dims}")
    results = []
    for dataset in datasets:
        if console is not None:
            n_q, n_d = len(dataset.query_ids), len(dataset.corpus_ids)
            console.print(f"[bold]{dataset.name}[/]: {n_q} queries, {n_d} documents")
        runs: dict[str, SystemRun] = {}
        if "bm25" in required(systems):
            runs["bm25"] = run_bm25(dataset, k, keep_scores="bm25" in keep)
        if e5 is not None and e5_wanted:
            runs.update(run_vector_systems(dataset, e5, e5_wanted, cache_root, k, console, keep_scores=keep))
        if colbert_encoder is not None:
            names = [f"colbert-{d}" for d in dims]
            runs.update(
                run_vector_systems(dataset, colbert_encoder, names, cache_root, k, console, keep_scores=keep)
            )
        runs.update(run_fused_systems(dataset, fused, runs, k))
        ordered = [s for s in systems if s in runs]
        results.append(
            DatasetResult(
                name=dataset.name,
                metrics={s: score_run(dataset.qrels, runs[s].run) for s in ordered},
                runs={s: runs[s].run for s in ordered},
                timings={s: runs[s].timings for s in ordered},
                n_queries=len(dataset.query_ids),
                n_documents=len(dataset.corpus_ids),
            )
        )
    return results


def run_fused_systems(
    dataset: Dataset, fused: Sequence[str], runs: dict[str, SystemRun], k: int
) -> dict[str, SystemRun]:
    """Each fused system's run, from the score matrices its component runs kept."""
    out: dict[str, SystemRun] = {}
    gates: dict[str, np.ndarray] = {}  # one script (or language) check per dataset and gate
    for name in fused:
        start = time.perf_counter()
        dim, signals = parse_fused(name) or (0, ())
        fusion = fusion_of(name)
        sources = {"colbert": f"colbert-{dim}", **{s: s for s in signals}}
        matrices = {source: runs[system].scores for source, system in sources.items()}
        gate = None
        if "bm25" in signals:
            if fusion.gate not in gates:
                gates[fusion.gate] = bm25_gate(
                    dataset.query_texts,
                    dataset.corpus_texts,
                    fusion.gate,
                    dataset.query_languages,
                    dataset.doc_languages,
                )
            gate = gates[fusion.gate]
        kept = {source: m for source, m in matrices.items() if m is not None}
        if len(kept) != len(matrices):
            raise RuntimeError(f"{name}: a component run kept no scores")  # a harness bug, not user error
        run = fused_run(kept, fusion, dataset.corpus_ids, dataset.query_ids, k, gate)
        out[name] = SystemRun(run, {"fuse": time.perf_counter() - start})
    return out
