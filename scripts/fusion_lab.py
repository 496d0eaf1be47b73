"""Choose the fused systems' settings on the head lab's held-out training pools, never on an evaluation set.

The fused systems of ``polycolbert eval`` (``colbert-<d>+dense``, ``+bm25``, ``+dense+bm25``,
:mod:`polycolbert.eval.fusion`) need a normalisation (or reciprocal rank), a weight per signal and a BM25
gate. This script scores the shipped model, e5's dense vector and BM25 on the nine pools that
``scripts/head_lab.py`` cuts from the training sets (a tenth of their queries, never trained on), through
the same code and encoding cache as ``polycolbert eval``, then tries every setting of a grid on the
kept score matrices. One setting per combination wins for all languages: the best mean nDCG@10 over the
nine pools at 128 dims; 96 and 64 are reported with the same setting.

Usage::

    .venv/bin/python scripts/fusion_lab.py --json docs/assets/quality/fusion-lab.json

Prints the baselines, the best settings of each method and the choice; ``--json`` keeps every grid point.
Results and the choice: docs/default-model.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np
from head_lab import Pool, pools

from polycolbert.encoding.encoder import ColBERT, cpu_supports_bf16
from polycolbert.eval.cache import default_cache_dir
from polycolbert.eval.datasets import Dataset
from polycolbert.eval.exhaustive import ranked_runs
from polycolbert.eval.fusion import COMBINATIONS, GATES, METHODS, Fusion, bm25_gate, fused_run
from polycolbert.eval.metrics import evaluate
from polycolbert.eval.systems import ColBERTEncoder, E5Encoder, run_bm25, run_vector_systems
from polycolbert.models.catalog import DEFAULT_MODEL
from polycolbert.models.packaged import load_e5_backbone, load_e5_tokenizer
from polycolbert.models.spec import MATRYOSHKA_DIMS

# Query and corpus language of each pool (Tatoeba pools: sentences in X against their English translations).
LANGUAGES = {
    "squad-it": ("it", "it"),
    "cmrc2018-zh": ("zh", "zh"),
    "jaquad-ja": ("ja", "ja"),
    "arcd-ar": ("ar", "ar"),
    "scifact-train": ("en", "en"),
    "tatoeba-deu": ("de", "en"),
    "tatoeba-cmn": ("zh", "en"),
    "tatoeba-ara": ("ar", "en"),
    "tatoeba-rus": ("ru", "en"),
}
WEIGHTS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5)
DEPTH = 100  # candidates per query, as polycolbert eval (--k 100)


def as_dataset(pool: Pool) -> Dataset:
    query_language, doc_language = LANGUAGES[pool.name]
    return Dataset(
        name=pool.name,
        corpus_ids=list(pool.corpus),
        corpus_texts=list(pool.corpus.values()),
        query_ids=list(pool.queries),
        query_texts=list(pool.queries.values()),
        qrels=pool.qrels,
        doc_languages=[doc_language] * len(pool.corpus),
        query_languages=[query_language] * len(pool.queries),
    )


def score_matrices(datasets: list[Dataset], cache: Path) -> dict[str, dict[str, np.ndarray]]:
    """``{pool: {system: [queries, documents] scores}}`` for bm25, dense and every ColBERT size."""
    bf16 = cpu_supports_bf16()
    e5 = E5Encoder(load_e5_backbone(), load_e5_tokenizer(), bf16=bf16, name="multilingual-e5-small")
    colbert = ColBERTEncoder(ColBERT.load(DEFAULT_MODEL))
    sizes = [f"colbert-{d}" for d in MATRYOSHKA_DIMS]
    out: dict[str, dict[str, np.ndarray]] = {}
    for ds in datasets:
        started = time.perf_counter()
        runs = {"bm25": run_bm25(ds, DEPTH, keep_scores=True)}
        runs |= run_vector_systems(ds, e5, ["dense"], cache, DEPTH, keep_scores={"dense"})
        runs |= run_vector_systems(ds, colbert, sizes, cache, DEPTH, keep_scores=set(sizes))
        out[ds.name] = {name: run.scores for name, run in runs.items() if run.scores is not None}
        print(f"  {ds.name}: scored in {time.perf_counter() - started:.0f} s", flush=True)
    return out


def ndcg(ds: Dataset, run: dict[str, dict[str, float]]) -> float:
    return evaluate(ds.qrels, run)["nDCG@10"]


def grid() -> list[tuple[str, Fusion]]:
    """``(combination, settings)`` for every grid point; the gate only varies where BM25 counts."""
    points = []
    for method, dense, bm25 in itertools.product(METHODS, WEIGHTS, WEIGHTS):
        combination = "+".join(s for s, w in (("dense", dense), ("bm25", bm25)) if w > 0)
        if not combination:
            continue
        for gate in GATES if bm25 > 0 else ("script",):
            points.append(
                (combination, Fusion(method=method, dense=dense, bm25=bm25, gate=gate, depth=DEPTH))
            )
    return points


def label(fusion: Fusion) -> str:
    return f"{fusion.method} dense={fusion.dense} bm25={fusion.bm25} gate={fusion.gate}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache-dir", type=Path, default=None, help="encoding cache (polycolbert eval's)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    datasets = [as_dataset(p) for p in pools()]
    print("pools:", ", ".join(f"{d.name} ({len(d.query_ids)} q, {len(d.corpus_ids)} docs)" for d in datasets))
    scores = score_matrices(datasets, args.cache_dir or default_cache_dir())
    gates = {
        (ds.name, mode): bm25_gate(
            ds.query_texts, ds.corpus_texts, mode, ds.query_languages, ds.doc_languages
        )
        for ds in datasets
        for mode in GATES
    }
    results: dict[str, dict] = {"baselines": {}, "grid": {}, "gate_open": {}}
    for ds in datasets:
        results["gate_open"][ds.name] = {mode: int(gates[ds.name, mode].sum()) for mode in GATES}
        print(
            f"  {ds.name}: BM25 gate open for "
            + ", ".join(f"{mode} {int(gates[ds.name, mode].sum())}/{len(ds.query_ids)}" for mode in GATES)
        )

    def row(ds_list: list[Dataset], compute) -> dict[str, float]:
        values = {ds.name: compute(ds) for ds in ds_list}
        return values | {"mean": float(np.mean(list(values.values())))}

    for system in ("bm25", "dense", *(f"colbert-{d}" for d in MATRYOSHKA_DIMS)):
        results["baselines"][system] = row(
            datasets,
            lambda ds, s=system: ndcg(
                ds,
                dict(zip(ds.query_ids, ranked_runs(scores[ds.name][s], ds.corpus_ids, DEPTH), strict=True)),
            ),
        )
        print(system, " ".join(f"{k}={v:.4f}" for k, v in results["baselines"][system].items()), flush=True)

    def fused(ds: Dataset, dim: int, fusion: Fusion) -> float:
        matrices = {"colbert": scores[ds.name][f"colbert-{dim}"]}
        if fusion.dense > 0:
            matrices["dense"] = scores[ds.name]["dense"]
        if fusion.bm25 > 0:
            matrices["bm25"] = scores[ds.name]["bm25"]
        gate = gates[ds.name, fusion.gate] if fusion.bm25 > 0 else None
        return ndcg(ds, fused_run(matrices, fusion, ds.corpus_ids, ds.query_ids, DEPTH, gate))

    started = time.perf_counter()
    points = grid()
    for dim in MATRYOSHKA_DIMS:
        for combination, fusion in points:
            key = f"colbert-{dim}+{combination} {label(fusion)}"
            results["grid"][key] = row(datasets, lambda ds, d=dim, f=fusion: fused(ds, d, f))
    seconds = time.perf_counter() - started
    print(f"grid: {len(points)} settings x {len(MATRYOSHKA_DIMS)} sizes in {seconds:.0f} s")

    results["best"] = {}
    for combination in COMBINATIONS:
        print(f"\ncolbert-128+{combination}, best of each method (mean nDCG@10 at 128 / 96 / 64):")
        chosen = None
        for method in METHODS:
            # The language gate needs the query's language, which an index is not told: compared, not chosen.
            candidates = [
                f for c, f in points if c == combination and f.method == method and f.gate != "language"
            ]
            best = max(
                candidates, key=lambda f: results["grid"][f"colbert-128+{combination} {label(f)}"]["mean"]
            )
            means = [
                results["grid"][f"colbert-{d}+{combination} {label(best)}"]["mean"] for d in MATRYOSHKA_DIMS
            ]
            print(f"  {label(best)}: " + " / ".join(f"{m:.4f}" for m in means))
            if chosen is None or means[0] > chosen[1]:
                chosen = (best, means[0])
        assert chosen is not None
        results["best"][combination] = label(chosen[0])
        print(f"  chosen: {label(chosen[0])}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
