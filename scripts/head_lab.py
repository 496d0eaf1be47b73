"""Choose how the default model's heads are trained, on validation pools cut from TRAINING sets only.

The evaluation sets (xquad-*, belebele-*, scifact test) must not steer training choices, so this script
holds out queries of the training sets (squad-it, cmrc2018-zh, jaquad-ja, arcd-ar, scifact train qrels,
Tatoeba pairs), builds small retrieval pools from them, and scores candidate head trainings there by
exhaustive MaxSim. The backbone is frozen, so its token states are computed once per encoding recipe and
kept on disk: each candidate then costs seconds of head training and MaxSim instead of re-encoding.

Usage::

    .venv/bin/python scripts/head_lab.py --recipe markers --variant shipped --variant long
    .venv/bin/python scripts/head_lab.py --heads mine=/path/to/checkpoint
    .venv/bin/python scripts/head_lab.py --top top2 --variant shipped   # also train the top layers

With ``--top``, pools are encoded through the lower-layer cache (one window of at most 500 tokens per
text, which every system in that run shares) and each top-layer candidate re-runs only its own layers.

Prints one line of nDCG@10 per system (pools, then their mean); ``--json`` keeps the numbers. Results and
conclusions: docs/default-model.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from polycolbert.encoding.encoder import ColBERT
from polycolbert.eval.exhaustive import ranked_runs
from polycolbert.eval.metrics import evaluate
from polycolbert.models.catalog import DEFAULT_MODEL, packaged_folder
from polycolbert.models.heads import ColBERTHeads
from polycolbert.scoring import maxsim_buckets
from polycolbert.train.data import (
    TrainingExample,
    add_bm25_negatives,
    beir_pairs,
    read_corpus,
    read_qrels,
    read_queries,
)
from polycolbert.train.lower_cache import encode_lower, final_states
from polycolbert.train.trainer import StateCache, TrainConfig, Trainer

DATA = Path(
    os.environ.get("POLYCOLBERT_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data"
)
QA_SETS = {"squad-it": "test.tsv", "cmrc2018-zh": "test.tsv", "jaquad-ja": "test.tsv", "arcd-ar": "test.tsv"}
SCIFACT = ("scifact", "train.tsv")
TATOEBA_VALID = ("deu", "cmn", "ara", "rus")
TATOEBA_TRAIN = (*TATOEBA_VALID, "ell", "spa", "hin", "tha", "tur", "vie", "fra", "ita", "por", "jpn")
TATOEBA_TRAIN += ("kor", "nld", "pol")
HELD_OUT = 150  # validation queries per pool
POOL_DOCS = 800  # corpus size of a pool (all positives of its queries, then random others)


def held_out(query_id: str) -> bool:
    """A fixed tenth of every training set's queries, by hash: never trained on in the lab."""
    return int(hashlib.sha1(query_id.encode()).hexdigest(), 16) % 10 == 0


@dataclass
class Pool:
    name: str
    queries: dict[str, str]
    corpus: dict[str, str]
    qrels: dict[str, dict[str, int]]


def make_pool(name: str, folder: Path, qrels_file: str, seed: int = 0) -> Pool:
    corpus, queries = read_corpus(folder), read_queries(folder)
    pairs = [(q, d) for q, d in read_qrels(folder / "qrels" / qrels_file) if held_out(q) and d in corpus]
    chosen = sorted({q for q, _ in pairs if q in queries})
    chosen = random.Random(seed).sample(chosen, min(HELD_OUT, len(chosen)))
    qrels: dict[str, dict[str, int]] = {}
    for q, d in pairs:
        if q in chosen:
            qrels.setdefault(q, {})[d] = 1
    docs = {d for rel in qrels.values() for d in rel}
    others = sorted(set(corpus) - docs)
    docs |= set(random.Random(seed).sample(others, max(0, min(len(others), POOL_DOCS - len(docs)))))
    return Pool(name, {q: queries[q] for q in chosen}, {d: corpus[d] for d in sorted(docs)}, qrels)


def pools() -> list[Pool]:
    out = [make_pool(n, DATA / n, f) for n, f in QA_SETS.items()]
    out.append(make_pool("scifact-train", DATA / SCIFACT[0], SCIFACT[1]))
    out += [make_pool(f"tatoeba-{lang}", DATA / "tatoeba-laser" / lang, "test.tsv") for lang in TATOEBA_VALID]
    return out


