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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from head_lab import Pool, pools

from polycolbert.encoding.encoder import ColBERT
from polycolbert.encoding.precision import cpu_supports_bf16
from polycolbert.eval.cache import default_cache_dir
from polycolbert.eval.datasets import Dataset
from polycolbert.eval.exhaustive import ranked_runs
from polycolbert.eval.fusion import (
    COMBINATIONS,
    GATES,
    METHODS,
    Fusion,
    bm25_gate,
    candidates,
    fused_run,
    fused_scores,
)
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


@dataclass
class Candidates:
    """One pool's ColBERT candidates at one size, with everything a grid point needs to be scored fast."""

    colbert: np.ndarray  # [queries, depth] scores of each signal on the candidates
    dense: np.ndarray
    bm25: np.ndarray
    gains: np.ndarray  # [queries, depth] relevance grade of each candidate
    id_rank: np.ndarray  # [queries, depth] rank of each candidate's id in sorted order (trec_eval's tie rule)
    ideal: np.ndarray  # [queries] ideal DCG@10


def prepare(ds: Dataset, scores: dict[str, np.ndarray], dim: int) -> Candidates:
    chosen = candidates(scores[f"colbert-{dim}"], min(DEPTH, len(ds.corpus_ids)))
    rank_of = {d: i for i, d in enumerate(sorted(ds.corpus_ids))}
    id_rank = np.array([rank_of[d] for d in ds.corpus_ids])[chosen]
    gains = np.array(
        [
            [ds.qrels[q].get(ds.corpus_ids[j], 0) for j in row]
            for q, row in zip(ds.query_ids, chosen, strict=True)
        ],
        dtype=np.float64,
    )
    best = [sorted(ds.qrels[q].values(), reverse=True)[:10] for q in ds.query_ids]
    ideal = np.array([sum(g / np.log2(r + 2) for r, g in enumerate(grades)) for grades in best])
    take = {name: np.take_along_axis(scores[name], chosen, axis=1) for name in ("dense", "bm25")}
    colbert = np.take_along_axis(scores[f"colbert-{dim}"], chosen, axis=1)
    return Candidates(colbert, take["dense"], take["bm25"], gains, id_rank, ideal)


def fast_ndcg(c: Candidates, total: np.ndarray) -> float:
    """nDCG@10 of candidates ranked by ``total`` as trec_eval computes it (linear gain, log2 discount,
    equal scores by document id, descending); checked against ir-measures for the chosen settings."""
    order = np.lexsort((-c.id_rank, -total), axis=1)[:, :10]
    gains = np.take_along_axis(c.gains, order, axis=1)
    dcg = (gains / np.log2(np.arange(2, 2 + gains.shape[1]))).sum(axis=1)
    return float(np.mean(np.where(c.ideal > 0, dcg / np.where(c.ideal > 0, c.ideal, 1), 0.0)))


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


def as_json(results: dict[str, dict]) -> str:
    """Four decimals; one line per grid point, its pools in ``columns`` order."""
    rounded = json.loads(json.dumps(results), parse_float=lambda text: round(float(text), 4))
    grid = rounded.pop("grid")
    columns = list(next(iter(grid.values())))
    lines = [
        f"  {json.dumps(key)}: {json.dumps([values[c] for c in columns])}" for key, values in grid.items()
    ]
    head = json.dumps(rounded | {"columns": columns}, indent=1)[:-2]
    return head + ',\n "grid": {\n' + ",\n".join(lines) + "\n }\n}\n"


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

    prepared = {(ds.name, d): prepare(ds, scores[ds.name], d) for ds in datasets for d in MATRYOSHKA_DIMS}

    def fused(ds: Dataset, dim: int, fusion: Fusion) -> float:
        c = prepared[ds.name, dim]
        n = len(ds.query_ids)
        weights = {"dense": np.full(n, fusion.dense), "bm25": fusion.bm25 * gates[ds.name, fusion.gate]}
        signals = {name: getattr(c, name) for name in ("dense", "bm25") if getattr(fusion, name) > 0}
        return fast_ndcg(c, fused_scores(c.colbert, signals, weights, fusion.method))

    def checked(ds: Dataset, dim: int, fusion: Fusion) -> float:
        """The same number through polycolbert eval's own path (fused_run + ir-measures)."""
        matrices = {"colbert": scores[ds.name][f"colbert-{dim}"]}
        matrices |= {name: scores[ds.name][name] for name in ("dense", "bm25") if getattr(fusion, name) > 0}
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
            options = [
                f for c, f in points if c == combination and f.method == method and f.gate != "language"
            ]
            best = max(
                options, key=lambda f: results["grid"][f"colbert-128+{combination} {label(f)}"]["mean"]
            )
            means = [
                results["grid"][f"colbert-{d}+{combination} {label(best)}"]["mean"] for d in MATRYOSHKA_DIMS
            ]
            print(f"  {label(best)}: " + " / ".join(f"{m:.4f}" for m in means))
            for d in MATRYOSHKA_DIMS:  # the fast scorer must agree with polycolbert eval's path
                for ds in datasets:
                    fast = results["grid"][f"colbert-{d}+{combination} {label(best)}"][ds.name]
                    slow = checked(ds, d, best)
                    assert abs(fast - slow) < 1e-9, (ds.name, d, label(best), fast, slow)
            if chosen is None or means[0] > chosen[1]:
                chosen = (best, means[0])
        assert chosen is not None
        results["best"][combination] = label(chosen[0])
        print(f"  chosen: {label(chosen[0])}")
    if args.json:
        args.json.write_text(as_json(results))


if __name__ == "__main__":
    sys.exit(main())
