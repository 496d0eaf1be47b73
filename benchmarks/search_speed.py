"""Search speed and quality of the embedded index vs exhaustive MaxSim vs XTR-WARP, on cached real vectors.

Why apart from ``index.py``: at millions of tokens the builds take many minutes on 2 cores, so building
(``--build``, in the background) and timing (run under ``benchmarks/bench.sh``, which keeps the
machine otherwise idle) are separate steps; the XTR-WARP index is built the same way by
``peers_warp.py --build``. Every engine gets the same vectors (``benchmarks/corpora.py``'s cache).

    .venv/bin/python benchmarks/search_speed.py --corpus scifact --build
    .venv-plaid/bin/python benchmarks/peers_warp.py --vectors ~/.cache/polycolbert/bench/scifact \\
        --workdir WARP_IDX --nbits 2 --build --output warp-build.json
    .venv/bin/python benchmarks/search_speed.py --corpus scifact --warp WARP_IDX \\
        --warp-build warp-build.json --output docs/assets/index/search-scifact.json

Columns: build seconds, bytes per token on disk, p50/p99 ms at one query per call, batched QPS (all
queries in one call, for every engine), top-10 overlap with exhaustive fp32 MaxSim, nDCG@10,
and the search process's resident memory (anonymous and file-backed: the residuals are memory-mapped).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path.home() / ".cache" / "polycolbert" / "bench"
K = 10
ENGINES = ("fp32", "scan", "index-exhaustive")


def load(corpus: str) -> tuple[list[np.ndarray], np.ndarray, dict[str, Any]]:
    folder = BENCH / corpus
    tokens = np.load(folder / "doc_tokens.npy").astype(np.float32)
    bounds = np.concatenate([[0], np.cumsum(np.load(folder / "doc_lengths.npy"))])
    docs = [tokens[a:b] for a, b in itertools.pairwise(bounds)]
    return (
        docs,
        np.load(folder / "query_tokens.npy").astype(np.float32),
        json.loads((folder / "ids.json").read_text()),
    )


def rss() -> dict[str, int]:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key = line.split(":")[0]
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            out[key] = int(line.split()[1]) * 1024
    return out


def build(corpus: str, nbits: int) -> None:
    from polycolbert.index import Index

    docs, _, _ = load(corpus)
    path = BENCH / corpus / f"polycolbert-nbits{nbits}"
    t0 = time.perf_counter()
    with Index.create(path, dimensions=docs[0].shape[1], nbits=nbits) as index:
        index.add([""] * len(docs), ids=[str(i) for i in range(len(docs))], vectors=docs)
        seconds = time.perf_counter() - t0
        info = index.info()
    record = {
        "build_s": seconds,
        "bytes_per_token": info["bytes_per_token"],
        "tokens": info["tokens"],
        "centroids": info["centroids"],
        "loadavg": os.getloadavg(),
    }
    (path.parent / f"polycolbert-nbits{nbits}.build.json").write_text(json.dumps(record))
    print(record)


def exhaustive(docs: list[np.ndarray], queries: np.ndarray) -> tuple[list[list[int]], list[float]]:
    from polycolbert.scoring import maxsim_segments, token_chunks, top_k

    flat = np.concatenate(docs)
    lengths = np.array([len(d) for d in docs])
    tok = np.concatenate([[0], np.cumsum(lengths)])
    runs = token_chunks(lengths, 1 << 18)
    ranked, times = [], []
    for q in queries:
        t0 = time.perf_counter()
        scores = np.empty(len(lengths), np.float32)
        for a, b in runs:
            scores[a:b] = maxsim_segments(q @ flat[tok[a] : tok[b]].T, lengths[a:b])[0]
        ranked.append(top_k(scores, K).tolist())
        times.append(time.perf_counter() - t0)
    return ranked, times


def polycolbert(corpus: str, nbits: int, queries: np.ndarray, exhaustive: bool) -> dict[str, Any]:
    from polycolbert.index import Index

    path = BENCH / corpus / f"polycolbert-nbits{nbits}"
    built = json.loads((path.parent / f"polycolbert-nbits{nbits}.build.json").read_text())
    with Index.open(path) as index:
        index.search(query_vectors=list(queries[:2]), k=K, exhaustive=exhaustive)  # load + warm
        times, ranked = [], []
        for q in queries:
            t0 = time.perf_counter()
            hits = index.search(query_vectors=[q], k=K, exhaustive=exhaustive)[0]
            times.append(time.perf_counter() - t0)
            ranked.append([int(h.id) for h in hits])
        t0 = time.perf_counter()  # every query in one call, as XTR-WARP is timed
        index.search(query_vectors=list(queries), k=K, exhaustive=exhaustive)
        batched = len(queries) / (time.perf_counter() - t0)
        path_info = index.info()["search"]
    name = f"polycolbert nbits={nbits}" + (" --exhaustive" if exhaustive else f" ({path_info['path']})")
    return {
        "system": name,
        **built,
        **latency(times),
        "batched_qps": batched,
        "rss": rss(),
        "search": path_info if not exhaustive else "exhaustive",
        "ranked": ranked,
    }


def latency(times: list[float]) -> dict[str, float]:
    return {
        "p50_ms": float(np.percentile(times, 50) * 1000),
        "p99_ms": float(np.percentile(times, 99) * 1000),
        "qps": len(times) / sum(times),
    }


def warp(corpus: str, index: Path, build_json: Path, queries: int) -> dict[str, Any]:
    out = Path("/tmp") / f"warp-search-{os.getpid()}.json"
    command = [
        str(ROOT / ".venv-plaid" / "bin" / "python"),
        str(ROOT / "benchmarks" / "peers_warp.py"),
        "--vectors",
        str(BENCH / corpus),
        "--workdir",
        str(index),
        "--threads",
        "2",
        "--queries",
        str(queries),
        "--output",
        str(out),
    ]
    subprocess.run(command, check=True, stdout=sys.stderr)
    data = json.loads(out.read_text())
    built = json.loads(build_json.read_text())["build"]
    s = data["search"]
    return {
        "system": json.loads(build_json.read_text())["system"],  # the search run does not know nbits
        "build_s": built["seconds"],
        "bytes_per_token": built["bytes_per_token"],
        **{k: s[k] for k in ("p50_ms", "p99_ms", "qps", "batched_qps")},
        "rss": {"VmRSS": s["rss_bytes"]},
        "ranked": data["ranked_ids"],
    }


def quality(ids: dict[str, Any], ranked: list[list[int]], reference: list[list[int]]) -> dict[str, float]:
    from polycolbert.eval.metrics import evaluate

    doc_ids = ids["doc_ids"]
    run = {
        q: {doc_ids[d]: float(len(r) - i) for i, d in enumerate(r[:K])}
        for q, r in zip(ids["query_ids"], ranked, strict=True)
    }
    overlap = np.mean([len(set(r[:K]) & set(ref[:K])) / K for r, ref in zip(ranked, reference, strict=True)])
    judged = {q: ids["qrels"][q] for q in run if q in ids["qrels"]}  # the queries timed (--queries), not all
    return {"ndcg@10": evaluate(judged, run)["nDCG@10"], "overlap@10": float(overlap)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", help="a corpus under ~/.cache/polycolbert/bench (all but --plot)")
    parser.add_argument("--nbits", type=int, default=2)
    parser.add_argument("--build", action="store_true")
    parser.add_argument(
        "--engines",
        nargs="*",
        default=list(ENGINES),
        choices=ENGINES,
        help="fp32: exhaustive float32 MaxSim (also the reference; its ranking is cached for later runs); "
        "scan: the index's own path; index-exhaustive: the index with exhaustive=True",
    )
    parser.add_argument("--warp", type=Path, nargs="*", default=[], help="built XTR-WARP index folders")
    parser.add_argument("--warp-build", type=Path, nargs="*", default=[], help="their --build JSONs")
    parser.add_argument("--queries", type=int, default=0, help="the first N queries only (0: all)")
    parser.add_argument("--output", type=Path, help="JSON; rows of an existing file are kept unless rerun")
    parser.add_argument("--rss", action="store_true", help="search-only process: memory")
    parser.add_argument("--plot", type=Path, nargs="+", help="draw OUT.png from these result JSONs and stop")
    args = parser.parse_args()
    if args.plot:
        plot(args.plot[0], args.plot[1:])
        return
    if not args.corpus:
        parser.error("--corpus is needed (all but --plot)")
    if args.rss:
        search_rss(args.corpus, args.nbits, args.queries or 100)
        return
    if args.build:
        build(args.corpus, args.nbits)
        return
    docs, queries, ids = load(args.corpus)
    if args.queries:
        queries = queries[: args.queries]
        ids = {**ids, "query_ids": ids["query_ids"][: args.queries]}
    load_start = os.getloadavg()
    tokens = sum(len(d) for d in docs)
    cached = BENCH / args.corpus / f"fp32-top{K}-{len(queries)}q.json"
    rows = []
    if "fp32" in args.engines or not cached.exists():
        reference, times = exhaustive(docs, queries)
        cached.write_text(json.dumps(reference))
        row: dict[str, Any] = {"system": "exhaustive fp32 MaxSim", "bytes_per_token": docs[0].shape[1] * 4}
        rows.append({**row, **latency(times), "batched_qps": None, "ranked": reference})
    reference = json.loads(cached.read_text())
    del docs
    if "scan" in args.engines:
        rows.append(polycolbert(args.corpus, args.nbits, queries, exhaustive=False))
    if "index-exhaustive" in args.engines:
        rows.append(polycolbert(args.corpus, args.nbits, queries, exhaustive=True))
    for index, built in zip(args.warp, args.warp_build, strict=True):
        rows.append(warp(args.corpus, index, built, len(queries)))
    for row in rows:
        row.update(quality(ids, row.pop("ranked"), reference))
        row.update(corpus=args.corpus, tokens=tokens, documents=len(ids["doc_ids"]), queries=len(queries))
        row.update(loadavg=os.getloadavg())
    if args.output and args.output.exists():
        names = {r["system"] for r in rows}
        rows = [r for r in json.loads(args.output.read_text())["rows"] if r["system"] not in names] + rows
    result = {"rows": rows, "loadavg_start": load_start, "loadavg_end": os.getloadavg(), "k": K, "threads": 2}
    print_table(rows)
    print("load average", load_start, os.getloadavg())
    if args.output:
        args.output.write_text(json.dumps(result, indent=1))


def search_rss(corpus: str, nbits: int, n: int) -> None:
    """Memory of a process that only opens the index and searches (no corpus vectors loaded)."""
    from polycolbert.index import Index

    queries = np.load(BENCH / corpus / "query_tokens.npy", mmap_mode="r")[:n].astype(np.float32)
    before = rss()
    with Index.open(BENCH / corpus / f"polycolbert-nbits{nbits}") as index:
        opened = rss()
        for q in queries:
            index.search(query_vectors=[q], k=K)
        for s in range(0, len(queries), 32):
            index.search(query_vectors=list(queries[s : s + 32]), k=K)
        record = {"corpus": corpus, "before_open": before, "opened": opened, "after_search": rss()}
        info = index.info()
        record["info"] = {key: info[key] for key in ("tokens", "centroids", "bytes_per_token", "search")}
    print(json.dumps(record))


def plot(out: Path, results: list[Path]) -> None:
    """p50 latency and batched QPS against corpus tokens, one line per engine."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, list[tuple[int, float, float]]] = {}
    for path in results:
        for r in json.loads(path.read_text())["rows"]:
            qps = r.get("batched_qps") or float("nan")
            series.setdefault(r["system"], []).append((r["tokens"], r["p50_ms"], qps))
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, points in sorted(series.items()):
        points.sort()
        x = [p[0] / 1e6 for p in points]
        left.plot(x, [p[1] for p in points], marker="o", label=name)
        right.plot(x, [p[2] for p in points], marker="o", label=name)
    left.set(xlabel="corpus, million tokens", ylabel="p50 ms, one query per call (log)", yscale="log")
    right.set(xlabel="corpus, million tokens", ylabel="batched queries per second (log)", yscale="log")
    left.legend(fontsize=7)
    fig.suptitle("Search latency and throughput vs corpus size (2 threads, k=10)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def print_table(rows: list[dict[str, Any]]) -> None:
    head = (
        "| corpus | engine | build s | B/token | p50 ms | p99 ms | batched QPS | top-10 overlap | nDCG@10 |"
    )
    print(head + " RSS MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|")

    def f(r: dict[str, Any], key: str, fmt: str) -> str:
        v = r.get(key)
        return format(v, fmt) if isinstance(v, int | float) else "-"

    for r in rows:
        mem = r.get("rss", {}).get("VmRSS")
        cells = [r["corpus"], r["system"], f(r, "build_s", ".0f"), f(r, "bytes_per_token", ".1f")]
        cells += [f(r, "p50_ms", ".1f"), f(r, "p99_ms", ".1f"), f(r, "batched_qps", ".0f")]
        cells += [f(r, "overlap@10", ".3f"), f(r, "ndcg@10", ".4f"), f"{mem / 2**20:.0f}" if mem else "-"]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