def training_examples(limit: int, qa_limit: int | None = None, seed: int = 0) -> list[TrainingExample]:
    """Training pairs of every training source, held-out queries excluded, ``limit`` per source.

    ``qa_limit`` lets the question-answering and SciFact sources (passages, like the evaluation sets) give
    more pairs than the one-sentence translation pairs, which otherwise make most of the mix.
    """
    passages = [(DATA / n, f, n) for n, f in QA_SETS.items()] + [(DATA / SCIFACT[0], SCIFACT[1], SCIFACT[0])]
    sources = [(folder, f, name, qa_limit or limit) for folder, f, name in passages]
    tatoeba = DATA / "tatoeba-laser"
    sources += [(tatoeba / lang, "test.tsv", f"tatoeba-{lang}", limit) for lang in TATOEBA_TRAIN]
    examples: list[TrainingExample] = []
    for folder, qrels_file, name, most in sources:
        found = beir_pairs(folder, qrels_file, limit=most, seed=seed, keep_query=lambda q: not held_out(q))
        for example in found:
            example.source = name
        examples += found
    add_bm25_negatives(examples, per_example=1, seed=seed)
    return examples


# -- encoding recipes ------------------------------------------------------------------------------------
RECIPES = {
    "markers": {},  # as shipped: [QueryMarker]/[DocumentMarker] rows seeded from e5's prefixes
    "prefixes": {
        "query_marker": None,
        "doc_marker": None,
        "query_prefix": "query: ",
        "doc_prefix": "passage: ",
    },
    # Query rows scored once each, as the default model does since 2026-11-29 (training matches inference).
    "markers-zero": {"query_padding": "zero"},
}


UPDATE_FILE = "backbone_update.safetensors"


def model_folder(work: Path, recipe: str) -> Path:
    """The packaged default model with another encoding recipe."""
    folder = work / f"model-{recipe}"
    if not folder.exists():
        # The lab's base is the untouched e5: a packaged top-layer update is scored as its own system.
        shutil.copytree(packaged_folder(DEFAULT_MODEL), folder, ignore=shutil.ignore_patterns(UPDATE_FILE))
        manifest = json.loads((folder / "polycolbert.json").read_text())
        manifest["recipe"].update(RECIPES[recipe])
        (folder / "polycolbert.json").write_text(json.dumps(manifest, indent=2))
    return folder


def pool_states(work: Path, recipe: str, model: ColBERT, pool: Pool) -> dict[str, list[torch.Tensor]]:
    path = work / f"states-{recipe}-{pool.name}.pt"
    if path.exists():
        return torch.load(path)
    found = {}
    for side, kind, texts in (("queries", "query", pool.queries), ("documents", "document", pool.corpus)):
        table = StateCache.encode(model, list(texts.values()), kind, doc_maxlen=8192)  # eval-like windows
        found[side] = [table[text] for text in texts.values()]
    torch.save(found, path)
    return found


POOL_WINDOW = 500  # tokens per pool document when pools go through the lower-layer cache (one window)


def pool_lower_states(work: Path, recipe: str, model: ColBERT, pool: Pool, split: int) -> dict:
    """Pool texts after the frozen lower layers (kept on disk, one file per pool and split)."""
    path = work / f"lower{split}-{recipe}-{pool.name}.pt"
    if path.exists():
        return torch.load(path, weights_only=False)
    found = {
        "queries": encode_lower(model, list(pool.queries.values()), "query", POOL_WINDOW, split),
        "documents": encode_lower(model, list(pool.corpus.values()), "document", POOL_WINDOW, split),
    }
    torch.save(found, path)
    return found


def finish_pool_states(
    model: ColBERT, lower: dict, pool: Pool, split: int, uniform: bool = False
) -> dict[str, list[torch.Tensor]]:
    """Last-layer states of a pool under ``model``'s top layers, in the pool's order.

    ``uniform`` keeps each query's real-token rows once (as ``query_padding="zero"`` scores them) instead
    of the 32 cycled rows the lab's cached ``repeat`` recipe gives."""
    out = {}
    for side, texts in (("queries", pool.queries), ("documents", pool.corpus)):
        table = final_states(model, lower[side], split)
        if uniform and side == "queries":
            table = {t: rows[: len(lower[side][t].hidden)] for t, rows in table.items()}
        out[side] = [table[text] for text in texts.values()]
    return out


def ndcg(pool: Pool, queries: list[np.ndarray], documents: list[np.ndarray]) -> float:
    scores = maxsim_buckets(queries, documents)
    ranked = ranked_runs(scores, list(pool.corpus), 10)
    run = {q: r for q, r in zip(pool.queries, ranked, strict=True)}
    return evaluate(pool.qrels, run)["nDCG@10"]


def project(states: list[torch.Tensor], transform) -> list[np.ndarray]:
    with torch.no_grad():
        return [F.normalize(transform(s.float()), dim=-1).numpy() for s in states]


