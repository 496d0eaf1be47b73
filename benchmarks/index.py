"""Embedded index vs exhaustive MaxSim vs Stanford PLAID vs FastPlaid vs XTR-WARP, on the same vectors.

Why one script for all of them: index size, latency and ranking quality only compare when every system
indexes the *identical* vectors and answers the identical queries in one run on one machine. The peers
live in their own virtualenv (``.venv-plaid``, see benchmarks/README.md: fast-plaid and xtr-warp-rs are
built against one exact torch), so they are run as a subprocess on the vectors this script writes to disk
(``peers_plaid.py``, ``peers_warp.py``; XTR-WARP answers top 10 only, so it has no k=100 column). For
XTR-WARP at millions of tokens, with builds and timing apart, see ``search_speed.py``.

Run (an otherwise idle machine; 2 threads everywhere):

    .venv/bin/python benchmarks/index.py --corpus scifact synthetic --output /tmp/index-bench.json

Corpora: ``scifact`` encoded by the default model at 128 dims (through the evaluation cache, so reruns
skip the minutes of encoding), and ``synthetic``: >= 5M tokens of clustered token vectors whose queries
are noisy subsets of one document (that document is the one relevant answer).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PEER_PYTHON = ROOT / ".venv-plaid" / "bin" / "python"
KS = (10, 100)


@dataclass
class Corpus:
    name: str
    docs: list[np.ndarray]
    queries: list[np.ndarray]  # each [32, d]
    doc_ids: list[str]
    query_ids: list[str]
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def tokens(self) -> int:
        return sum(len(d) for d in self.docs)


def scifact(dims: int = 128) -> Corpus:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # shared with the slow tests
    from scifact_vectors import load_scifact_vectors

    encoded = load_scifact_vectors(dims=(dims,))
    ds: Any = encoded.dataset
    return Corpus(
        "scifact",
        encoded.documents[dims],
        encoded.queries[dims],
        list(ds.corpus_ids),
        list(ds.query_ids),
        ds.qrels,
    )


def synthetic(n_tokens: int, dims: int = 128, n_queries: int = 200, seed: int = 0) -> Corpus:
    """Token clouds like real ones: a Zipfian vocabulary of word directions, documents drawn from topics.

    Each query is 32 noisy copies of tokens of one document (its single relevant answer), so the corpus
    has both a right answer (nDCG) and many near-misses sharing its words (ranking is not trivial).
    """
    rng = np.random.default_rng(seed)
    vocab, topics, per_topic = 60_000, 400, 600
    words = rng.standard_normal((vocab, dims)).astype(np.float32)
    words /= np.linalg.norm(words, axis=1, keepdims=True)
    topic_words = rng.integers(0, vocab, size=(topics, per_topic))
    zipf = 1.0 / np.arange(1, per_topic + 1) ** 0.9
    zipf /= zipf.sum()
    docs: list[np.ndarray] = []
    total = 0
    while total < n_tokens:
        length = int(np.clip(rng.lognormal(5.3, 0.5), 20, 600))
        mix = rng.integers(0, topics, size=2)
        picks = topic_words[mix[rng.integers(0, 2, size=length)], rng.choice(per_topic, size=length, p=zipf)]
        rows = words[picks] + 0.6 / np.sqrt(dims) * rng.standard_normal((length, dims)).astype(np.float32)
        docs.append((rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32))
        total += length
    targets = rng.choice(len(docs), size=n_queries, replace=False)
    queries = []
    for t in targets:
        base = docs[t][rng.integers(0, len(docs[t]), size=32)]
        noisy = base + 0.8 / np.sqrt(dims) * rng.standard_normal(base.shape).astype(np.float32)
        queries.append((noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).astype(np.float32))
    doc_ids = [str(i) for i in range(len(docs))]
    query_ids = [f"q{i}" for i in range(n_queries)]
    qrels = {q: {str(t): 1} for q, t in zip(query_ids, targets, strict=True)}
    return Corpus(f"synthetic-{total // 1_000_000}M", docs, queries, doc_ids, query_ids, qrels)


def exhaustive(corpus: Corpus, depth: int) -> tuple[np.ndarray, list[float]]:
    """fp32 MaxSim against every document (the reference ranking) and per-query latency in seconds."""
    from polycolbert.scoring import maxsim_segments, token_chunks, top_k

    flat = np.concatenate(corpus.docs)
    lengths = np.array([len(d) for d in corpus.docs])
    tok = np.concatenate([[0], np.cumsum(lengths)])
    runs = token_chunks(lengths, 1 << 18)  # [32, 262k] similarity blocks: bounded memory
    tops, times = [], []
    for q in corpus.queries:
        t0 = time.perf_counter()
        scores = np.empty(len(lengths), np.float32)
        for a, b in runs:
            scores[a:b] = maxsim_segments(q @ flat[tok[a] : tok[b]].T, lengths[a:b])[0]
        tops.append(top_k(scores, depth))
        times.append(time.perf_counter() - t0)
    return np.array(tops), times


def quality(corpus: Corpus, ranked: list[list[int]], reference: np.ndarray) -> dict[str, float]:
    from polycolbert.eval.metrics import evaluate

    run = {
        q: {corpus.doc_ids[d]: float(len(r) - rank) for rank, d in enumerate(r[:10])}
        for q, r in zip(corpus.query_ids, ranked, strict=True)
    }
    overlap = np.mean(
        [len(set(r[:10]) & set(ref[:10].tolist())) / 10 for r, ref in zip(ranked, reference, strict=True)]
    )
    return {"ndcg@10": evaluate(corpus.qrels, run)["nDCG@10"], "overlap@10": float(overlap)}


def latency(times: list[float]) -> dict[str, float]:
    return {
        "p50_ms": float(np.percentile(times, 50) * 1000),
        "p99_ms": float(np.percentile(times, 99) * 1000),
        "qps": len(times) / sum(times),
    }


def bench_polycolbert(corpus: Corpus, nbits: int) -> dict[str, Any]:
    from polycolbert.index import Index

    dims = corpus.docs[0].shape[1]
    out: dict[str, Any] = {"system": f"polycolbert nbits={nbits}"}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        with Index.create(Path(tmp) / "ix", dimensions=dims, nbits=nbits) as index:
            index.add([""] * len(corpus.docs), ids=corpus.doc_ids, vectors=corpus.docs)
            out["build_s"] = time.perf_counter() - t0
            info = index.info()
            out["bytes_per_token"] = info["bytes_per_token"]
            out["vector_bytes_per_token"] = info["vector_bytes_per_token"]
            out["centroids"] = info["centroids"]
            index.search(query_vectors=corpus.queries[:2], k=10)  # load + warm
            position = {d: i for i, d in enumerate(corpus.doc_ids)}
            for k in KS:
                times, ranked = [], []
                for q in corpus.queries:
                    t0 = time.perf_counter()
                    hits = index.search(query_vectors=[q], k=k)[0]
                    times.append(time.perf_counter() - t0)
                    ranked.append([position[h.id] for h in hits])
                out[f"k{k}"] = latency(times)
                t0 = time.perf_counter()  # every query in one call, as the peers are timed
                index.search(query_vectors=corpus.queries, k=k)
                out[f"k{k}"]["batched_qps"] = len(corpus.queries) / (time.perf_counter() - t0)
                if k == 100:
                    out["ranked"] = ranked
    return out


def bench_peer(corpus: Corpus, system: str, nbits: int, folder: Path) -> dict[str, Any] | None:
    """Run ``peers_plaid.py`` (or ``peers_warp.py``) in the peer venv on the vectors written once per
    corpus."""
    if not PEER_PYTHON.exists():
        print(f"  {system}: skipped ({PEER_PYTHON} missing; see benchmarks/README.md)", file=sys.stderr)
        return None
    vectors = folder / "vectors"
    if not vectors.exists():
        vectors.mkdir(parents=True)
        np.save(vectors / "doc_tokens.npy", np.concatenate(corpus.docs))
        np.save(vectors / "doc_lengths.npy", np.array([len(d) for d in corpus.docs], np.int64))
        np.save(vectors / "query_tokens.npy", np.stack(corpus.queries))
    result = folder / f"{system}.json"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    if system == "warp":
        return bench_warp(vectors, nbits, folder, env)
    command = [str(PEER_PYTHON), str(ROOT / "benchmarks" / "peers_plaid.py"), "--vectors", str(vectors)]
    command += ["--system", system, "--nbits", str(nbits), "--threads", "2", "--output", str(result)]
    command += ["--k", *map(str, KS), "--workdir", str(folder / f"{system}-index")]
    done = subprocess.run(command, env=env, stdout=sys.stderr, stderr=sys.stderr, check=False)
    if done.returncode != 0:
        print(f"  {system}: failed (exit {done.returncode})", file=sys.stderr)
        return None
    data = json.loads(result.read_text())
    out: dict[str, Any] = {
        "system": {"plaid": "Stanford PLAID", "fastplaid": "FastPlaid"}[system] + f" nbits={nbits}",
        "build_s": data["build"]["seconds"],
        "bytes_per_token": data["build"]["bytes_per_token"],
        "search_params": data.get("search_params"),
    }
    for k in KS:
        single = data["search"][str(k)]["single"]
        out[f"k{k}"] = {
            "p50_ms": single["p50_ms"],
            "p99_ms": single["p99_ms"],
            "qps": single["qps"],
            "batched_qps": data["search"][str(k)]["batched"]["qps"],
        }
    out["ranked"] = [[int(d) for d in row] for row in data["ranked_ids"][str(max(KS))]]
    return out


def bench_warp(vectors: Path, nbits: int, folder: Path, env: dict[str, str]) -> dict[str, Any] | None:
    """XTR-WARP through ``peers_warp.py``: one process builds, a second one loads and times search."""
    script = [str(PEER_PYTHON), str(ROOT / "benchmarks" / "peers_warp.py"), "--vectors", str(vectors)]
    script += ["--workdir", str(folder / "warp-index"), "--nbits", str(nbits), "--threads", "2"]
    outputs = {}
    for step in ("build", "search"):
        outputs[step] = folder / f"warp-{step}.json"
        extra = ["--build"] if step == "build" else []
        done = subprocess.run(
            [*script, *extra, "--output", str(outputs[step])], env=env, stdout=sys.stderr, check=False
        )
        if done.returncode != 0:
            print(f"  warp {step}: failed (exit {done.returncode})", file=sys.stderr)
            return None
    built = json.loads(outputs["build"].read_text())["build"]
    data = json.loads(outputs["search"].read_text())
    timed = data["search"]
    return {
        "system": f"XTR-WARP nbits={nbits}",
        "build_s": built["seconds"],
        "bytes_per_token": built["bytes_per_token"],
        "search_params": "library defaults",
        "k10": {k: timed[k] for k in ("p50_ms", "p99_ms", "qps", "batched_qps")},
        "ranked": data["ranked_ids"],
    }


def run_corpus(corpus: Corpus, nbits: list[int], peers: list[str], peer_nbits: int) -> list[dict[str, Any]]:
    dims = corpus.docs[0].shape[1]
    print(
        f"{corpus.name}: {len(corpus.docs)} docs, {corpus.tokens} tokens, {len(corpus.queries)} queries, "
        f"{dims} dims",
        file=sys.stderr,
    )
    reference, times = exhaustive(corpus, max(KS))
    rows: list[dict[str, Any]] = [
        {
            "system": "exhaustive fp32 MaxSim",
            "bytes_per_token": dims * 4,
            "k10": latency(times),
            **quality(corpus, reference.tolist(), reference),
        }
    ]
    for bits in nbits:
        row = bench_polycolbert(corpus, bits)
        ranked = row.pop("ranked")
        rows.append({**row, **quality(corpus, ranked, reference)})
        print_table([{**rows[-1], "corpus": corpus.name}])
    with tempfile.TemporaryDirectory() as tmp:
        for system in peers:
            peer = bench_peer(corpus, system, peer_nbits, Path(tmp))
            if peer is not None:
                ranked = peer.pop("ranked")
                rows.append({**peer, **quality(corpus, ranked, reference)})
    for r in rows:
        r["corpus"], r["tokens"], r["documents"] = corpus.name, corpus.tokens, len(corpus.docs)
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    head = f"{'corpus':<14} {'system':<26} {'B/tok':>6} {'build s':>8} {'p50@10':>7} {'p99@10':>7}"
    head += f" {'p50@100':>8} {'bQPS@10':>8} {'ovl@10':>6} {'nDCG@10':>7}"
    print(head)
    for r in rows:
        k10, k100 = r.get("k10", {}), r.get("k100", {})

        def num(value: Any, fmt: str) -> str:
            return format(value, fmt) if isinstance(value, int | float) else "-"

        print(
            f"{r['corpus']:<14} {r['system']:<26} {num(r.get('bytes_per_token'), '6.1f')} "
            f"{num(r.get('build_s'), '8.1f')} {num(k10.get('p50_ms'), '7.2f')} "
            f"{num(k10.get('p99_ms'), '7.2f')} "
            f"{num(k100.get('p50_ms'), '8.2f')} {num(k10.get('batched_qps'), '8.1f')} "
            f"{r['overlap@10']:6.3f} {r['ndcg@10']:7.4f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--corpus", nargs="+", default=["scifact", "synthetic"], choices=["scifact", "synthetic"]
    )
    parser.add_argument("--nbits", type=int, nargs="+", default=[1, 2], help="polycolbert's settings")
    parser.add_argument("--peer-nbits", type=int, default=2, help="the peers' setting (the targets' PLAID)")
    parser.add_argument("--synthetic-tokens", type=int, default=5_000_000)
    parser.add_argument(
        "--peers", nargs="*", default=["plaid", "fastplaid", "warp"], choices=["plaid", "fastplaid", "warp"]
    )
    parser.add_argument("--output", type=Path, help="write every number (JSON)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    rows: list[dict[str, Any]] = []
    for name in args.corpus:
        corpus = scifact() if name == "scifact" else synthetic(args.synthetic_tokens)
        rows += run_corpus(corpus, args.nbits, args.peers, args.peer_nbits)
        print_table(rows)
        if args.output:
            args.output.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