# -- head training variants --------------------------------------------------------------------------
VARIANTS: dict[str, dict] = {
    "pca": {"limit": 600, "steps": 1, "lr": 0.0},  # the PCA initialisation alone
    "shipped": {"limit": 600, "steps": 500},
    "long": {"limit": 600, "steps": 1500},
    "long-sd3": {"limit": 600, "steps": 1500, "self_distill_weight": 3.0},
    "long-no-sd": {"limit": 600, "steps": 1500, "self_distill_weight": 0.0},
    "more-data": {"limit": 3000, "steps": 1500},
    "more-data-sd3": {"limit": 3000, "steps": 1500, "self_distill_weight": 3.0},
}


# Top-layer variants: the top k layers train with the heads, on the frozen lower layers' cached output.
TOP_VARIANTS: dict[str, dict] = {
    "top2": {"limit": 600, "steps": 500, "top_layers": 2, "backbone_lr": 5e-5},
    "top2-lr2e-4": {"limit": 600, "steps": 500, "top_layers": 2, "backbone_lr": 2e-4},
    "top4": {"limit": 600, "steps": 500, "top_layers": 4, "backbone_lr": 5e-5},
    # Passage data weighted up: QA sources and SciFact give up to 3,000 pairs each (translation stays 600).
    "top2-qa": {"limit": 600, "qa_limit": 3000, "steps": 1000, "top_layers": 2, "backbone_lr": 5e-5},
    # The shipped recipe with another seed: how far two runs of one recipe differ (the lab's noise).
    "top2-seed1": {"limit": 600, "steps": 500, "top_layers": 2, "backbone_lr": 5e-5, "seed": 1},
    # Documents seen up to 500 tokens in training (SciFact abstracts are longer than the usual 256).
    "top2-long": {
        "limit": 600,
        "steps": 500,
        "top_layers": 2,
        "backbone_lr": 5e-5,
        "doc_maxlen": POOL_WINDOW,
    },
    "top2-sd0": {
        "limit": 600,
        "steps": 500,
        "top_layers": 2,
        "backbone_lr": 5e-5,
        "self_distill_weight": 0.0,
    },
}


def train_top(work: Path, recipe: str, variant: str, lab: dict[str, dict]) -> Path:
    """Train one top-layer variant; returns its checkpoint (heads and backbone update)."""
    settings = dict(TOP_VARIANTS[variant])
    limit = settings.pop("limit")
    qa_limit = settings.pop("qa_limit", None)
    config = TrainConfig(
        output=str(work / f"run-{recipe}-{variant}"),
        model=str(model_folder(work, recipe)),
        batch_size=32,
        init_heads="pca",
        train_backbone="top",
        self_distill_weight=settings.pop("self_distill_weight", 1.0),
        doc_maxlen=settings.pop("doc_maxlen", 256),
        seed=settings.pop("seed", 0),
        save_every=10**9,
        resume=False,
        **settings,
    )
    mix = (limit, qa_limit)
    if mix not in lab["examples"]:
        lab["examples"][mix] = training_examples(limit, qa_limit)
    examples = lab["examples"][mix]
    key = ("lower", recipe, mix, config.doc_maxlen, 12 - config.top_layers)
    longer = f"-len{config.doc_maxlen}" if config.doc_maxlen != 256 else ""
    cache_path = (
        work / f"train-lower{key[4]}-{recipe}-{limit}{f'-qa{qa_limit}' if qa_limit else ''}{longer}.pt"
    )
    if key not in lab["states"] and cache_path.exists():
        lab["states"][key] = torch.load(cache_path, weights_only=False)
    started = time.perf_counter()
    trainer = Trainer(config, examples, lower_cache=lab["states"].get(key))
    if key not in lab["states"]:
        lab["states"][key] = trainer.lower_cache
        torch.save(trainer.lower_cache, cache_path)
    ready = time.perf_counter()
    trainer.train(progress=False)
    print(
        f"  {recipe}/{variant}: setup {ready - started:.0f} s, {config.steps} steps in "
        f"{time.perf_counter() - ready:.0f} s",
        flush=True,
    )
    return Path(config.output)


def train_heads(work: Path, recipe: str, variant: str, lab: dict[str, dict]) -> ColBERTHeads:
    """Train one variant; ``lab`` keeps examples (by limit) and backbone states (by recipe, limit)."""
    settings = dict(VARIANTS[variant])
    limit = settings.pop("limit")
    config = TrainConfig(
        output=str(work / f"run-{recipe}-{variant}"),
        model=str(model_folder(work, recipe)),
        batch_size=32,
        init_heads="pca",
        self_distill_weight=settings.pop("self_distill_weight", 1.0),
        doc_maxlen=256,
        seed=0,
        save_every=10**9,
        resume=False,
        **settings,
    )
    if (limit, None) not in lab["examples"]:
        lab["examples"][limit, None] = training_examples(limit)
    examples = lab["examples"][limit, None]
    cache_path = work / f"train-states-{recipe}-{limit}.pt"
    if (recipe, limit) not in lab["states"] and cache_path.exists():
        lab["states"][recipe, limit] = torch.load(cache_path, weights_only=False)
    trainer = Trainer(config, examples, cache=lab["states"].get((recipe, limit)))
    if (recipe, limit) not in lab["states"]:
        lab["states"][recipe, limit] = trainer.cache
        torch.save(trainer.cache, cache_path)
    started = time.perf_counter()
    trainer.train(progress=False)
    print(f"  {recipe}/{variant}: {config.steps} steps in {time.perf_counter() - started:.0f} s", flush=True)
    return trainer.heads.cpu().eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/head-lab"))
    parser.add_argument("--recipe", action="append", choices=sorted(RECIPES))
    parser.add_argument("--variant", action="append", choices=sorted(VARIANTS))
    parser.add_argument(
        "--heads", action="append", default=[], help="NAME=FOLDER: score the heads of a saved checkpoint"
    )
    parser.add_argument("--top", action="append", choices=sorted(TOP_VARIANTS), help="top-layer variants")
    parser.add_argument(
        "--saved-top", action="append", default=[], help="NAME=FOLDER: score a saved top-layer checkpoint"
    )
    parser.add_argument(
        "--uniform-queries", action="store_true", help="score queries' real rows once (query_padding=zero)"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)
    validation = pools()
    print("pools:", ", ".join(f"{p.name} ({len(p.queries)} q, {len(p.corpus)} docs)" for p in validation))
    results: dict[str, dict[str, float]] = {}
    lab: dict[str, dict] = {"examples": {}, "states": {}}
    for recipe in args.recipe or ["markers"]:
        model = ColBERT.load(str(model_folder(args.work, recipe)), dtype="float32" if args.top else "auto")
        top_checkpoints = {v: train_top(args.work, recipe, v, lab) for v in args.top or []}
        splits = {12 - TOP_VARIANTS[v]["top_layers"] for v in top_checkpoints}
        for spec in args.saved_top:
            name, _, folder = spec.partition("=")
            top_checkpoints[name] = Path(folder)
            splits.add(12 - json.loads((Path(folder) / "training.json").read_text())["config"]["top_layers"])
        shipped = packaged_folder(DEFAULT_MODEL)
        shipped_top = (shipped / UPDATE_FILE).exists()  # then the shipped heads belong to its top layers
        if splits and shipped_top:  # scored like a top variant, finished from the same split
            top_checkpoints["shipped-top"] = shipped
        lower = {}
        if splits:  # every system of this run sees the same one-window pool texts
            split = min(splits)
            lower = {p.name: pool_lower_states(args.work, recipe, model, p, split) for p in validation}
            encoded = {
                p.name: finish_pool_states(model, lower[p.name], p, split, args.uniform_queries)
                for p in validation
            }
        else:
            encoded = {p.name: pool_states(args.work, recipe, model, p) for p in validation}
        rows = torch.cat([s.float() for e in encoded.values() for side in e.values() for s in side])
        mean = rows.mean(dim=0)
        del rows
        systems: dict[str, tuple[ColBERTHeads | None, int]] = {"raw-384": (None, 0), "centred-384": (None, 1)}
        if not shipped_top:
            systems["shipped-heads"] = (model.heads, 0)
        for spec in args.heads:
            name, _, folder = spec.partition("=")
            systems[name] = (ColBERT.load(folder).heads, 0)
        for variant in args.variant or []:
            systems[variant] = (train_heads(args.work, recipe, variant, lab), 0)
        states_of = {name: encoded for name in systems}
        for variant, folder in top_checkpoints.items():
            trained = ColBERT.load(str(folder), dtype="float32")
            split = min(splits)  # layers below the variant's own split are unchanged, so this is exact
            states_of[variant] = {
                p.name: finish_pool_states(trained, lower[p.name], p, split, args.uniform_queries)
                for p in validation
            }
            systems[variant] = (trained.heads, 0)
        for name, (heads, centred) in systems.items():
            dims = (384,) if heads is None else tuple(d for d in (128, 96, 64) if d in heads.trained_dims)
            for dim in dims:
                row = f"{recipe}/{name}" + ("" if heads is None else f"@{dim}")
                results[row] = {}
                for pool in validation:
                    q, d = states_of[name][pool.name]["queries"], states_of[name][pool.name]["documents"]
                    if heads is None:
                        transform = (lambda x, m=mean: x - m) if centred else (lambda x: x)
                    else:
                        transform = lambda x, h=heads, dd=dim: h(x, dd)  # noqa: E731
                    results[row][pool.name] = ndcg(pool, project(q, transform), project(d, transform))
                results[row]["mean"] = float(np.mean(list(results[row].values())))
                print(row, " ".join(f"{k}={v:.4f}" for k, v in results[row].items()), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    sys.exit(main())
